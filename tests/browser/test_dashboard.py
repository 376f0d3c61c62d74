"""The lead dashboard in a real browser, on a database with two finished rounds (tests/api/rounds_world.py).

Every chart and table is checked against what the API returns: tables through their cells' data-col / data-value,
charts through the series they draw (data-series) and the marks Recharts rendered. Annotators are refused; a lead
assigns from the page; the jobs panel follows a running job live; an admin starts a round.

scripts/dashboard_screenshot.py saves a picture of the same database's dashboard (docs/dashboard.png).
"""

from __future__ import annotations

import csv
import io

import pytest

from annotation.models import Job, Round, Task
from tests.browser.conftest import seed_reference_data, sign_in

pytestmark = pytest.mark.django_db(transaction=True)

READ_TABLE = """(name) => {
  const table = document.querySelector(`[data-table="${name}"]`)
  if (!table) return null
  const rows = [...table.querySelectorAll('tbody tr[data-row]')].map((tr) => [tr.dataset.row,
    Object.fromEntries([...tr.querySelectorAll('td[data-col]')].map((td) => [td.dataset.col, td.dataset.value]))])
  return { count: Number(table.dataset.rows), rows }
}"""


@pytest.fixture
def rounds(tmp_path, settings, live_server):
    from tests.api.rounds_world import build_two_rounds

    seed_reference_data()
    return build_two_rounds(tmp_path)


def same(text: str | None, value) -> bool:
    """A data-value attribute against the API's value: "" is null, booleans are true / false, numbers exact."""
    if value is None:
        return text == ""
    if isinstance(value, bool):
        return text == ("true" if value else "false")
    if isinstance(value, int | float):
        return text not in (None, "") and float(text) == float(value)
    return text == str(value)


