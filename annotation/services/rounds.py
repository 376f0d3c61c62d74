"""Rounds of the loop as a state machine: training -> inferring -> ranking -> annotating -> closed.

Each step is a Job row with a deterministic key; services.jobs runs them. After each step's job, `advance` looks at
the round's jobs in a transaction that locks the round row and moves the round on (queueing the next jobs) once
every job of the step has succeeded. A job that already succeeded is never run again, so a task delivered twice, or
a round resumed after a crash, redoes nothing that finished. Queries about rounds live in selectors.rounds.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from annotation.errors import Conflict, Invalid, NotFound
from annotation.ml_adapter.common import shipped_checkpoint
from annotation.models import Job, LabelSet, ModelVersion, Round
from annotation.selectors.members import pending_imports, registered_members, registered_start, registered_starts
from annotation.selectors.rounds import DEFAULT_HOLDOUT, cases_to_infer, current_round, previous_round
from annotation.services import audit, metrics, quality_checks
from annotation.services.dispatch import enqueue
from annotation.services.training import any_labelled
from ml_engine.networks import ARCHITECTURES, SIZES

__all__ = ["ARCHITECTURES", "SIZES", "DEFAULT_HOLDOUT", "start_round", "cancel_round", "advance", "fail",
           "resume_round", "queue_attend"]

STEP_OF = {Job.Kind.TRAIN: Round.Status.TRAINING, Job.Kind.CLICK: Round.Status.TRAINING,
           Job.Kind.INFER: Round.Status.INFERRING, Job.Kind.ATTEND: Round.Status.INFERRING,
           Job.Kind.RANK: Round.Status.RANKING}


def start_round(*, archs: Sequence[str] = ARCHITECTURES, size: str | None = None, epochs: int | None = None,
                steps: int | None = None, label_set: str = "abdomenatlas", seed: int = 0,
                holdout: float = DEFAULT_HOLDOUT, click: bool = True, click_steps: int | None = None,
                auto_accept: dict | None = None, audit_plan: dict | None = None,
                audit_stop: float | None = None, holdout_labelled: int = 0, ready_dice: float | None = None,
                ready_attention_share: float | None = None) -> Round:
    """Open the next round (round 0 when none exists) and queue its training jobs.

    archs: Atlas's networks to train (none: the round infers with its registered and imported members only). With no
    labelled case, nothing is fine-tuned: round 0 takes the shipped checkpoints as they are, later rounds keep their
    parents; registered members (services.members) and imported predictions join every round of their label set.
    holdout: the share of revised cases left out of fine-tuning to validate the new models against their parents.
    click: also fine-tune the click model (services.interactive, its CLICK job; click_steps: its steps).
    auto_accept, audit_plan, audit_stop: the round's auto-accept rule, audit sample and audit stopping target
    (services.audit), applied by an AUDIT job once the round is ranked; those not given carry over from the previous
    round (the audit's seed moved on by one, so that each round draws afresh).
    holdout_labelled: cases with imported labels kept out of every architecture's training, so that the round can
    say per organ whether its members are ready (services.readiness; ready_dice and ready_attention_share its
    thresholds, None: the defaults).
    size: None is `base` when the label set has a registered start (services.starts: published weights, trained and
    inferred at their publisher's spacing and patch), else `tiny`.
    Raises Invalid (archs, size, holdout, label_set; or no member at all to infer with) or Conflict (a round is still
    being built).
    """
    bad = [a for a in archs if a not in ARCHITECTURES]
    if bad:
        raise Invalid(f"{', '.join(bad)}; choose from {', '.join(ARCHITECTURES)}", field="archs")
    if not 0.0 <= holdout < 1.0:
        raise Invalid(f"must be at least 0 and below 1, got {holdout}", field="holdout")
    if holdout_labelled < 0:
        raise Invalid(f"must be at least 0, got {holdout_labelled}", field="holdout_labelled")
    if ready_dice is not None and not 0.0 <= ready_dice <= 1.0:
        raise Invalid(f"must be between 0 and 1, got {ready_dice}", field="ready_dice")
    if ready_attention_share is not None and not 0.0 < ready_attention_share <= 1.0:
        raise Invalid(f"must be above 0 and at most 1, got {ready_attention_share}", field="ready_attention_share")
    labels = LabelSet.objects.filter(name=label_set).first()
    if labels is None:
        raise Invalid(f"label set {label_set!r} does not exist", field="label_set")
    if size is None:
        size = "base" if registered_starts(labels) else "tiny"
    if size not in SIZES:
        raise Invalid(f"{size!r}; choose from {', '.join(SIZES)}", field="size")
    plan = audit.carried_plan(current_round(label_set=labels))  # each round audits, as the last one did
    if auto_accept is not None:
        plan["auto_accept"] = audit.check_auto_accept(auto_accept)
    if audit_plan is not None:
        plan["audit"] = audit.check_audit(audit_plan)
    if audit_stop is not None:
        plan["audit_stop"] = audit.check_stop(audit_stop)
    _check_members(labels, archs, size)
    with transaction.atomic():
        busy = Round.objects.select_for_update().filter(status__in=Round.ACTIVE).first()
        if busy is not None:
            raise Conflict(f"round {busy.number} is still {busy.status}; wait for it or cancel it")
        last = Round.objects.aggregate(n=Max("number"))["n"]
        Round.objects.filter(status=Round.Status.ANNOTATING).update(status=Round.Status.CLOSED,
                                                                    finished=timezone.now())
        round = Round.objects.create(number=0 if last is None else last + 1, label_set=labels,
                                     status=Round.Status.TRAINING,
                                     settings={"archs": list(archs), "size": size, "epochs": epochs, "steps": steps,
                                               "seed": seed, "holdout": holdout, "click": click,
                                               "click_steps": click_steps, "holdout_labelled": holdout_labelled,
                                               **({"ready_dice": ready_dice} if ready_dice is not None else {}),
                                               **({"ready_attention_share": ready_attention_share}
                                                  if ready_attention_share is not None else {}), **plan})
        jobs = [Job.objects.create(key=f"round{round.number}:train:{arch}", kind=Job.Kind.TRAIN, round=round,
                                   arch=arch) for arch in archs]
        if click:
            jobs.append(Job.objects.create(key=f"round{round.number}:train:click", kind=Job.Kind.CLICK, round=round))
        enqueue(jobs)
    if not archs and not click:  # nothing to train: straight to inference with the registered and imported members
        round = advance(round_id=round.pk)
    return round


def _check_members(labels: LabelSet, archs: Sequence[str], size: str) -> None:
    """Refuse a round that would have no member to infer with: no labelled case to train on, no shipped checkpoint or
    earlier model of the archs, and no registered or imported member."""
    if any_labelled(labels) or registered_members(labels) or pending_imports(labels):
        return
    previous = current_round(label_set=labels)
    if previous is not None and previous.members.filter(arch=ModelVersion.Arch.EXTERNAL).exists():
        return
    if any(shipped_checkpoint(arch, size) is not None or registered_start(arch, size, labels) is not None
           or ModelVersion.objects.filter(arch=arch, size=size, rounds__label_set=labels).exists() for arch in archs):
        return
    raise Invalid("no labelled case to train on, and no member to infer with: import labels (import_cases "
                  "--labels), register a model you have (register_member), or import another tool's predictions "
                  "(import_predictions)" + ("" if archs else "; or name --archs with shipped checkpoints"))


def cancel_round(*, round: Round | None = None) -> Round:
    with transaction.atomic():
        round = round or Round.objects.select_for_update().filter(status__in=Round.ACTIVE).order_by("-number").first()
        if round is None or round.status not in Round.ACTIVE:
            raise Conflict("no round is training, inferring or ranking")
        round.status, round.finished = Round.Status.CANCELLED, timezone.now()
        round.save(update_fields=["status", "finished"])
        round.jobs.filter(status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).update(status=Job.Status.CANCELLED)
    return round


def fail(*, round_id: int, reason: str) -> None:
    """A step's job failed: the round fails (resume_round takes it up again)."""
    Round.objects.filter(pk=round_id, status__in=Round.ACTIVE).update(
        status=Round.Status.FAILED, error=reason, finished=timezone.now())


def advance(*, round_id: int) -> Round:
    """Move the round on while every job of its current step has succeeded; queue the next step's jobs.

    training -> inferring (one job per case not final; with GPU workers each infer job queues its case's attend job,
    queue_attend, and the step is done once every infer and attend job has succeeded), inferring -> ranking (one
    job), ranking -> annotating (the
    cached file metrics of this round and of the one it closed are refreshed by METRICS jobs, and a QC job checks its
    pseudo-labels).
    """
    new_jobs: list[Job] = []

    def step_done(kind: str) -> bool:
        return not round.jobs.filter(kind=kind).exclude(status=Job.Status.SUCCEEDED).exists()

    def job(key: str, kind: str, **fields) -> None:
        row, created = Job.objects.get_or_create(key=f"round{round.number}:{key}",
                                                 defaults={"kind": kind, "round": round, **fields})
        if created:
            new_jobs.append(row)

    with transaction.atomic():
        round = Round.objects.select_for_update().get(pk=round_id)
        if round.status == Round.Status.TRAINING and step_done(Job.Kind.TRAIN) and step_done(Job.Kind.CLICK):
            # registered members and predictions imported before this round join it; imported predictions of
            # other tools stay members of the ensemble
            round.members.add(*registered_members(round.label_set), *pending_imports(round.label_set))
            previous = previous_round(round)
            if previous is not None:
                round.members.add(*previous.members.filter(arch=ModelVersion.Arch.EXTERNAL))
            round.status = Round.Status.INFERRING
            for case in cases_to_infer(round):
                job(f"infer:case{case.pk}", Job.Kind.INFER, case=case)
        if round.status == Round.Status.INFERRING and step_done(Job.Kind.INFER) and step_done(Job.Kind.ATTEND):
            round.status = Round.Status.RANKING
            job("rank", Job.Kind.RANK)
        if round.status == Round.Status.RANKING and step_done(Job.Kind.RANK):
            round.status = Round.Status.ANNOTATING
            for each in (previous_round(round), round):
                if each is not None:
                    metrics.request_update(round=each)
            quality_checks.request_prediction_checks(round)
            if audit.has_plan(round):  # the auto-accept rule and the audit sample, once ranked
                new_jobs.append(Job.objects.create(key=f"round{round.number}:audit:1", kind=Job.Kind.AUDIT,
                                                   round=round))
        round.save(update_fields=["status"])
        enqueue(new_jobs)
    return round


def queue_attend(infer: Job) -> Job | None:
    """The split inference's second half: the ATTEND job of an infer job's case (created once), queued unless it
    succeeded already. Called by the infer job before it finishes, so the step never looks done without it. None
    when the round stopped meanwhile (cancelled, failed): nothing is queued then."""
    with transaction.atomic():
        if not Round.objects.select_for_update().filter(pk=infer.round_id, status__in=Round.ACTIVE).exists():
            return None
        attend, created = Job.objects.get_or_create(key=f"round{infer.round.number}:attend:case{infer.case_id}",
                                                    defaults={"kind": Job.Kind.ATTEND, "round": infer.round,
                                                              "case": infer.case})
        if not created and attend.status in (Job.Status.SUCCEEDED, Job.Status.RUNNING, Job.Status.CANCELLED):
            return attend
        if attend.status != Job.Status.QUEUED:
            Job.objects.filter(pk=attend.pk).update(status=Job.Status.QUEUED, progress=0.0)
        enqueue([attend])
    return attend


def resume_round(*, round: Round | None = None) -> tuple[Round, int]:
    """After a crash: queue again every job of the round that has not succeeded, and let it go on.

    Jobs left running or failed by a dead worker go back to queued; a failed round returns to the step of
    its failed job. Finished jobs are not redone. Returns the round and how many jobs were queued.
    """
    with transaction.atomic():
        round = round or current_round()
        if round is None:
            raise NotFound("no round to resume")
        round = Round.objects.select_for_update().get(pk=round.pk)
        if round.status == Round.Status.FAILED:
            failed = round.jobs.filter(status=Job.Status.FAILED, kind__in=list(STEP_OF)).order_by("id").first()
            if failed is None:
                raise Conflict(f"round {round.number} failed outside its jobs: {round.error}")
            round.status, round.error, round.finished = STEP_OF[failed.kind], "", None
            round.save(update_fields=["status", "error", "finished"])
        elif round.status not in Round.ACTIVE:
            raise Conflict(f"round {round.number} is {round.status}: nothing to resume")
        round.jobs.filter(status__in=[Job.Status.RUNNING, Job.Status.FAILED], kind__in=list(STEP_OF)).update(
            status=Job.Status.QUEUED, progress=0.0)
        # an attend job whose case's infer job has to run again waits for it (queue_attend sends it then)
        waiting = round.jobs.filter(kind=Job.Kind.INFER).exclude(status=Job.Status.SUCCEEDED).values("case_id")
        pending = list(round.jobs.filter(status=Job.Status.QUEUED, kind__in=list(STEP_OF))
                       .exclude(kind=Job.Kind.ATTEND, case_id__in=waiting))
        enqueue(pending)
    if not pending:
        advance(round_id=round.pk)
    return round, len(pending)
