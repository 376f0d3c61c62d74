"""The lead dashboard's API on a database with two finished rounds (tests/api/rounds_world.py): queues, progress,
attention curves, quality per round, cached file metrics, jobs, starting a round; roles and bad input."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from annotation.models import CaseMetrics, Job, Prediction, Round
from annotation.services.metrics import update_round_metrics
from annotation.services.predictions import record_prediction
from annotation.services.users import create_user
from annotation.storage import local_copy
from tests.api.rounds_world import _revise, build_two_rounds, grow_liver
from tests.conftest import affine_for

pytestmark = pytest.mark.django_db

GETS = ["/api/dashboard/", "/api/dashboard/tasks/", "/api/dashboard/attention/", "/api/dashboard/quality/",
        "/api/dashboard/jobs/"]
POSTS = [("/api/dashboard/quality/refresh/", {"round": 1}), ("/api/rounds/start/", {"steps": 1})]


@pytest.fixture
def rounds(tmp_path, settings):
    return build_two_rounds(tmp_path)


@pytest.fixture
def clients(db) -> dict[str, APIClient]:
    """Signed-in clients of a lead and an admin, on a database without rounds (for the bad-input tests)."""
    result = {}
    for name, role in (("lead", "lead"), ("boss", "admin")):
        result[name] = APIClient()
        result[name].force_authenticate(create_user(username=name, role=role, password="correct-horse-battery-1"))
    return result


@pytest.mark.parametrize("who", [None, "a1"])
def test_only_leads_and_admins(rounds, who):
    api = rounds.client(who)
    for url in GETS:
        response = api.get(url)
        assert response.status_code in ((401, 403) if who is None else (403,)), url
    for url, body in POSTS:
        assert api.post(url, body, format="json").status_code in ((401, 403) if who is None else (403,)), url
    assert Round.objects.count() == 2


@pytest.mark.parametrize("who", ["lead", "boss"])
def test_leads_and_admins_read_every_panel(rounds, who):
    api = rounds.client(who)
    for url in GETS:
        assert api.get(url).status_code == 200, url


def test_overview_queues_and_progress(rounds):
    board = rounds.client("lead").get("/api/dashboard/").json()
    assert board["round"] == {"number": 1, "status": "annotating", "converged": True}
    assert board["tasks_by_status"] == {"pending": 1, "leased": 1, "revised": 1, "confirmed": 1, "skipped": 0}
    assert board["annotators"] == ["a1", "a2"]
    assert board["by_annotator"]["a1"] == {"assigned": 0, "leased": 1, "revised": 0, "confirmed": 1, "skipped": 0,
                                           "revised_all": 2, "confirmed_all": 1, "median_minutes": 10.0}
    assert board["by_annotator"]["a2"] == {"assigned": 0, "leased": 0, "revised": 1, "confirmed": 0, "skipped": 0,
                                           "revised_all": 1, "confirmed_all": 1, "median_minutes": 6.0}
    liver = board["by_organ"]["liver"]
    assert liver["attention_ml"] == pytest.approx(0.75 * 41) and liver["cases"] == 4
    assert liver["revised_cases"] == 1 and liver["revised_voxels"] == 72 and liver["tags"] == 1
    [lease] = board["leases"]
    assert lease["case"] == "c1" and lease["holder"] == "a1" and lease["held_minutes"] >= 0 and not lease["expired"]
    assert sum(d["revised"] for d in board["throughput_per_day"]) == 3
    assert sum(d["confirmed"] for d in board["throughput_per_day"]) == 2
    assert {(d["annotator"], d["revised"], d["confirmed"]) for d in board["per_day_by_annotator"]} >= {
        ("a1", 2, 0), ("a2", 0, 1)}
    # seconds 600, 300, 900, 240, 420: median 7 minutes; 2 cases left (pending + leased)
    assert board["median_minutes_per_case"] == 7.0 and board["pace"] == "measured"
    assert board["remaining_tasks"] == 2
    assert board["time_left"] == {"minutes_per_case": 7.0, "hours": 0.23, "working_days": 0.03, "hours_per_day": 8.0}
    assert board["time_left_at_default_pace"]["hours"] == 0.5  # the paper's 15 minutes a case

    old = rounds.client("lead").get("/api/dashboard/?round=0").json()
    assert old["round"]["number"] == 0 and old["tasks_by_status"]["revised"] == 2
    assert old["by_annotator"]["a1"]["revised"] == 2 and old["leases"] == []


def test_ranked_tasks_and_assignment_by_open_rank(rounds):
    lead = rounds.client("lead")
    page = lead.get("/api/dashboard/tasks/").json()
    assert page["round"] == 1 and page["count"] == 4 and page["open"] == 1
    assert [(t["case"], t["rank"], t["open_rank"], t["status"]) for t in page["results"]] == [
        ("c2", 1, None, "confirmed"), ("c1", 2, None, "leased"), ("c3", 3, 1, "pending"), ("c4", 4, None, "revised")]
    assert page["results"][1]["lease_holder"] == "a1" and page["results"][3]["assignee"] == "a2"
    assert lead.get("/api/dashboard/tasks/?offset=1&limit=2").json()["results"][0]["case"] == "c1"
    assert [t["case"] for t in lead.get("/api/dashboard/tasks/?status=pending").json()["results"]] == ["c3"]
    assigned = lead.post("/api/tasks/assign/", {"annotator": "a2", "rank_from": 1, "rank_to": 1}, format="json")
    assert assigned.json() == {"assigned": 1}
    assert lead.get("/api/dashboard/tasks/?status=pending").json()["results"][0]["assignee"] == "a2"


def test_attention_curves(rounds):
    curves = rounds.client("lead").get("/api/dashboard/attention/").json()["rounds"]
    assert [c["round"] for c in curves] == [0, 1]
    assert [(p["case"], p["size_ml"], p["revised"], p["confirmed"]) for p in curves[0]["cases"]] == [
        ("c1", 50.0, True, False), ("c2", 30.0, False, True), ("c3", 20.0, True, False), ("c4", 10.0, False, False)]
    assert [p["size_ml"] for p in curves[1]["cases"]] == [20.0, 12.0, 6.0, 3.0]
    assert curves[1]["converged"] is True and curves[0]["converged"] is False


def test_quality_per_round(rounds):
    body = rounds.client("lead").get("/api/dashboard/quality/").json()
    q0, q1 = body["rounds"]
    assert q0["round"] == 0 and q0["converged"] is False and q1["converged"] is True
    dice = q0["pseudo_label_dice"]
    assert dice["cases"] == 3
    assert dice["organs"]["liver"] == {"mean": pytest.approx((2 * 540 / (540 + 612) + 2) / 3, abs=1e-6),
                                       "min": 0.9375, "n": 3}
    assert dice["organs"]["spleen"]["min"] == pytest.approx(0.8)
    assert list(dice["organs"])[:2] == ["spleen", "kidney_right"]  # the label set's order
    assert q0["validation"] == []
    assert [(v["arch"], v["mean"], v["parent_mean"], v["cases"]) for v in q1["validation"]] == [
        ("nnunet", 0.925, 0.825, ["c3"]), ("swin_unetr", 0.925, 0.83, ["c3"]), ("unet", 0.925, 0.835, ["c3"])]
    assert q0["error_tags"]["organs"] == {"spleen": {"missing_cavity": 1}, "liver": {"ambiguous_boundary": 1,
                                                                                      "other": 1}}
    assert q0["error_tags"]["total"] == 3 and q0["error_tags"]["tags"][0] == "missing_cavity"
    assert q0["attention"]["cases"] == 4 and q0["attention"]["max_ml"] == 50.0 and q0["attention"]["total_ml"] == 110
    voxels = q0["voxels"]
    assert voxels["total"] == 4 * 24 * 20 * 12 and voxels["changed_by_people"] == 72 + 180
    assert voxels["labelled"] == 4 * 1080 + 72
    assert voxels["people_share"] == pytest.approx(252 / 4392, abs=1e-6)
    assert voxels["ai_share"] == pytest.approx(1 - 252 / 4392, abs=1e-6)
    assert (voxels["cases"], voxels["cases_revised"], voxels["cases_confirmed"]) == (4, 2, 1)
    bias = q0["label_bias"]
    assert bias["sources"] == ["nnunet", "swin_unetr", "unet", "ensemble", "annotators"] and bias["cases"] == 3
    mean = bias["mean"]
    assert [mean[i][i] for i in range(5)] == [1.0] * 4 + [None]  # annotators vs annotators: no double read yet
    assert mean[2][3] == 1.0  # unet agrees with the pseudo-label in round 0
    assert mean[0][1] < mean[0][2] < 1.0  # nnunet and swin_unetr are shifted in opposite directions
    assert all(mean[i][j] == mean[j][i] for i in range(5) for j in range(5))
    assert q1["label_bias"]["mean"][0][1] == 1.0  # in round 1 the models agree
    assert q0["metrics"]["stale"] is False and q0["metrics"]["computed"]
    one = rounds.client("lead").get("/api/dashboard/quality/?round=1").json()["rounds"]
    assert [r["round"] for r in one] == [1]


def test_file_metrics_are_cached_and_refreshed_incrementally(rounds, tmp_path, monkeypatch,
                                                            django_capture_on_commit_callbacks):
    from annotation.services import metrics

    round1 = rounds.rounds[1]
    lead = rounds.client("lead")
    reads = []
    original = metrics.read_voxels
    monkeypatch.setattr(metrics, "read_voxels", lambda name: reads.append(name) or original(name))
    for _ in range(3):
        assert lead.get("/api/dashboard/quality/").status_code == 200
    assert reads == []  # GETs never read files
    assert update_round_metrics(round_id=round1.pk)["key"] == Round.objects.get(pk=round1.pk).metrics["key"]
    assert reads == []  # nothing changed: nothing read
    _revise(rounds.users["a1"], tmp_path, affine_for(), grow_liver, tags={}, seconds=100)  # c1, which a1 holds
    assert lead.get("/api/dashboard/quality/?round=1").json()["rounds"][0]["metrics"]["stale"] is True
    with django_capture_on_commit_callbacks(execute=False) as queued:
        accepted = lead.post("/api/dashboard/quality/refresh/", {"round": 1}, format="json")
        again = lead.post("/api/dashboard/quality/refresh/", {"round": 1}, format="json")
    # the request only queues a METRICS job (no file is read in the request); a second request joins the first
    assert accepted.status_code == 202 and reads == []
    assert accepted.json() == again.json() == {"round": 1, "job": "round1:metrics:1", "status": "queued"}
    for callback in queued:
        callback()
    assert Job.objects.get(key="round1:metrics:1").status == Job.Status.SUCCEEDED
    refreshed = lead.get("/api/dashboard/quality/?round=1").json()["rounds"][0]
    assert refreshed["metrics"]["stale"] is False
    # one case changed: its pseudo-label, revision and 3 archs x 2 organs soft predictions were read, nothing else
    assert len(reads) == 2 + 6
    assert refreshed["voxels"]["cases_revised"] == 2
    assert CaseMetrics.objects.filter(round=round1).count() == 4
    # inferring a case again (run_inference, a resumed round) replaces its prediction: that case is read again
    prediction = Prediction.objects.get(round=round1, case=rounds.cases["c3"])
    reads.clear()
    with local_copy(prediction.pseudo_label.name) as pseudo:
        record_prediction(case=rounds.cases["c3"], round=round1, pseudo_label=pseudo)
    assert lead.get("/api/dashboard/quality/?round=1").json()["rounds"][0]["metrics"]["stale"] is True
    update_round_metrics(round_id=round1.pk)
    assert reads == [prediction.pseudo_label.name]  # c3 has no revision in round 1: its pseudo-label only


def test_jobs_and_round_state(rounds):
    round1 = rounds.rounds[1]
    Job.objects.filter(key="round1:rank").update(status=Job.Status.RUNNING, progress=0.4, message="ranking")
    Job.objects.filter(key="round1:train:unet").update(status=Job.Status.FAILED, error="ValueError: no labels")
    body = rounds.client("lead").get("/api/dashboard/jobs/").json()
    assert body["active"] is False and body["can_start"] is False
    assert [r["number"] for r in body["rounds"]] == [1, 0]
    assert body["rounds"][1]["steps"]["infer"] == {"total": 4, "succeeded": 4}
    assert body["round"]["number"] == 1
    assert [(j["key"], j["progress"], j["message"]) for j in body["running"]] == [("round1:rank", 0.4, "ranking")]
    assert [(j["key"], j["error"]) for j in body["failed"]] == [("round1:train:unet", "ValueError: no labels")]
    assert rounds.client("boss").get("/api/dashboard/jobs/?round=0").json()["can_start"] is True
    assert round1.jobs.filter(kind__in=["train", "infer", "rank"]).count() == 3 + 4 + 1
    assert round1.jobs.filter(kind="qc").count() == 2  # the two revisions of round 1, checked as they landed


def test_admin_starts_a_round_and_a_lead_may_not(rounds):
    assert rounds.client("lead").post("/api/rounds/start/", {"steps": 1}, format="json").status_code == 403
    boss = rounds.client("boss")
    response = boss.post("/api/rounds/start/", {"archs": ["unet"], "steps": 1}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["number"] == 2 and response.json()["status"] == "training"
    assert Round.objects.get(number=1).status == Round.Status.CLOSED
    assert sorted(Job.objects.filter(round__number=2).values_list("key", flat=True)) == [
        "round2:train:click", "round2:train:unet"]
    busy = boss.post("/api/rounds/start/", {"steps": 1}, format="json")
    assert busy.status_code == 409 and "round 2 is still training" in busy.json()["detail"]


@pytest.mark.parametrize(("body", "field"), [
    ({"archs": ["bogus"]}, "archs"), ({"archs": []}, "archs"), ({"archs": ["unet", "unet"]}, "archs"),
    ({"size": "huge"}, "size"), ({"steps": 0}, "steps"), ({"epochs": 2, "steps": 3}, "steps"),
    ({"label_set": "nope"}, "label_set"), ({"holdout": 2}, "holdout")])
def test_start_round_bad_input_names_the_field(clients, body, field):
    response = clients["boss"].post("/api/rounds/start/", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.json()
    assert Round.objects.count() == 0


@pytest.mark.parametrize(("url", "field", "code"), [
    ("/api/dashboard/?round=abc", "round", 400), ("/api/dashboard/?round=9", "round", 404),
    ("/api/dashboard/?round=-1", "round", 400), ("/api/dashboard/tasks/?limit=0", "limit", 400),
    ("/api/dashboard/tasks/?limit=5000", "limit", 400), ("/api/dashboard/tasks/?offset=-2", "offset", 400),
    ("/api/dashboard/tasks/?status=bogus", "status", 400), ("/api/dashboard/quality/?round=7", "round", 404),
    ("/api/dashboard/jobs/?round=x", "round", 400)])
def test_bad_query_names_the_field(clients, url, field, code):
    """A malformed query is 400; a round number that names no round is 404 (selectors.rounds.round_by_number), as
    everywhere a round is named by its number."""
    response = clients["lead"].get(url)
    assert response.status_code == code and field in response.json(), response.json()


def test_empty_database(clients):
    api = clients["lead"]
    board = api.get("/api/dashboard/").json()
    assert board["round"] is None and board["remaining_tasks"] == 0 and board["leases"] == []
    assert api.get("/api/dashboard/tasks/").json()["results"] == []
    assert api.get("/api/dashboard/attention/").json() == {"rounds": []}
    assert api.get("/api/dashboard/quality/").json() == {"rounds": []}
    assert api.get("/api/dashboard/jobs/").json()["round"] is None
    for body, code in (({}, 400), ({"round": "x"}, 400), ({"round": 3}, 404)):
        response = api.post("/api/dashboard/quality/refresh/", body, format="json")
        assert response.status_code == code and "round" in response.json()


def test_round_status_prints_metrics_and_convergence(rounds, capsys):
    call_command("round_status", "0")
    out = capsys.readouterr().out
    assert "converged: no: the round's top-priority case needed a revision" in out
    assert "pseudo-label Dice against the revisions (3 cases)" in out and "liver 0.979" in out
    assert "voxels decided by the AI 94.3%, changed by people 5.7%" in out
    assert "label bias, mean Dice over organs (3 cases)" in out and "error tags: spleen: missing_cavity 1" in out
    call_command("round_status")
    out = capsys.readouterr().out
    assert out.startswith("round 1: annotating") and "converged: yes" in out
    assert "validation Dice of round1-unet-tiny on 1 held-out revised cases: 0.925 (parent 0.835)" in out
    Round.objects.filter(number=1).update(metrics={})
    call_command("round_status")
    assert "not computed yet; run with --refresh-metrics" in capsys.readouterr().out
    call_command("round_status", "--refresh-metrics")
    assert "file metrics computed" in capsys.readouterr().out
