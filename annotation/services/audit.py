"""Audits and auto-accept: how good is the part nobody revised?

- **Auto-accept** (`apply_auto_accept`): a lead's rule (attention below T mL, no QC flag on the pseudo-label, every
  member's Dice with the mean above D) makes the cases it accepts final with the AI's label (models.AutoAccept; the
  final label's source "auto_accepted", selectors.labels). They leave the ordinary queue but stay in the audit's
  frame, so that the audit measures exactly the auto-accepted part too.
- **Audit sample** (`draw_audit`): a seeded draw, stratified by attention (ml_engine.audit), of the round's cases
  outside the revision queue's worked part. Each drawn case's ordinary task is assigned to an annotator, round
  robin, as a lead's assignment would be: nothing in the task, the API or the page says it is an audit. A share of
  them (`double_reads`) gets a second, independent read (models.DoubleRead) by another annotator.
- **The audit's stopping rule** (`record_audit_stopping`): once every drawn case is read, the round stops when the
  upper end of the 95% interval of the share needing correction is below its target (Round.settings["audit_stop"]);
  the round records which rule stopped it (Round.stopped_by: "top_case", today's rule, or "audit").
- `measure_read`: the NSD of the round's pseudo-label against an audit read (the QC job of the read's revision).

A round's plan (Round.settings["auto_accept"], ["audit"], ["audit_stop"]) is set with `start_round` or `set_plan`
and applied by an AUDIT job once the round is annotating.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable, Sequence

import numpy as np
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count

from annotation.errors import Conflict, Invalid
from annotation.models import (
    Audit,
    AuditCase,
    AutoAccept,
    DoubleRead,
    Job,
    LabelCheck,
    Organ,
    Prediction,
    QualityFlag,
    Revision,
    Round,
    SourceLabel,
    Task,
)
from annotation.selectors.audit import DEFAULT_THRESHOLDS, audit_stop_holds
from annotation.services import quality_checks, read_agreement
from annotation.services.dispatch import enqueue
from annotation.storage import read_voxels
from ml_engine import audit as stats
from ml_engine.metrics import dice

AUTO_ACCEPT_KEYS = ("max_attention_ml", "no_qc_flag", "min_member_dice")
AUDIT_KEYS = ("size", "target_width", "expected_share", "seed", "strata", "double_reads", "annotators", "thresholds",
              "worked")


def _number(value, field: str, *, low: float | None = None, high: float | None = None, integer: bool = False):
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Invalid("expected a number", field=field)
    if integer and int(value) != value:
        raise Invalid("expected a whole number", field=field)
    if (low is not None and value < low) or (high is not None and value > high):
        raise Invalid(f"expected a number from {low} to {high}" if high is not None else f"expected at least {low}",
                      field=field)
    return int(value) if integer else float(value)


def check_auto_accept(rule: dict) -> dict:
    """The rule, checked: {"max_attention_ml": T (required), "no_qc_flag": bool (default true), "min_member_dice": D
    or null}. Invalid names the field."""
    if not isinstance(rule, dict):
        raise Invalid("expected an object", field="auto_accept")
    unknown = sorted(set(rule) - set(AUTO_ACCEPT_KEYS))
    if unknown:
        raise Invalid(f"{unknown[0]!r} is not a setting of the rule ({', '.join(AUTO_ACCEPT_KEYS)})",
                      field="auto_accept")
    if "max_attention_ml" not in rule:
        raise Invalid("the rule needs max_attention_ml (accept cases with less attention, in mL)",
                      field="auto_accept.max_attention_ml")
    out = {"max_attention_ml": _number(rule["max_attention_ml"], "auto_accept.max_attention_ml", low=0)}
    no_flag = rule.get("no_qc_flag", True)
    if not isinstance(no_flag, bool):
        raise Invalid("expected true or false", field="auto_accept.no_qc_flag")
    out["no_qc_flag"] = no_flag
    d = rule.get("min_member_dice")
    out["min_member_dice"] = None if d is None else _number(d, "auto_accept.min_member_dice", low=0, high=1)
    return out


def check_audit(plan: dict) -> dict:
    """The audit's plan, checked: a size, or a target_width (full width of the 95% interval of the share needing
    correction) with expected_share; seed, strata, double_reads (share of the sample read twice), annotators
    (usernames), thresholds {"ml", "dice"}, worked (top-ranked cases the queue will revise, left out of the frame)."""
    if not isinstance(plan, dict):
        raise Invalid("expected an object", field="audit")
    unknown = sorted(set(plan) - set(AUDIT_KEYS))
    if unknown:
        raise Invalid(f"{unknown[0]!r} is not a setting of the audit ({', '.join(AUDIT_KEYS)})", field="audit")
    out: dict = {}
    if plan.get("size") is not None:
        out["size"] = _number(plan["size"], "audit.size", low=1, integer=True)
    if plan.get("target_width") is not None:
        out["target_width"] = _number(plan["target_width"], "audit.target_width", low=0.001, high=0.999)
    if ("size" in out) == ("target_width" in out):
        raise Invalid("give the sample's size, or the target width of its 95% interval (not both)", field="audit.size")
    out["expected_share"] = _number(plan.get("expected_share", 0.1), "audit.expected_share", low=0, high=1)
    out["seed"] = _number(plan.get("seed", 0), "audit.seed", low=0, high=2**31, integer=True)
    out["strata"] = _number(plan.get("strata", stats.DEFAULT_STRATA), "audit.strata", low=1, high=100, integer=True)
    out["double_reads"] = _number(plan.get("double_reads", 0.0), "audit.double_reads", low=0, high=1)
    out["worked"] = _number(plan.get("worked", 0), "audit.worked", low=0, integer=True)
    annotators = plan.get("annotators")
    if annotators is not None:
        if not isinstance(annotators, list) or not all(isinstance(a, str) for a in annotators):
            raise Invalid("expected a list of usernames", field="audit.annotators")
        known = set(User.objects.filter(username__in=annotators, is_active=True).values_list("username", flat=True))
        missing = [a for a in annotators if a not in known]
        if missing:
            raise Invalid(f"no active user {missing[0]!r}", field="audit.annotators")
        out["annotators"] = annotators
    thresholds = plan.get("thresholds") or {}
    if not isinstance(thresholds, dict) or set(thresholds) - {"ml", "dice"}:
        raise Invalid('expected {"ml": mL or null, "dice": Dice or null}', field="audit.thresholds")
    t = {**DEFAULT_THRESHOLDS, **thresholds}
    out["thresholds"] = {
        "ml": None if t["ml"] is None else _number(t["ml"], "audit.thresholds.ml", low=0),
        "dice": None if t["dice"] is None else _number(t["dice"], "audit.thresholds.dice", low=0, high=1)}
    if out["thresholds"]["ml"] is None and out["thresholds"]["dice"] is None:
        raise Invalid("at least one of ml and dice must be set", field="audit.thresholds")
    return out


def check_stop(target) -> float | None:
    return None if target is None else _number(target, "audit_stop", low=0.0001, high=1)


def set_plan(*, round: Round, auto_accept: dict | None = None, audit: dict | None = None,
             audit_stop: float | None = None) -> Job | None:
    """Store the round's auto-accept rule, audit plan and audit stopping target (those given), and queue the AUDIT
    job that applies them when the round is annotating (else advance queues it once the round is ranked)."""
    changes = {}
    if auto_accept is not None:
        changes["auto_accept"] = check_auto_accept(auto_accept)
    if audit is not None:
        changes["audit"] = check_audit(audit)
    if audit_stop is not None:
        changes["audit_stop"] = check_stop(audit_stop)
    if not changes:
        raise Invalid("give auto_accept, audit or audit_stop", field="audit")
    with transaction.atomic():
        locked = Round.objects.select_for_update().get(pk=round.pk)
        if locked.status not in (*Round.ACTIVE, Round.Status.ANNOTATING):
            raise Conflict(f"round {locked.number} is {locked.status}")
        if "audit" in changes and Audit.objects.filter(round=locked).exists():
            raise Conflict(f"round {locked.number} has its audit sample already")
        locked.settings = {**locked.settings, **changes}
        locked.save(update_fields=["settings"])
        job = request_audit_job(locked) if locked.status == Round.Status.ANNOTATING else None
    if "audit_stop" in changes:  # the reads may all be in already
        record_audit_stopping(round.pk)
    return job


def carried_plan(previous: Round | None) -> dict:
    """The plan a new round takes over from the previous one: its auto-accept rule, audit stopping target and audit
    plan, the audit's seed moved on by one (each round draws afresh)."""
    settings = (previous.settings or {}) if previous is not None else {}
    plan = {key: settings[key] for key in ("auto_accept", "audit_stop") if settings.get(key) is not None}
    if settings.get("audit"):
        plan["audit"] = {**settings["audit"], "seed": int(settings["audit"].get("seed", 0)) + 1}
    return plan


