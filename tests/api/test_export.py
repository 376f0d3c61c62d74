"""export_dataset: accepted revisions win over pseudo-labels; both layouts; nnU-Net's output imports back."""

from __future__ import annotations

import io
import json

import nibabel as nib
import numpy as np
import pytest
from django.core.management import CommandError, call_command

from annotation.models import Case
from annotation.services import queue, reviews, revisions
from annotation.services.imports import import_cases
from tests.conftest import save_nifti

pytestmark = pytest.mark.django_db


def revise_top_case(world):
    """a1 revises the top case (erases the spleen), the lead accepts; returns (case name, revised labels)."""
    task = queue.lease_next(user=world.users["a1"])
    edited = np.where(world.pseudo == 1, 0, world.pseudo).astype(np.uint8)
    upload = save_nifti(world.tmp / "edit.nii.gz", edited, np.asarray(task.case.affine))
    revision = revisions.submit_revision(task_id=task.pk, user=world.users["a1"], upload=upload, base_revision=None)
    reviews.decide(revision_id=revision.pk, reviewer=world.users["lead"], decision="accepted")
    return task.case.name, edited


def test_export_nnunetv2_round_trips(world, tmp_path):
    revised, edited = revise_top_case(world)
    out = io.StringIO()
    call_command("export_dataset", str(tmp_path / "Dataset001_Atlas"), "--format", "nnunetv2", "--verbosity", "0",
                 stdout=out)
    assert "exported 3 cases" in out.getvalue()
    assert "1 with an accepted revision, 0 with the imported label, 2 with the pseudo-label" in out.getvalue()
    root = tmp_path / "Dataset001_Atlas"
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["labels"]["background"] == 0 and meta["labels"]["pancreas"] == 9 and meta["numTraining"] == 3
    sources = (root / "sources.csv").read_text().splitlines()
    assert sources[0] == "case,label,revision" and f"{revised},accepted revision,1" in sources
    assert "small,pseudo-label," in sources
    assert sorted(p.name for p in (root / "imagesTr").iterdir()) == ["big_0000.nii.gz", "mid_0000.nii.gz",
                                                                      "small_0000.nii.gz"]
    assert np.array_equal(np.asarray(nib.load(root / "labelsTr" / f"{revised}.nii.gz").dataobj), edited)
    assert np.array_equal(np.asarray(nib.load(root / "labelsTr" / "small.nii.gz").dataobj), world.pseudo)
    # the export is a valid nnU-Net dataset as far as our own importer is concerned, labels intact
    report = import_cases(root, dataset="reimported")
    assert sorted(report.imported) == ["big", "mid", "small"], report.errors
    case = Case.objects.get(dataset__name="reimported", name=revised)
    assert {o.name for o in case.source_labels.get().organs.all()} >= {"liver", "spleen"}


def test_export_abdomenatlas_layout(world, tmp_path):
    revised, edited = revise_top_case(world)
    call_command("export_dataset", str(tmp_path / "atlas"), "--format", "abdomenatlas", "--verbosity", "0",
                 stdout=io.StringIO())
    case_dir = tmp_path / "atlas" / revised
    assert (case_dir / "ct.nii.gz").is_file()
    liver = np.asarray(nib.load(case_dir / "segmentations" / "liver.nii.gz").dataobj)
    spleen = np.asarray(nib.load(case_dir / "segmentations" / "spleen.nii.gz").dataobj)
    assert np.array_equal(liver, (edited == 5).astype(np.uint8)) and spleen.sum() == 0
    assert sorted(p.name for p in (case_dir / "segmentations").iterdir())[0] == "aorta.nii.gz"
    assert len(list((case_dir / "segmentations").iterdir())) == 9


def test_export_refuses_a_non_empty_folder(world, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(CommandError, match="exists and is not an empty folder"):
        call_command("export_dataset", str(tmp_path / "busy"), "--format", "nnunetv2", stdout=io.StringIO())
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".busy")] == []


def test_export_accepted_only(world, tmp_path):
    revised, edited = revise_top_case(world)
    out = io.StringIO()
    call_command("export_dataset", str(tmp_path / "only"), "--format", "abdomenatlas", "--accepted-only",
                 "--verbosity", "0", stdout=out)
    assert "exported 1 cases" in out.getvalue() and "skipped 2 cases" in out.getvalue()
    assert sorted(p.name for p in (tmp_path / "only").iterdir()) == sorted(["DATASET.md", revised, "quality.json",
                                                                           "sources.csv"])
    # the dataset card lists the models behind the pseudo-labels with their source, licence and citation (#28)
    card = (tmp_path / "only" / "DATASET.md").read_text()
    assert "## Models and members that made the AI labels" in card  # (with their licences: test_starts.py)
