"""Issue 26: audit samples (stratified, seeded, indistinguishable from ordinary tasks), estimates with intervals,
auto-accept, the audit's stopping rule, which member is right where, and the dataset card in every export."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command

from annotation.models import Audit, AuditCase, AutoAccept, DoubleRead, QualityFlag, Review, Revision, Round, Task
from annotation.selectors.audit import audit_board, audit_estimates
from annotation.selectors.labels import final_label
from annotation.services import audit, queue, reviews, revisions
from annotation.services.export import export_dataset
from ml_engine import audit as stats
from tests.api.conftest import build_world
from tests.conftest import save_nifti

pytestmark = pytest.mark.django_db

SIZES = {f"k{i:02d}": 1.0 + 2.0 * i for i in range(20)}  # distinct attention sizes, mL


@pytest.fixture
def big(tmp_path, settings, db):
    return build_world(tmp_path, SIZES)


def _next_audit_task(world, user: str) -> Task | None:
    task = queue.lease_next(user=world.users[user])
    if task is None:
        return None
    if not (AuditCase.objects.filter(task=task).exists() or DoubleRead.objects.filter(
            second=task, first__audit_case__isnull=False).exists()):
        queue.skip(task_id=task.pk, user=world.users[user], reason="not an audit: test")
        return None
    return task


def _read(world, user: str, task: Task, *, erase_spleen: bool) -> Revision:
    if not erase_spleen:
        return revisions.confirm(task_id=task.pk, user=world.users[user], base_revision=None)
    edited = np.where(world.pseudo == 1, 0, world.pseudo).astype(np.uint8)
    upload = save_nifti(world.tmp / f"edit{task.pk}.nii.gz", edited, np.asarray(task.case.affine))
    return revisions.submit_revision(task_id=task.pk, user=world.users[user], upload=upload, base_revision=None)


def _read_all(world, erase: set[str] | None = None, capture=None) -> int:
    """Both annotators read every audit task in their queues (erasing the spleen of the cases named in erase)."""
    done = 0
    for user in ("a1", "a2"):
        while (task := _next_audit_task(world, user)) is not None:
            if capture is not None:
                with capture(execute=True):
                    _read(world, user, task, erase_spleen=task.case.name in (erase or set()))
            else:
                _read(world, user, task, erase_spleen=task.case.name in (erase or set()))
            done += 1
    return done


def test_the_draw_is_stratified_by_attention_and_reproducible(big):
    frame = audit.frame_of(big.round)
    expected, sizes = stats.draw({t.case.name: t.priority for t in frame}, 10, seed=7)
    assert sizes == [4, 4, 4, 4, 4]  # 20 cases, 5 strata (at least two drawn from each)
    again, _ = stats.draw({t.case.name: t.priority for t in frame}, 10, seed=7)
    other, _ = stats.draw({t.case.name: t.priority for t in frame}, 10, seed=8)
    assert again == expected and {d.name for d in other} != {d.name for d in expected}
    drawn = audit.draw_audit(round=big.round, size=10, seed=7)
    rows = list(drawn.cases.select_related("case").order_by("order"))
    assert [(r.case.name, r.stratum) for r in rows] == [(d.name, d.stratum) for d in expected]
    # two per stratum, and each stratum holds an attention band: every case of stratum h has less than stratum h+1's
    by_stratum: dict[int, list[float]] = {}
    for name, h in stats.stratify({t.case.name: t.priority for t in frame}, strata=5, seed=7).items():
        by_stratum.setdefault(h, []).append(SIZES[name])
    assert all(max(by_stratum[h]) < min(by_stratum[h + 1]) for h in range(4))
    assert sorted(r.stratum for r in rows) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    # the audit's tasks went to the annotators, as a lead's assignment would
    assert {r.task.assignee.username for r in rows} == {"a1", "a2"}
    with pytest.raises(Exception, match="has its audit sample already"):
        audit.draw_audit(round=big.round, size=3)


def test_the_size_comes_from_a_target_width(big):
    drawn = audit.draw_audit(round=big.round, target_width=0.5, expected_share=0.2)
    n = stats.sample_size(0.5, expected=0.2, population=20)
    assert drawn.size == n and 1 < n < 20
    low, high = stats.wilson(0.2, n / (1 - n / 20))
    assert high - low <= 0.5


def test_an_audit_task_looks_like_any_other_task(big):
    audit.draw_audit(round=big.round, size=4, seed=1, annotators=["a1"])
    drawn = set(AuditCase.objects.values_list("task_id", flat=True))
    ordinary = Task.objects.filter(round=big.round).exclude(pk__in=drawn).order_by("-priority").first()
    queue.assign(annotator=big.users["a2"], task_ids=[ordinary.pk])  # a lead's ordinary assignment
    api1, api2 = big.client("a1"), big.client("a2")
    got1, got2 = api1.post("/api/tasks/next/").json(), api2.post("/api/tasks/next/").json()
    assert got1["id"] in drawn and got2["id"] == ordinary.pk
    assert set(got1) == set(got2)
    for body in (got1, got2, api1.get("/api/queue/").json(), api1.get(f"/api/cases/{got1['case']['id']}/").json()):
        assert "audit" not in json.dumps(body).lower()
    # the page cannot tell either: the annotator's pages never name an audit
    src = Path(__file__).resolve().parents[2] / "frontend_static" / "src"
    annotators_pages = [*(src / "workspace").rglob("*.ts*"), *(src / "viewer").rglob("*.ts*"),
                        src / "pages" / "Workspace.tsx", src / "pages" / "Queue.tsx"]
    for path in annotators_pages:
        assert "audit" not in path.read_text(encoding="utf-8").lower(), path
    assert big.client("a1").get("/api/dashboard/audit/").status_code == 403


def test_estimates_with_intervals_per_organ_and_overall(big, django_capture_on_commit_callbacks):
    audit.draw_audit(round=big.round, size=10, seed=3)
    names = list(AuditCase.objects.order_by("order").values_list("case__name", flat=True))
    erase = set(names[:3])  # three of ten need a correction (the spleen erased)
    assert _read_all(big, erase, django_capture_on_commit_callbacks) == 10
    est = audit_estimates(big.round)
    assert est["drawn"] == est["read"] == 10 and est["frame"] == 20
    share = est["unrevised"]["overall"]["needs_correction"]
    # the stratified estimate: sum over strata of N_h / N x the stratum's share (two read per stratum of four)
    strata = {r.case.name: r.stratum for r in AuditCase.objects.select_related("case")}
    by = {h: [n in erase for n in names if strata[n] == h] for h in range(5)}
    assert share["estimate"] == pytest.approx(sum(0.2 * np.mean(v) for v in by.values()), abs=1e-4)
    assert share["low"] < share["estimate"] < share["high"] and share["n"] == 10
    cases = est["unrevised"]["overall"]["cases_needing_correction"]
    assert cases["estimate"] == pytest.approx(share["estimate"] * 20, abs=0.1)
    # per organ: the spleen carries it all; the liver needed nothing
    assert est["unrevised"]["spleen"]["needs_correction"]["estimate"] == pytest.approx(share["estimate"], abs=1e-4)
    assert est["unrevised"]["liver"]["needs_correction"]["estimate"] == 0.0
    assert est["unrevised"]["liver"]["dice"]["estimate"] == 1.0
    dice = est["unrevised"]["spleen"]["dice"]
    assert dice["low"] <= dice["estimate"] <= dice["high"] < 1.0
    nsd = est["unrevised"]["overall"]["nsd"]
    assert nsd["n"] == 10 and nsd["estimate"] is not None  # measured by each read's QC job
    # the dashboard and round_status give the same figures
    api = big.client("lead").get("/api/dashboard/audit/", {"round": 0}).json()
    assert api["audit"]["unrevised"]["overall"] == est["unrevised"]["overall"]
    assert api["rounds"][0]["needs_correction"] == share
    out = io.StringIO()
    call_command("round_status", "0", stdout=out)
    assert f"needing correction {100 * share['estimate']:.1f}%" in out.getvalue()
    assert "10 cases drawn" in out.getvalue()


def test_double_reads_go_to_two_annotators_and_correct_for_the_rater(big, django_capture_on_commit_callbacks):
    audit.draw_audit(round=big.round, size=4, seed=2, double_reads=1.0)
    pairs = list(DoubleRead.objects.select_related("first", "second"))
    assert len(pairs) == 4 and all(p.first.assignee_id != p.second.assignee_id for p in pairs)
    _read_all(big, {pairs[0].case.name}, django_capture_on_commit_callbacks)
    est = audit_estimates(big.round)
    assert est["double_read"] == 4
    rows = {r.case_id: r for r in AuditCase.objects.all()}
    assert all(r.rater.get("organs") for r in rows.values())  # both reads' agreement measured
    assert est["rater"]["pairs"] == 4
    # the rater's noise leaves a range open (reads corrected for it, and not); the interval spans both
    dice = est["unrevised"]["spleen"]["dice"]
    assert dice["rater_low"] <= dice["estimate"] <= dice["rater_high"]
    assert dice["estimate"] == pytest.approx((dice["rater_low"] + dice["rater_high"]) / 2, abs=1e-4)
    assert dice["low"] <= dice["rater_low"] and dice["rater_high"] <= dice["high"]
    # the round's share of ordinary double reads neither counts nor removes the audit's
    from annotation.services.double_reads import set_share

    set_share(round=big.round, share=0.0)
    assert DoubleRead.objects.count() == 4


def test_the_audit_stopping_rule_stops_when_it_should_and_not_before(big, django_capture_on_commit_callbacks):
    audit.set_plan(round=big.round, audit_stop=0.6)
    audit.draw_audit(round=big.round, size=6, seed=4, annotators=["a1"])
    api = big.client("lead")
    for i in range(5):
        task = _next_audit_task(big, "a1")
        _read(big, "a1", task, erase_spleen=False)
        big.round.refresh_from_db()
        assert big.round.stopped_by == "", f"stopped after {i + 1} of 6 reads"
    task = _next_audit_task(big, "a1")
    revision = _read(big, "a1", task, erase_spleen=False)
    big.round.refresh_from_db()
    board = api.get("/api/dashboard/audit/").json()
    assert big.round.stopped_by == "audit" and board["stopping"]["audit_holds"]
    assert board["stopping"]["audit_upper"] < 0.6
    # the lead rejects a read: it drops out, the sample is incomplete, the stop is withdrawn
    reviews.decide(revision_id=revision.pk, reviewer=big.users["lead"], decision="rejected", comment="look again")
    big.round.refresh_from_db()
    assert big.round.stopped_by == ""


def test_the_audit_does_not_stop_a_round_that_needs_corrections(big):
    audit.set_plan(round=big.round, audit_stop=0.3)
    audit.draw_audit(round=big.round, size=6, seed=4, annotators=["a1"])
    names = list(AuditCase.objects.order_by("order").values_list("case__name", flat=True))
    _read_all(big, set(names[:3]))
    big.round.refresh_from_db()
    assert big.round.stopped_by == ""
    assert audit_board(big.round)["stopping"]["audit_holds"] is False


def test_the_top_case_rule_is_recorded_beside_it(big):
    task = queue.lease_next(user=big.users["a1"])  # the top case
    revisions.confirm(task_id=task.pk, user=big.users["a1"], base_revision=None)
    big.round.refresh_from_db()
    assert big.round.converged is True and big.round.stopped_by == "top_case"


def test_auto_accept_makes_cases_final_with_the_ai_label_and_exports_their_source(big, tmp_path,
                                                                                  django_capture_on_commit_callbacks):
    accepted = audit.apply_auto_accept(round=big.round, max_attention_ml=12.0, no_qc_flag=False)
    names = {a.case.name for a in accepted}
    assert names == {n for n, ml in SIZES.items() if ml < 12.0}  # k00..k05
    case = big.cases["k00"]
    ref = final_label(case)
    assert ref.source == "auto_accepted" and ref.name == AutoAccept.objects.get(case=case).label.name
    # still eligible for audit: the frame keeps them, and the audit estimates their part
    audit.draw_audit(round=big.round, size=10, seed=5)
    frame = Audit.objects.get().frame["strata"]
    assert {str(big.cases[n].pk) for n in names} <= set(frame)
    _read_all(big, set(), django_capture_on_commit_callbacks)
    est = audit_estimates(big.round)
    part = est["auto_accepted"]
    assert part["cases"] == 6 and part["read"] >= 2 and part["estimates"]["overall"]["needs_correction"]["n"] >= 2
    board = big.client("lead").get("/api/dashboard/audit/").json()
    assert board["auto_accept"]["cases"] == 6
    # nobody is given an auto-accepted case that no audit drew
    audited = set(AuditCase.objects.values_list("case__name", flat=True))
    while (task := queue.lease_next(user=big.users["a2"])) is not None:
        assert task.case.name not in names - audited
        queue.skip(task_id=task.pk, user=big.users["a2"], reason="test")
    out = tmp_path / "export"
    report = export_dataset(out, format="abdomenatlas")
    rows = {r["case"]: r["label"] for r in csv.DictReader((out / "sources.csv").open())}
    assert {n for n, label in rows.items() if label == "auto-accepted"} == names
    assert report.from_auto_accepted == 6
    card = json.loads((out / "quality.json").read_text())
    assert card["sources"]["auto_accepted"] == 6 and card["cases"] == 20
    # the card's figures are the dashboard's
    assert card["audits"][0]["unrevised"] == board["audit"]["unrevised"]
    assert card["audits"][0]["auto_accepted"] == board["audit"]["auto_accepted"]
    md = (out / "DATASET.md").read_text()
    assert "How good are the labels nobody revised?" in md and "auto-accepted" in md


def test_auto_accept_leaves_flagged_and_started_cases(big, django_capture_on_commit_callbacks):
    task = queue.lease_next(user=big.users["a1"])  # the top case is started: not accepted
    with django_capture_on_commit_callbacks(execute=True):
        job = audit.set_plan(round=big.round, auto_accept={"max_attention_ml": 1000.0})
    assert job is not None
    accepted = set(AutoAccept.objects.values_list("case__name", flat=True))
    flagged = set(QualityFlag.objects.filter(label_check__prediction__isnull=False)
                  .values_list("label_check__case__name", flat=True))
    assert task.case.name not in accepted
    assert accepted == set(SIZES) - flagged - {task.case.name}


def test_the_plan_is_checked_and_names_the_field(big):
    api = big.client("lead")
    cases = [({"round": 0, "audit": {"size": 0}}, "audit.size"),
             ({"round": 0, "audit": {"size": 3, "target_width": 0.2}}, "audit.size"),
             ({"round": 0, "audit": {"size": 3, "thresholds": {"dice": 2}}}, "audit.thresholds.dice"),
             ({"round": 0, "auto_accept": {"min_member_dice": 0.9}}, "auto_accept.max_attention_ml"),
             ({"round": 0, "audit_stop": 0}, "audit_stop"),
             ({"round": 0}, "audit")]
    for body, field in cases:
        response = api.post("/api/audit/", body, format="json")
        assert response.status_code == 400 and response.json()["field"] == field, (body, response.json())
    assert big.client("a1").post("/api/audit/", {"round": 0, "audit_stop": 0.1}, format="json").status_code == 403
    response = api.post("/api/audit/", {"round": 0, "audit": {"size": 4}}, format="json")
    assert response.status_code == 202 and response.json()["job"] == "round0:audit:1"


def test_a_round_started_with_a_plan_applies_it_once_ranked(big, django_capture_on_commit_callbacks):
    from annotation.models import Job
    from annotation.services.rounds import advance, start_round

    with pytest.raises(Exception, match="expected a number"):
        start_round(archs=[], audit_plan={"size": "ten"})
    assert Round.objects.count() == 1
    # as start_round stores it; the round reaches the end of its ranking step
    plan = {"auto_accept": audit.check_auto_accept({"max_attention_ml": 6.0, "no_qc_flag": False}),
            "audit": audit.check_audit({"size": 6, "seed": 9}), "audit_stop": 0.05}
    Round.objects.filter(pk=big.round.pk).update(status=Round.Status.RANKING, settings=plan)
    Job.objects.create(key="round0:rank", kind=Job.Kind.RANK, round=big.round, status=Job.Status.SUCCEEDED)
    with django_capture_on_commit_callbacks(execute=True):
        advance(round_id=big.round.pk)
    assert Job.objects.get(key="round0:audit:1").status == Job.Status.SUCCEEDED
    assert set(AutoAccept.objects.values_list("case__name", flat=True)) == {"k00", "k01", "k02"}
    assert Audit.objects.get(round=big.round).size == 6
    out = io.StringIO()
    call_command("round_status", stdout=out)
    assert "auto-accept: attention below 6.0 mL: 3 cases accepted" in out.getvalue()
    assert "audit stopping rule: upper end below 5.0%" in out.getvalue()
    # the next round audits as this one did, with the next seed
    carried = audit.carried_plan(Round.objects.get(pk=big.round.pk))
    assert carried["audit"]["seed"] == 10 and carried["audit"]["size"] == 6
    assert carried["auto_accept"] == plan["auto_accept"] and carried["audit_stop"] == 0.05


def test_members_right_where_against_accepted_revisions(tmp_path, settings, db):
    from annotation.services.metrics import update_round_metrics
    from ml_engine.metrics import dice
    from tests.api.rounds_world import LIVER, build_two_rounds, revision_array

    world = build_two_rounds(tmp_path)
    round0 = world.rounds[0]
    revision = Revision.objects.filter(task__round=round0, case=world.cases["c1"]).get()
    assert update_round_metrics(round_id=round0.pk)["member_accuracy"]["cases"] == 0  # nothing accepted yet
    Review.objects.create(revision=revision, reviewer=world.users["lead"], decision="accepted")
    figures = update_round_metrics(round_id=round0.pk)["member_accuracy"]
    assert figures["cases"] == 1
    human = revision_array(revision) == LIVER
    shifted = np.zeros_like(human)
    pseudo_liver = world.pseudo == LIVER
    shifted[1:] = pseudo_liver[:-1]  # nnunet's round-0 mask: the pseudo-label moved one voxel
    liver = figures["organs"]["liver"]
    assert liver["unet"]["dice"] == pytest.approx(dice(pseudo_liver, human), abs=1e-4)
    assert liver["nnunet"]["dice"] == pytest.approx(dice(shifted, human), abs=1e-4)
    assert liver["unet"]["cases"] == 1 and 0 <= liver["unet"]["nsd"] <= 1
    board = audit_board(Round.objects.get(pk=round0.pk))
    assert board["members"]["organs"]["liver"]["unet"]["dice"] == liver["unet"]["dice"]
    assert "not measured" in board["weighted_combination"]
    # the auto-accept rule's member agreement: round 0's members are shifted against the mean, round 1's agree
    from annotation.models import Organ, Prediction

    organs = dict(Organ.objects.filter(label_set__name="abdomenatlas").values_list("value", "name"))
    c4 = world.cases["c4"]
    assert audit.member_agreement(Prediction.objects.get(case=c4, round=world.rounds[1]), organs) == 1.0
    assert audit.member_agreement(Prediction.objects.get(case=c4, round=round0), organs) < 0.95


def test_audit_round_sets_the_plan_from_the_shell(big, django_capture_on_commit_callbacks):
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("audit_round", "--audit-size", "4", "--audit-double", "0.5", "--auto-accept-ml", "4",
                     "--auto-accept-with-flags", "--audit-stop", "0.2", stdout=out)
    assert "queued round0:audit:1" in out.getvalue()
    drawn = Audit.objects.get(round=big.round)
    assert drawn.size == 4 and DoubleRead.objects.count() == 2
    assert set(AutoAccept.objects.values_list("case__name", flat=True)) == {"k00", "k01"}
    with pytest.raises(Exception, match="audit.strata"):
        call_command("audit_round", "--audit-size", "4", "--audit-strata", "0")