def has_plan(round: Round) -> bool:
    return bool((round.settings or {}).get("auto_accept") or (round.settings or {}).get("audit"))


def request_audit_job(round: Round) -> Job | None:
    """Queue the AUDIT job that applies the round's plan (a queued one is reused). None: no plan."""
    if not has_plan(round):
        return None
    waiting = round.jobs.filter(kind=Job.Kind.AUDIT, status=Job.Status.QUEUED).first()
    if waiting is not None:
        return waiting
    n = round.jobs.filter(kind=Job.Kind.AUDIT).count()
    job = Job.objects.create(key=f"round{round.number}:audit:{n + 1}", kind=Job.Kind.AUDIT, round=round)
    enqueue([job])
    return job


def audit_job(job: Job, progress: Callable[[float, str], None]) -> None:
    """The AUDIT job: the auto-accept rule first (its cases stay in the audit's frame), then the audit sample."""
    round = Round.objects.select_related("label_set").get(pk=job.round_id)
    plan = round.settings or {}
    if plan.get("auto_accept"):
        rule = plan["auto_accept"]
        if rule.get("no_qc_flag", True):
            quality_checks.check_predictions(round)  # what is checked already is not read again
        progress(0.3, "auto-accept")
        apply_auto_accept(round=round, **rule)
    if plan.get("audit") and not Audit.objects.filter(round=round).exists():
        progress(0.7, "audit sample")
        draw_audit(round=round, **plan["audit"])


