"""Which label counts (annotation.selectors.labels): each policy pinned, and the export that follows it."""

from __future__ import annotations

import io

import nibabel as nib
import numpy as np
import pytest
from django.core.management import call_command

from annotation.models import Case, DoubleRead
from annotation.selectors.labels import final_label, label_to_edit, label_to_train_on, latest_revision
from annotation.selectors.labels import revisions as counted
from annotation.selectors.review import waiting_for_review
from annotation.selectors.rounds import cases_to_infer
from annotation.services import double_reads, queue, reviews, revisions
from annotation.services.imports import import_cases
from annotation.storage import read_voxels
from tests.conftest import affine_for, make_ct, make_labels, save_nifti

pytestmark = pytest.mark.django_db
SHAPE = (24, 20, 12)


def _sources(case: Case) -> tuple:
    """(to edit, to train on, final): each as its source ("revision" with its number) or None."""
    def show(ref):
        if ref is None:
            return None
        return f"revision {ref.revision.number}" if ref.revision is not None else ref.source
    return show(label_to_edit(case)), show(label_to_train_on(case)), show(final_label(case))


def _revise(world, user: str, data: np.ndarray, base):
    task = queue.lease_next(user=world.users[user])
    upload = save_nifti(world.tmp / f"{user}-{base}.nii.gz", data, np.asarray(task.case.affine))
    return revisions.submit_revision(task_id=task.pk, user=world.users[user], upload=upload, base_revision=base)


def test_revisions_and_reviews_decide_each_label(world):
    case = world.cases["big"]  # the top of the queue
    assert _sources(case) == ("pseudo_label", None, "pseudo_label")  # nothing people made: never trained on
    first = _revise(world, "a1", np.zeros(SHAPE, np.uint8), None)
    assert _sources(case) == ("revision 1", "revision 1", "pseudo_label")  # not accepted: not final
    reviews.decide(revision_id=first.pk, reviewer=world.users["lead"], decision="rejected", comment="redo")
    # a rejected revision is no one's label: back to the pseudo-label to edit, nothing to train on
    assert _sources(case) == ("pseudo_label", None, "pseudo_label")
    assert world.client("a1").get(f"/api/cases/{case.pk}/label.nii.gz").status_code == 200
    second = _revise(world, "a1", world.pseudo, first.pk)  # the base is still the newest revision
    assert second.parent_id == first.pk
    assert _sources(case) == ("revision 2", "revision 2", "pseudo_label")
    reviews.decide(revision_id=second.pk, reviewer=world.users["lead"], decision="accepted")
    assert _sources(case) == ("revision 2", "revision 2", "revision 2")
    assert case not in cases_to_infer(world.round)  # final: rounds no longer infer it
    assert set(cases_to_infer(world.round)) == {world.cases["mid"], world.cases["small"]}


def test_imported_labels_whole_or_partial(world, tmp_path):
    affine = affine_for()
    save_nifti(tmp_path / "gt" / "ct" / "whole.nii.gz", make_ct(SHAPE, seed=7), affine)
    save_nifti(tmp_path / "gt" / "labels" / "whole.nii.gz", make_labels(SHAPE, values=range(1, 10)), affine)
    assert import_cases(tmp_path / "gt" / "ct", dataset="truth", labels=str(tmp_path / "gt" / "labels")).ok
    save_nifti(tmp_path / "part" / "ct" / "part.nii.gz", make_ct(SHAPE, seed=8), affine)
    save_nifti(tmp_path / "part" / "labels" / "part.nii.gz", make_labels(SHAPE, values=(1, 5)), affine)
    assert import_cases(tmp_path / "part" / "ct", dataset="partial", labels=str(tmp_path / "part" / "labels")).ok
    whole, part = Case.objects.get(name="whole"), Case.objects.get(name="part")
    # imported truth of every organ is what an annotator edits, what the models learn from, and what is exported
    assert _sources(whole) == ("imported", "imported", "imported")
    assert label_to_train_on(whole).organs is None
    # a partial label: trained on for its organs only; not final, not exported without a prediction
    assert _sources(part) == ("imported", "imported", None)
    assert label_to_train_on(part).organs == ("spleen", "liver")