def table(page, name: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    found = page.evaluate(READ_TABLE, name)
    assert found is not None, f"no table {name!r} on the page"
    keys = [key for key, _ in found["rows"]]
    assert found["count"] == len(keys)
    return keys, dict(found["rows"])


def check_table(page, name: str, expected: dict[str, dict], order: list[str] | None = None) -> None:
    """Table `name` has exactly the rows of `expected` (row key -> {column: API value}), cell for cell."""
    keys, rows = table(page, name)
    assert sorted(keys) == sorted(expected), (name, keys, list(expected))
    if order is not None:
        assert keys == order, (name, keys)
    for key, columns in expected.items():
        for col, value in columns.items():
            assert same(rows[key].get(col), value), (name, key, col, rows[key].get(col), value)


def series(page, name: str):
    import json

    raw = page.get_attribute(f"[data-chart={name}]", "data-series")
    assert raw is not None, f"no chart {name!r} on the page"
    return json.loads(raw)


def marks(page, name: str, selector: str) -> int:
    return page.locator(f"[data-chart={name}] {selector}").count()


def api_get(rounds, url: str):
    response = rounds.client("lead").get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.json()


def open_dashboard(page, base_url: str, user: str = "lead") -> None:
    sign_in(page, base_url, user)
    page.click("[data-action=dashboard]")
    page.wait_for_selector("[data-page=dashboard][data-state=ready]")
    page.wait_for_selector("[data-jobs-state=ready]")


def test_an_annotator_is_refused(rounds, page, live_server):
    sign_in(page, live_server.url, "a1")
    assert page.locator("[data-action=dashboard]").count() == 0
    page.goto(live_server.url + "/#/dashboard")
    page.wait_for_selector("[data-page=forbidden]")
    assert page.locator("[data-page=dashboard]").count() == 0
    for url in ("/api/dashboard/", "/api/dashboard/quality/", "/api/dashboard/jobs/"):
        assert page.request.get(live_server.url + url).status == 403


def test_queues_and_progress_show_what_the_api_returns(rounds, page, live_server):
    open_dashboard(page, live_server.url)
    board = api_get(rounds, "/api/dashboard/")
    assert page.get_attribute("[data-round]", "data-round") == "1"
    assert page.get_attribute("[data-round]", "data-converged") == "true"

    assert series(page, "tasks-by-status") == [{"status": s, "tasks": n} for s, n in board["tasks_by_status"].items()]
    assert marks(page, "tasks-by-status", ".recharts-bar-rectangle") == sum(
        1 for n in board["tasks_by_status"].values() if n)
    assert series(page, "tasks-by-annotator") == [
        {"annotator": name, "revised": r["revised"], "confirmed": r["confirmed"], "leased": r["leased"],
         "assigned": r["assigned"]} for name, r in board["by_annotator"].items()]
    check_table(page, "by-annotator", {name: {"annotator": name, **r} for name, r in board["by_annotator"].items()},
                order=list(board["by_annotator"]))
    check_table(page, "by-organ", {name: {"organ": name, **r} for name, r in board["by_organ"].items()})
    leases = {str(lease["task"]): {k: v for k, v in lease.items() if k not in ("held_minutes", "priority")}
              for lease in board["leases"]}
    check_table(page, "leases", leases)
    _, shown = table(page, "leases")
    for lease in board["leases"]:
        assert abs(float(shown[str(lease["task"])]["held_minutes"]) - lease["held_minutes"]) < 1.0

    ranked = api_get(rounds, "/api/dashboard/tasks/?limit=50")
    check_table(page, "ranked-tasks", {str(t["id"]): {k: v for k, v in t.items() if k not in ("id", "case_id",
                                                                                               "lease_expires")}
                                       for t in ranked["results"]}, order=[str(t["id"]) for t in ranked["results"]])

    assert series(page, "per-day") == board["throughput_per_day"]
    by_day = {row["day"]: row for row in series(page, "per-annotator-day")}
    for row in board["per_day_by_annotator"]:
        assert by_day[row["day"]][row["annotator"]] == row["revised"] + row["confirmed"]
    check_table(page, "per-day-by-annotator", {f"{r['day']}/{r['annotator']}": r
                                               for r in board["per_day_by_annotator"]})
    check_table(page, "time-left", {"current": board["time_left"], "paper": board["time_left_at_default_pace"]})
    for stat, value in (("median-minutes", board["median_minutes_per_case"]), ("remaining", board["remaining_tasks"]),
                        ("working-days", board["time_left"]["working_days"])):
        assert same(page.get_attribute(f"[data-stat={stat}]", "data-value"), value), stat

    # a CSV is the table's rows and columns
    with page.expect_download() as download:
        page.click("[data-csv=by-annotator]")
    text = open(download.value.path(), encoding="utf-8").read()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["annotator"] for r in rows] == list(board["by_annotator"])
    for r in rows:
        for col, value in board["by_annotator"][r["annotator"]].items():
            assert same(r[col], value), (col, r[col], value)

    # assign the top open case (open rank 1 to 1) to a2 from the page
    page.check("[data-form=assign] [data-mode=range]")
    page.fill("[data-form=assign] input[name=rank_from]", "1")
    page.fill("[data-form=assign] input[name=rank_to]", "1")
    page.select_option("[data-form=assign] select[name=annotator]", "a2")
    page.click("[data-action=assign]")
    page.wait_for_selector("[data-assign-result]")
    assert rounds.task(1, "c3").assignee.username == "a2"
    page.wait_for_function("""() => document.querySelector(
        '[data-table="ranked-tasks"] tr[data-row] td[data-col=assignee][data-value=a2]') !== null""")
    # and one case by its checkbox, to a1
    c4 = rounds.task(1, "c4")
    page.check("[data-form=assign] [data-mode=selected]")
    page.check(f"[data-select-task='{c4.pk}']")
    page.select_option("[data-form=assign] select[name=annotator]", "a1")
    page.click("[data-action=assign]")
    page.wait_for_function(f"""() => document.querySelector(
        '[data-table="ranked-tasks"] tr[data-row="{c4.pk}"] td[data-col=assignee]')?.dataset.value === 'a1'""")
    assert Task.objects.get(pk=c4.pk).assignee.username == "a1"
    assert not page.errors