def _whole_imports(round: Round) -> set[int]:
    """Cases whose imported label covers every organ: their final label is not the AI's."""
    n = round.label_set.organs.count()
    return set(SourceLabel.objects.filter(case__dataset__label_set=round.label_set_id).annotate(k=Count("organs"))
               .filter(k__gte=n).values_list("case_id", flat=True))


def _untouched(round: Round) -> list[Task]:
    """The round's read-1 tasks nobody has started, assigned or read twice, whose final label would be the AI's."""
    pairs = DoubleRead.objects.filter(round=round).values("case_id")
    return list(Task.objects.filter(round=round, read=1, status=Task.Status.PENDING, assignee__isnull=True)
                .exclude(case_id__in=pairs).exclude(case_id__in=Revision.objects.values("case_id"))
                .exclude(case_id__in=_whole_imports(round)).select_related("case").order_by("-priority", "id"))


def member_agreement(prediction: Prediction, organs: dict[int, str]) -> float | None:
    """The lowest Dice, over organs and members, of a member's mask (soft prediction > 127) with the pseudo-label's;
    None: no member's soft predictions are stored (imported votes only)."""
    soft = (prediction.files or {}).get("soft_pred") or {}
    if not soft:
        return None
    pseudo = read_voxels(prediction.pseudo_label.name)
    lowest = 1.0
    for value, organ in organs.items():
        mean = pseudo == value
        for names in soft.values():
            if names.get(organ):
                member = read_voxels(names[organ]) > 127
                if mean.any() or member.any():
                    lowest = min(lowest, float(dice(member, mean)))
    return round(lowest, 6)


def apply_auto_accept(*, round: Round, max_attention_ml: float, no_qc_flag: bool = True,
                      min_member_dice: float | None = None) -> list[AutoAccept]:
    """Accept the AI's label of each untouched case of the round that the rule accepts; returns the new rows."""
    if round.status != Round.Status.ANNOTATING:
        raise Conflict(f"round {round.number} is {round.status}; the rule applies to an annotating round")
    rule = check_auto_accept({"max_attention_ml": max_attention_ml, "no_qc_flag": no_qc_flag,
                              "min_member_dice": min_member_dice})
    organs = dict(Organ.objects.filter(label_set=round.label_set_id).values_list("value", "name"))
    flagged = set(QualityFlag.objects.filter(label_check__round=round, label_check__prediction__isnull=False)
                  .values_list("label_check__case_id", flat=True))
    checked = set(LabelCheck.objects.filter(round=round, prediction__isnull=False).exclude(key="volumes only")
                  .values_list("case_id", flat=True))
    predictions = {p.case_id: p for p in Prediction.objects.filter(round=round)}
    accepted = []
    for task in _untouched(round):
        prediction = predictions.get(task.case_id)
        if prediction is None or task.priority >= rule["max_attention_ml"] or AutoAccept.objects.filter(
                case_id=task.case_id).exists():
            continue
        if rule["no_qc_flag"] and (task.case_id in flagged or task.case_id not in checked):
            continue
        figures = {"attention_ml": builtins.round(task.priority, 3), "qc_flags": 0}
        if rule["min_member_dice"] is not None:
            lowest = member_agreement(prediction, organs)
            if lowest is None or lowest <= rule["min_member_dice"]:
                continue
            figures["min_member_dice"] = lowest
        accepted.append(AutoAccept(case_id=task.case_id, round=round, label=prediction.pseudo_label.name, rule=rule,
                                   figures=figures))
    with transaction.atomic():
        AutoAccept.objects.bulk_create(accepted)
    return accepted


