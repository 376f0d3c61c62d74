"""Read paths of the annotation workflow: what a user may see, their queue, a task's details, the dashboard."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from annotation.models import Case, OrganAttention, Prediction, Revision, RevisionTag, Task
from annotation.roles import is_lead
from annotation.selectors.cases import cases


def visible_cases(user) -> QuerySet[Case]:
    """Leads and admins see every case; an annotator only the cases of tasks they hold, were assigned or did."""
    qs = cases()
    if is_lead(user):
        return qs
    mine = Q(tasks__lease_holder=user) | Q(tasks__assignee=user) | Q(revisions__author=user)
    return qs.filter(pk__in=Case.objects.filter(mine).values("pk"))


def my_queue(user) -> QuerySet[Task]:
    """The user's tasks: leased to them or assigned to them and still open, in priority order."""
    return (Task.objects.select_related("case", "round")
            .filter(Q(lease_holder=user) | Q(assignee=user, status__in=[Task.Status.PENDING, Task.Status.SKIPPED,
                                                                          Task.Status.LEASED]))
            .order_by("-priority", "id"))


def task_organs(task: Task) -> list[dict]:
    """The organs of a task's case in attention order, with sizes and hotspots (largest first)."""
    rows = (OrganAttention.objects.filter(case=task.case_id, round=task.round_id).select_related("organ")
            .order_by("-size_ml", "organ__value"))
    return [{"name": r.organ.name, "value": r.organ.value, "display_name": r.organ.display_name,
             "color": r.organ.color, "size_ml": r.size_ml, "voxels": r.voxels, "hotspots": r.hotspots}
            for r in rows]


def latest_label_name(case: Case) -> str | None:
    """Storage name of the case's current label: latest revision, else latest pseudo-label, else source label."""
    revision = Revision.objects.filter(case=case).order_by("-number").first()
    if revision is not None:
        return revision.label_file.name
    prediction = Prediction.objects.filter(case=case).order_by("-round__number").first()
    if prediction is not None:
        return prediction.pseudo_label.name
    source = case.source_labels.order_by("-id").first()
    return source.label_file.name if source is not None else None


def heatmap_name(case: Case, organ: str | None) -> str | None:
    prediction = Prediction.objects.filter(case=case).order_by("-round__number").first()
    if prediction is None:
        return None
    if organ is None:
        return prediction.heatmap.name or None
    return (prediction.files.get("attention") or {}).get(organ)


def dashboard() -> dict:
    """Counts by status, annotator and organ; throughput per day; median minutes per case; time left."""
    tasks = Task.objects.all()
    by_status = {s: 0 for s in Task.Status.values}
    by_status.update(dict(tasks.values_list("status").annotate(n=Count("id")).order_by()))
    by_annotator: dict[str, Counter] = defaultdict(Counter)
    for author, kind, n in Revision.objects.values_list("author__username", "kind").annotate(n=Count("id")):
        by_annotator[author][kind] += n
    leased = Task.objects.filter(status=Task.Status.LEASED).values_list("lease_holder__username").annotate(
        n=Count("id"))
    for holder, n in leased:
        by_annotator[holder]["leased"] += n
    organs = {}
    for name, total, n in (OrganAttention.objects.values_list("organ__name")
                           .annotate(total=Sum("size_ml"), n=Count("id")).order_by("organ__value")):
        organs[name] = {"attention_ml": round(total or 0.0, 3), "cases": n, "revised_voxels": 0, "tags": 0}
    for revision in Revision.objects.filter(kind=Revision.Kind.REVISION).only("changed_voxels"):
        for name, n in revision.changed_voxels.items():
            organs.setdefault(name, {"attention_ml": 0.0, "cases": 0, "revised_voxels": 0, "tags": 0})
            organs[name]["revised_voxels"] += int(n)
    for name, n in RevisionTag.objects.values_list("organ__name").annotate(n=Count("id")):
        organs.setdefault(name, {"attention_ml": 0.0, "cases": 0, "revised_voxels": 0, "tags": 0})["tags"] = n
    since = timezone.now() - timedelta(days=30)
    per_day = [{"day": d.isoformat(), "revised": r, "confirmed": c} for d, r, c in (
        Revision.objects.filter(created__gte=since).annotate(day=TruncDate("created")).values_list("day")
        .annotate(r=Count("id", filter=Q(kind=Revision.Kind.REVISION)),
                  c=Count("id", filter=Q(kind=Revision.Kind.CONFIRM))).order_by("day"))]
    seconds = [s for s in Revision.objects.filter(seconds_spent__gt=0).values_list("seconds_spent", flat=True)]
    median_minutes = statistics.median(seconds) / 60 if seconds else settings.ATLAS_MINUTES_PER_CASE
    remaining = by_status[Task.Status.PENDING] + by_status[Task.Status.LEASED] + by_status[Task.Status.SKIPPED]
    hours = remaining * median_minutes / 60
    return {
        "tasks_by_status": by_status,
        "by_annotator": {name: dict(counts) for name, counts in sorted(by_annotator.items())},
        "by_organ": organs,
        "throughput_per_day": per_day,
        "median_minutes_per_case": round(median_minutes, 2),
        "remaining_tasks": remaining,
        "time_left": {"hours": round(hours, 2), "working_days": round(hours / settings.ATLAS_HOURS_PER_DAY, 2),
                      "hours_per_day": settings.ATLAS_HOURS_PER_DAY},
    }