def test_attention_and_quality_show_what_the_api_returns(rounds, page, live_server):
    open_dashboard(page, live_server.url)
    curves = api_get(rounds, "/api/dashboard/attention/")["rounds"]
    quality = api_get(rounds, "/api/dashboard/quality/")["rounds"]

    assert series(page, "attention-curve") == [
        {"round": c["round"], "sizes": [p["size_ml"] for p in c["cases"]],
         "revised": [p["rank"] for p in c["cases"] if p["revised"]],
         "confirmed": [p["rank"] for p in c["cases"] if p["confirmed"]]} for c in curves]
    assert marks(page, "attention-curve", "path.recharts-line-curve") == len(curves) == 2
    assert marks(page, "attention-curve", ".recharts-scatter-symbol") == sum(
        p["revised"] + p["confirmed"] for c in curves for p in c["cases"])
    check_table(page, "attention-summary", {str(q["round"]): {"round": q["round"], "converged": q["converged"],
                                                              **q["attention"]} for q in quality})

    check_table(page, "rounds-quality", {str(q["round"]): {
        "round": q["round"], "status": q["status"], "converged": q["converged"],
        "reviewed": q["pseudo_label_dice"]["cases"], "pseudo_label_dice": q["pseudo_label_dice"]["mean"],
        "ai_share": q["voxels"]["ai_share"], "people_share": q["voxels"]["people_share"],
        "error_tags": q["error_tags"]["total"], "metrics_stale": q["metrics"]["stale"]} for q in quality})
    _, shown = table(page, "rounds-quality")
    for q in quality:
        means = [v["mean"] for v in q["validation"] if v["mean"] is not None]
        assert (shown[str(q["round"])]["validation"] == "") if not means else \
            float(shown[str(q["round"])]["validation"]) == pytest.approx(sum(means) / len(means))

    organs = [o for o in quality[0]["organs"] if any(o in q["pseudo_label_dice"]["organs"] for q in quality)]
    assert series(page, "pseudo-label-dice") == [
        {"organ": o, **{f"round {q['round']}": q["pseudo_label_dice"]["organs"][o]["mean"] for q in quality}}
        for o in organs]
    check_table(page, "pseudo-label-dice", {o: {
        "organ": o, **{f"round_{q['round']}": q["pseudo_label_dice"]["organs"][o]["mean"] for q in quality},
        **{f"round_{q['round']}_n": q["pseudo_label_dice"]["organs"][o]["n"] for q in quality}} for o in organs},
        order=organs)

    assert series(page, "validation") == [{"round": q["round"], **{v["arch"]: v["mean"] for v in q["validation"]}}
                                          for q in quality if q["validation"]]
    check_table(page, "validation", {f"{q['round']}/{v['arch']}": {
        "round": q["round"], "arch": v["arch"], "model": v["model"], "cases": len(v["cases"]), "mean": v["mean"],
        "parent_mean": v["parent_mean"], **{f"dice_{o}": d for o, d in v["dice"].items()}}
        for q in quality for v in q["validation"]})
    check_table(page, "voxel-share", {str(q["round"]): {"round": q["round"], **q["voxels"]} for q in quality})

    for q in reversed(quality):  # the latest round is shown first; then pick each round
        page.select_option("[data-control=quality-round]", str(q["round"]))
        page.wait_for_selector(f"[data-selected-round='{q['round']}']")
        bias = q["label_bias"]
        check_table(page, "label-bias", {source: {"source": source, **dict(zip(bias["sources"], row, strict=True))}
                                         for source, row in zip(bias["sources"], bias["mean"], strict=True)},
                    order=bias["sources"])
        page.select_option("[data-control=bias-organ]", "liver")
        check_table(page, "label-bias", {source: dict(zip(bias["sources"], row, strict=True))
                                         for source, row in zip(bias["sources"], bias["organs"]["liver"],
                                                                strict=True)})
        page.select_option("[data-control=bias-organ]", "")
        v = q["voxels"]
        assert series(page, "voxel-share") == [{"name": "decided by AI", "voxels": v["decided_by_ai"]},
                                               {"name": "changed by people", "voxels": v["changed_by_people"]}]
        assert marks(page, "voxel-share", ".recharts-pie-sector") == 2
        tags = q["error_tags"]
        present = [t for t in tags["tags"] if any(t in per for per in tags["organs"].values())]
        assert series(page, "error-tags") == [{"organ": o, **{t: per.get(t, 0) for t in present}}
                                              for o, per in tags["organs"].items()]
        check_table(page, "error-tags", {o: {"organ": o, **{t: per.get(t, 0) for t in tags["tags"]}}
                                         for o, per in tags["organs"].items()})
    assert not page.errors


