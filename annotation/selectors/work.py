"""Read paths of the annotation workflow: what a user may see, their queue, a task's details.

The lead dashboard's read paths are in selectors/dashboard.py and selectors/quality.py.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from annotation.models import Case, OrganAttention, Prediction, Task
from annotation.roles import is_lead
from annotation.selectors.cases import cases
from annotation.selectors.labels import label_to_edit


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
            .filter(Q(lease_holder=user) | Q(assignee=user, status__in=[*Task.OPEN, Task.Status.LEASED]))
            .order_by("-priority", "id"))


def task_organs(task: Task) -> list[dict]:
    """The organs of a task's case in attention order, with sizes and hotspots (largest first)."""
    rows = (OrganAttention.objects.filter(case=task.case_id, round=task.round_id).select_related("organ")
            .order_by("-size_ml", "organ__value"))
    return [{"name": r.organ.name, "value": r.organ.value, "display_name": r.organ.display_name,
             "color": r.organ.color, "size_ml": r.size_ml, "voxels": r.voxels, "hotspots": r.hotspots}
            for r in rows]


def label_name(case: Case, user=None) -> str | None:
    """Storage name of the label the workspace opens (selectors.labels.label_to_edit). For an annotator it is the
    label of their own read (a double read's other read stays hidden): of the task they hold, else are assigned,
    else last revised."""
    task = None
    if user is not None and not is_lead(user):
        mine = Task.objects.filter(case=case).order_by("-round__number", "-id")
        task = (mine.filter(lease_holder=user).first() or mine.filter(assignee=user).first()
                or mine.filter(revisions__author=user).first())
    ref = label_to_edit(case, task)
    return ref.name if ref is not None else None


def heatmap_name(case: Case, organ: str | None) -> str | None:
    prediction = Prediction.objects.filter(case=case).order_by("-round__number").first()
    if prediction is None:
        return None
    if organ is None:
        return prediction.heatmap.name or None
    return (prediction.files.get("attention") or {}).get(organ)