def _annotators(names: Sequence[str] | None) -> list[User]:
    users = User.objects.filter(is_active=True)
    users = users.filter(username__in=names) if names else users.filter(groups__name="annotator")
    return list(users.order_by("username").distinct())


def frame_of(round: Round, *, worked: int = 0) -> list[Task]:
    """The audit's frame: the untouched tasks (auto-accepted cases included) below the queue's worked part (the top
    `worked` ranks of the round's read-1 tasks, by priority)."""
    top = set(Task.objects.filter(round=round, read=1).order_by("-priority", "id")
              .values_list("pk", flat=True)[:worked]) if worked else set()
    return [t for t in _untouched(round) if t.pk not in top]


def draw_audit(*, round: Round, size: int | None = None, target_width: float | None = None,
               expected_share: float = 0.1, seed: int = 0, strata: int = stats.DEFAULT_STRATA,
               double_reads: float = 0.0, annotators: Sequence[str] | None = None, thresholds: dict | None = None,
               worked: int = 0, drawn_by=None) -> Audit:
    """Draw the round's audit sample (see the module's docstring): the size given, or the smallest whose Wilson 95%
    interval of a share near expected_share is at most target_width wide. Conflict: the round is not annotating, or
    has its sample already; Invalid: a bad setting, or an empty frame."""
    plan = check_audit({"size": size, "target_width": target_width, "expected_share": expected_share, "seed": seed,
                        "strata": strata, "double_reads": double_reads, "annotators": annotators,
                        "thresholds": thresholds, "worked": worked})
    if annotators is None:
        plan.pop("annotators", None)
    with transaction.atomic():
        locked = Round.objects.select_for_update().get(pk=round.pk)
        if locked.status != Round.Status.ANNOTATING:
            raise Conflict(f"round {locked.number} is {locked.status}; an audit is drawn in an annotating round")
        if Audit.objects.filter(round=locked).exists():
            raise Conflict(f"round {locked.number} has its audit sample already")
        frame = frame_of(locked, worked=plan["worked"])
        if not frame:
            raise Invalid("no case is left outside the worked part to audit", field="audit.worked")
        n = plan.get("size") or stats.sample_size(plan["target_width"], expected=plan["expected_share"],
                                                  population=len(frame))
        n = min(n, len(frame))
        by_name = {t.case.name: t for t in frame}
        drawn, sizes = stats.draw({t.case.name: t.priority for t in frame}, n, strata=plan["strata"],
                                  seed=plan["seed"])
        of = stats.stratify({t.case.name: t.priority for t in frame}, strata=len(sizes), seed=plan["seed"])
        audit = Audit.objects.create(round=locked, seed=plan["seed"], size=len(drawn), strata=len(sizes),
                                     frame={"sizes": sizes, "strata": {str(by_name[k].case_id): h
                                                                       for k, h in of.items()}},
                                     settings={k: v for k, v in plan.items() if k not in ("seed", "strata")},
                                     drawn_by=drawn_by)
        people = _annotators(plan.get("annotators"))
        doubles = {d.name for d in sorted(drawn, key=lambda d: stats.draw_key(plan["seed"] + 1, d.name))
                   [:int(math.floor(plan["double_reads"] * len(drawn) + 0.5))]}
        turn = 0
        for d in drawn:
            task = by_name[d.name]
            AuditCase.objects.create(audit=audit, case=task.case, task=task, stratum=d.stratum, order=d.order)
            if people:
                Task.objects.filter(pk=task.pk).update(assignee=people[turn % len(people)])
            if d.name in doubles:
                second = Task.objects.create(case=task.case, round=locked, read=2, priority=task.priority,
                                             assignee=people[(turn + 1) % len(people)] if len(people) > 1 else None)
                DoubleRead.objects.create(round=locked, case=task.case, first=task, second=second)
                turn += 1
            turn += 1
    return audit