def test_jobs_follow_progress_live_and_leads_cannot_start_rounds(rounds, page, live_server):
    round1 = rounds.rounds[1]
    Job.objects.filter(key="round1:rank").update(status=Job.Status.RUNNING, progress=0.25, message="ranking")
    Job.objects.filter(key="round1:train:unet").update(status=Job.Status.FAILED,
                                                       error="ValueError: no labelled case to train on")
    open_dashboard(page, live_server.url)
    board = api_get(rounds, "/api/dashboard/jobs/")
    assert page.locator("[data-form=start-round]").count() == 0  # leads see the jobs, only admins start rounds
    check_table(page, "rounds-state", {str(r["number"]): {
        "number": r["number"], "status": r["status"], "converged": r["converged"], "error": r["error"] or None,
        "train": f"{r['steps']['train']['succeeded']}/{r['steps']['train']['total']}",
        "infer": f"{r['steps']['infer']['succeeded']}/{r['steps']['infer']['total']}"} for r in board["rounds"]},
        order=[str(r["number"]) for r in board["rounds"]])
    check_table(page, "running-jobs", {j["key"]: {"key": j["key"], "progress": j["progress"], "message": j["message"]}
                                       for j in board["running"]})
    check_table(page, "failed-jobs", {j["key"]: {"key": j["key"], "error": j["error"]} for j in board["failed"]})
    assert "no labelled case to train on" in page.inner_text("[data-table=failed-jobs]")
    assert page.get_attribute("progress[data-job='round1:rank']", "data-progress") == "0.25"
    Job.objects.filter(key="round1:rank").update(progress=0.75, message="almost")
    page.wait_for_selector("progress[data-job='round1:rank'][data-progress='0.75']", timeout=15_000)
    Job.objects.filter(key="round1:rank").update(status=Job.Status.SUCCEEDED, progress=1.0)
    page.wait_for_selector("[data-table=running-jobs][data-rows='0']", timeout=15_000)
    assert round1.jobs.filter(status=Job.Status.RUNNING).count() == 0
    assert not page.errors


def test_an_admin_starts_a_round_from_the_page(rounds, page, live_server, monkeypatch, settings):
    queued = []
    settings.ATLAS_JOB_ENQUEUE = "annotation.services.dispatch.send_to_worker"
    monkeypatch.setattr("annotation.services.dispatch.send_to_worker", lambda job: queued.append(job.key))
    open_dashboard(page, live_server.url, "boss")
    page.uncheck("[data-form=start-round] [data-arch=swin_unetr]")
    page.fill("[data-form=start-round] input[name=steps]", "2")
    page.click("[data-action=start-round]")
    page.wait_for_selector("[data-start-result]")
    assert "round 2 started" in page.inner_text("[data-start-result]")
    round2 = Round.objects.get(number=2)
    assert round2.status == Round.Status.TRAINING and round2.settings["steps"] == 2
    assert sorted(queued) == ["round2:train:click", "round2:train:nnunet", "round2:train:unet"]
    page.wait_for_selector("[data-table=rounds-state] tr[data-row='2'] td[data-col=status][data-value=training]")
    page.wait_for_selector("[data-jobs-state=ready][data-active=true]")
    assert page.is_disabled("[data-action=start-round]")  # one round at a time
    assert not page.errors


def test_refresh_queues_a_metrics_job_and_shows_its_result(rounds, page, live_server, tmp_path):
    from tests.api.rounds_world import _revise, grow_liver
    from tests.conftest import affine_for

    _revise(rounds.users["a1"], tmp_path, affine_for(), grow_liver, tags={}, seconds=100)  # round 1 goes stale
    open_dashboard(page, live_server.url)
    page.select_option("[data-control=quality-round]", "1")
    page.wait_for_selector("[data-selected-round='1'] [data-metrics-stale=true]")
    page.click("[data-action=refresh-metrics]")
    page.wait_for_selector("[data-selected-round='1'] [data-metrics-stale=false]", timeout=30_000)
    job = Job.objects.get(kind=Job.Kind.METRICS, round=rounds.rounds[1])
    assert job.status == Job.Status.SUCCEEDED and job.key == "round1:metrics:1"
    quality = api_get(rounds, "/api/dashboard/quality/?round=1")["rounds"][0]
    assert quality["metrics"]["stale"] is False and quality["voxels"]["cases_revised"] == 2
    assert not page.errors