def test_export_takes_imported_truth(world, tmp_path):
    """Before: a case imported with its ground truth exported its pseudo-label, or was skipped if never predicted."""
    affine = affine_for()
    truth = make_labels(SHAPE, values=range(1, 10))
    save_nifti(tmp_path / "gt" / "ct" / "truth.nii.gz", make_ct(SHAPE, seed=9), affine)
    save_nifti(tmp_path / "gt" / "labels" / "truth.nii.gz", truth, affine)
    assert import_cases(tmp_path / "gt" / "ct", dataset="work", labels=str(tmp_path / "gt" / "labels")).ok
    out = io.StringIO()
    call_command("export_dataset", str(tmp_path / "out"), "--format", "abdomenatlas", "--verbosity", "0", stdout=out)
    assert "exported 4 cases" in out.getvalue() and "1 with the imported label, 3 with the pseudo-label" in \
        out.getvalue()
    exported = np.asarray(nib.load(tmp_path / "out" / "truth" / "combined_labels.nii.gz").dataobj)
    assert np.array_equal(exported, truth)


def test_confirm_records_the_label_that_was_shown(world):
    """After a rejection, "no change needed" keeps what the annotator saw (the pseudo-label), not the rejected one."""
    case = world.cases["big"]
    first = _revise(world, "a1", np.zeros(SHAPE, np.uint8), None)
    reviews.decide(revision_id=first.pk, reviewer=world.users["lead"], decision="rejected", comment="redo")
    task = queue.lease_next(user=world.users["a1"])
    assert task.case_id == case.pk
    confirmed = revisions.confirm(task_id=task.pk, user=world.users["a1"], base_revision=first.pk)
    assert confirmed.parent_id == first.pk and confirmed.kind == "confirm"
    assert np.array_equal(read_voxels(confirmed.label_file.name), world.pseudo)


def test_which_revisions_count(world):
    """selectors.labels.revisions, the one rule every reader of revisions asks: a rejected revision does not count
    (but stays the base an upload names), a double read's reader never sees the other read, and neither read counts
    for training until a lead adjudicates the pair."""
    a1, a2, lead = world.users["a1"], world.users["a2"], world.users["lead"]
    double_reads.set_share(round=world.round, share=0.34)
    pair = DoubleRead.objects.get()  # the top case (big), read 1 assigned to a1
    read1_task = queue.lease_next(user=a1)
    assert read1_task.pk == pair.first_id
    upload = save_nifti(world.tmp / "read1.nii.gz", np.zeros(SHAPE, np.uint8), np.asarray(pair.case.affine))
    read1 = revisions.submit_revision(task_id=read1_task.pk, user=a1, upload=upload, base_revision=None)
    read2_task = queue.lease_next(user=a2)
    assert read2_task.pk == pair.second_id
    read2 = revisions.confirm(task_id=read2_task.pk, user=a2, base_revision=None)
    single_task = queue.lease_next(user=a1)  # a case read once
    assert single_task.case_id != pair.case_id
    single = revisions.confirm(task_id=single_task.pk, user=a1, base_revision=None)
    reviews.decide(revision_id=single.pk, reviewer=lead, decision="rejected", comment="look again")

    assert set(counted()) == {read1, read2}  # the rejected one is no one's label
    assert set(counted(rejected=True)) == {read1, read2, single}
    assert set(counted(seen_from=read1_task)) == {read1}  # the other read is hidden from each reader
    assert set(counted(seen_from=read2_task.pk)) == {read2}
    assert set(counted(seen_from=single_task)) == {read1, read2}  # a single read hides nothing
    assert set(counted(settled=True)) == set()  # the pair is not adjudicated yet
    # the base an upload names: the newest its reader may see, rejected or not
    assert latest_revision(pair.case, read1_task) == read1 and latest_revision(pair.case, read2_task) == read2
    assert latest_revision(pair.case) == read2 and latest_revision(single.case_id, single_task) == single
    # the review queue's "newest of its own read" asks the same rule in a subquery: each read waits on its own
    assert {r.pk for r in waiting_for_review()} == {read1.pk, read2.pk}
    assert label_to_edit(pair.case, read2_task).revision == read2 and label_to_train_on(pair.case) is None

    final = double_reads.adjudicate(revision_id=read1.pk, reviewer=lead, take=2)
    assert set(counted(settled=True)) == {read1, read2, final}  # settled: the reads and the adjudication count
    assert label_to_train_on(pair.case).revision == final == final_label(pair.case).revision