def measure_read(revision: Revision) -> AuditCase | None:
    """The NSD per organ of the round's pseudo-label against an audit read (its Dice and changed voxels are on the
    revision). None: the revision reads no audit case."""
    pair = DoubleRead.objects.filter(second_id=revision.task_id).first()
    first_task = pair.first_id if pair is not None else revision.task_id
    row = AuditCase.objects.filter(task_id=first_task).select_related("case", "audit__round").first()
    if row is None or str(revision.pk) in (row.nsd or {}):
        return row
    prediction = Prediction.objects.filter(case=row.case_id, round=row.audit.round_id).first()
    if prediction is None:
        return row
    organs = dict(Organ.objects.filter(label_set=row.case.dataset.label_set_id).values_list("value", "name"))
    agreement = read_agreement.organ_agreement(read_voxels(prediction.pseudo_label.name),
                                               read_voxels(revision.label_file.name), organs,
                                               [float(s) for s in row.case.spacing])
    values = {organ: agreement.get(organ, {"nsd": 1.0})["nsd"] for organ in organs.values()}
    rater = _rater_noise(row, organs)
    with transaction.atomic():
        locked = AuditCase.objects.select_for_update().get(pk=row.pk)
        locked.nsd = {**(locked.nsd or {}), str(revision.pk): values}
        if rater is not None:
            locked.rater = rater
        locked.save(update_fields=["nsd", "rater"])
    return locked


def _rater_noise(row: AuditCase, organs: dict[int, str]) -> dict | None:
    """A double-read audit case with both reads in: Dice, NSD and changed mL of read 1 against read 2, per organ
    (the rater's own noise, ml_engine.audit.corrected). None: a single read, or a read missing."""
    pair = DoubleRead.objects.filter(first_id=row.task_id).first()
    if pair is None:
        return None
    first, second = read_agreement.latest_reads(pair)
    if first is None or second is None:
        return None
    key = f"r{first.pk}:r{second.pk}"
    if (row.rater or {}).get("key") == key:
        return row.rater
    a, b = read_voxels(first.label_file.name), read_voxels(second.label_file.name)
    agreement = read_agreement.organ_agreement(a, b, organs, [float(s) for s in row.case.spacing])
    voxel_ml = abs(float(np.linalg.det(np.asarray(row.case.affine, dtype=float)[:3, :3]))) / 1000.0
    result = {}
    for value, organ in organs.items():
        found = agreement.get(organ, {"dice": 1.0, "nsd": 1.0})
        result[organ] = {**found, "changed_ml": round(float(np.count_nonzero((a == value) ^ (b == value))) * voxel_ml,
                                                      4)}
    return {"key": key, "organs": result}


def is_audit_task(task_id: int) -> bool:
    return (AuditCase.objects.filter(task_id=task_id).exists()
            or DoubleRead.objects.filter(second_id=task_id, first__audit_case__isnull=False).exists())


def record_audit_stopping(round_id: int) -> bool:
    """Apply the audit's stopping rule to the round (after an audit read lands or is rejected, or the target is
    set): record "audit" as what stopped it when the rule holds and no rule stopped it yet; withdraw it when the
    rule no longer holds. Returns whether the rule holds."""
    round = Round.objects.select_related("label_set").get(pk=round_id)
    holds, _ = audit_stop_holds(round)
    if holds:
        Round.objects.filter(pk=round_id, stopped_by="").update(stopped_by=Round.StoppedBy.AUDIT)
    else:
        Round.objects.filter(pk=round_id, stopped_by=Round.StoppedBy.AUDIT).update(stopped_by="")
    return holds


def record_top_case_stopping(round_id: int, *, unchanged: bool | None) -> None:
    """Today's rule, recorded beside Round.converged: the top case confirmed unchanged stops the round (unless the
    audit's rule stopped it first); a withdrawn or changed outcome withdraws it."""
    if unchanged:
        Round.objects.filter(pk=round_id, stopped_by="").update(stopped_by=Round.StoppedBy.TOP_CASE)
    else:
        Round.objects.filter(pk=round_id, stopped_by=Round.StoppedBy.TOP_CASE).update(stopped_by="")