def test_members_panel_shows_what_made_the_round_and_what_is_never_fine_tuned(rounds, page, live_server):
    """Issue 17: the dashboard says which members made the round, which were fine-tuned, and lists registered models
    and imported predictions (never fine-tuned) with the rounds they joined."""
    from annotation.models import ModelVersion

    shown = Round.objects.order_by("-number").first()
    tool = ModelVersion.objects.create(name="tool", arch=ModelVersion.Arch.EXTERNAL,
                                       metadata={"label_set": "abdomenatlas", "source": "/data/tool",
                                                 "organs": ["liver", "spleen"]})
    tool.rounds.add(shown)
    open_dashboard(page, live_server.url)
    page.wait_for_selector("[data-members-state=ready]")
    board = api_get(rounds, "/api/dashboard/jobs/")["round"]
    assert "tool" in {m["name"] for m in board["members"]}
    check_table(page, "round-members", {m["name"]: {"source": m["source"], "fine_tuned": m["fine_tuned"],
                                                    "kind": m["kind"]} for m in board["members"]})
    tuned = [m["name"] for m in board["members"] if m["fine_tuned"]]
    assert page.get_attribute("[data-fine-tuned]", "data-fine-tuned") == " ".join(tuned)
    listed = api_get(rounds, "/api/dashboard/members/")["members"]
    assert [m["name"] for m in listed] == ["tool"]
    check_table(page, "registered-members", {"tool": {"source": "imported", "fine_tuned": False,
                                                      "rounds": str(shown.number), "location": "/data/tool"}})
    # issue 25: the click model (the workspace's interactive engines), its version and Dice after 1, 3, 5 clicks
    engines = api_get(rounds, "/api/dashboard/members/")["interactive"]
    assert engines and engines[0]["kind"] == "atlas-click"
    check_table(page, "click-models", {e["kind"]: {"version": e["version"], "licence": e["licence"],
                                                   **{k: e["validation"][k] for k in ("dice_1", "dice_3", "dice_5")}}
                                       for e in engines}, order=[e["kind"] for e in engines])
    click_model = board["click_model"]
    assert page.get_attribute("[data-round-click-model]", "data-round-click-model") == (
        click_model["version"] if click_model else "")


def test_audit_panel_shows_the_estimates_the_api_returns(tmp_path, settings, page, live_server):
    """Issue 26: the audit panel shows per round the audit's figures, and for the shown round its estimates with
    their intervals and sample sizes, as GET /api/dashboard/audit/ gives them."""
    from annotation.services import audit, queue, revisions
    from tests.api.conftest import build_world

    seed_reference_data()
    world = build_world(tmp_path, {f"k{i}": 5.0 + i for i in range(6)})
    audit.set_plan(round=world.round, audit_stop=0.99)
    audit.draw_audit(round=world.round, size=4, annotators=["a2"], worked=1)  # the top case is the queue's
    for _ in range(4):  # the audit tasks, assigned to a2 like any other
        task = queue.lease_next(user=world.users["a2"])
        revisions.confirm(task_id=task.pk, user=world.users["a2"], base_revision=None)
    board = world.client("lead").get("/api/dashboard/audit/").json()
    assert board["audit"]["read"] == 4 and board["stopping"]["stopped_by"] == "audit"
    open_dashboard(page, live_server.url)
    page.wait_for_selector("[data-audit-state=ready]")
    assert page.get_attribute("[data-audit-state]", "data-audit-read") == "4"
    assert page.get_attribute("[data-audit-state]", "data-stopped-by") == "audit"
    check_table(page, "audit-rounds", {str(r["round"]): {"read": r["read"], "drawn": r["drawn"], "frame": r["frame"]}
                                       for r in board["rounds"]})
    check_table(page, "audit-unrevised", {key: {"n": e["needs_correction"]["n"]}
                                          for key, e in board["audit"]["unrevised"].items()})
    check_table(page, "audit-strata", {str(s["stratum"]): {"frame": s["frame"], "drawn": s["drawn"], "read": s["read"]}
                                       for s in board["audit"]["strata"]})
    assert not page.errors
