"""Read paths of review: revisions waiting for a lead's verdict, in a chosen order, and quality flags."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from annotation.models import QualityFlag, Revision, RevisionTag
from annotation.roles import ANNOTATOR
from annotation.selectors.double_reads import double_read_of
from annotation.selectors.labels import revisions

ORDERS = {
    "voxels": "revised voxels, most first",
    "flags": "quality flags, most first",
    "attention": "the case's attention, largest first",
    "age": "oldest first",
}


def waiting_for_review(*, order: str = "voxels", annotator: str | None = None, organ: str | None = None,
                       free_for=None) -> list[Revision]:
    """Revisions no lead has reviewed yet (revisions and confirmations; the newest of each case), in `order`.

    annotator: only theirs; organ: only those that changed it or were flagged on it; free_for: leave out those
    another lead holds a live review lease on (that user's own lease counts as free).
    """
    now = timezone.now()
    qs = _waiting()
    if annotator:
        qs = qs.filter(author__username=annotator)
    if free_for is not None:
        qs = qs.exclude(Q(review_lease__expires__gt=now) & ~Q(review_lease__holder=free_for))
    rows = list(qs.order_by("created", "id"))
    if organ:
        flagged = set(QualityFlag.objects.filter(organ__name=organ, label_check__revision__in=[r.pk for r in rows])
                      .values_list("label_check__revision_id", flat=True))
        rows = [r for r in rows if int((r.changed_voxels or {}).get(organ, 0)) or r.pk in flagged]
    key = {"voxels": lambda r: -revised_voxels(r, organ), "flags": lambda r: -r.flag_count,
           "attention": lambda r: -r.task.priority, "age": lambda r: 0}[order]
    return sorted(rows, key=key)  # stable: oldest first among equals


def _waiting() -> QuerySet[Revision]:
    """Unreviewed revisions that are the newest of their case (of their own read, for a double read's two reads),
    with their flag count."""
    newer = revisions(rejected=True, seen_from=OuterRef("task")).filter(case=OuterRef("case"),
                                                                         number__gt=OuterRef("number"))
    return (Revision.objects.filter(review__isnull=True).exclude(Exists(newer))
            .select_related("case", "author", "task", "review_lease__holder")
            .annotate(flag_count=Count("label_check__flags", distinct=True)))


def waiting_revision(pk: int) -> Revision:
    """One revision of the review queue, as waiting_for_review lists it."""
    return _waiting().get(pk=pk)


def revised_voxels(revision: Revision, organ: str | None = None) -> int:
    """Voxels the revision changed against the pseudo-label (of one organ, or of all)."""
    changed = revision.changed_voxels or {}
    return int(changed.get(organ, 0)) if organ else sum(int(v) for v in changed.values())


def flags(*, round: int | None = None, kind: str | None = None, organ: str | None = None, case: str | None = None,
          source: str | None = None) -> QuerySet[QualityFlag]:
    """Quality flags, filtered: round number, check kind, organ name, case name, source (revision / pseudo_label)."""
    qs = QualityFlag.objects.select_related("organ", "label_check__case", "label_check__round",
                                            "label_check__revision").order_by("label_check__case__name", "id")
    if round is not None:
        qs = qs.filter(label_check__round__number=round)
    if kind:
        qs = qs.filter(kind=kind)
    if organ:
        qs = qs.filter(organ__name=organ)
    if case:
        qs = qs.filter(label_check__case__name=case)
    if source == "revision":
        qs = qs.filter(label_check__revision__isnull=False)
    elif source == "pseudo_label":
        qs = qs.filter(label_check__prediction__isnull=False)
    return qs


def flag_row(flag: QualityFlag) -> dict:
    check = flag.label_check
    return {"id": flag.pk, "case": check.case.name, "case_id": check.case_id, "round": check.round.number,
            "source": "revision" if check.revision_id else "pseudo_label",
            "revision": check.revision_id, "revision_number": check.revision.number if check.revision_id else None,
            "organ": flag.organ.name, "kind": flag.kind, "reason": flag.reason, "detail": flag.detail,
            "place": flag_place(flag.detail or {})}


def revision_for_review(pk: int) -> Revision | None:
    """Any revision (reviewed or not) with what the review view shows beside it."""
    return (Revision.objects.select_related("case__dataset", "author", "task__round", "review__reviewer",
                                            "review_lease__holder")
            .annotate(flag_count=Count("label_check__flags", distinct=True)).filter(pk=pk).first())


def review_context(revision: Revision) -> dict:
    """The review view's rows from the database beside the revision's own: error tags, flags, the double read, and the
    annotators a rejection can go to."""
    pair = double_read_of(revision.task_id)
    double = None
    if pair is not None:
        read = 1 if pair.first_id == revision.task_id else 2
        other_task = pair.second_id if read == 1 else pair.first_id
        other = revisions().filter(task_id=other_task).select_related("author").order_by("-number").first()
        double = {"id": pair.pk, "read": read, "adjudicated": pair.adjudicated_id,
                  "other": None if other is None else {"id": other.pk, "number": other.number,
                                                       "author": other.author.username},
                  "agreement": [{"organ": organ, **values} for organ, values in sorted(pair.agreement.items())]}
    annotators = list(User.objects.filter(groups__name=ANNOTATOR, is_active=True).order_by("username")
                      .values_list("username", flat=True))
    return {
        "round": revision.task.round.number,
        "error_tags": [{"organ": t.organ.name, "tag": t.tag.code} for t in
                 RevisionTag.objects.filter(revision=revision).select_related("organ", "tag").order_by("organ__value")],
        "flag_rows": [flag_row(f) for f in flags().filter(label_check__revision=revision)],
        "double_read": double,
        "annotators": annotators,
    }


def task_flags(task) -> QuerySet[QualityFlag]:
    """The flags an annotator sees on a task: those of the pseudo-label of its round, and of its own revisions
    (never the other read's of a double read)."""
    return flags().filter(Q(label_check__prediction__case=task.case_id, label_check__prediction__round=task.round_id)
                          | Q(label_check__revision__task=task))


def flag_place(flag_detail: dict) -> list[float] | None:
    """Where a flag points, in the file's voxel indices: an extra component's centroid, else its box's centre."""
    extra = flag_detail.get("extra") or []
    if extra and extra[0].get("centroid"):
        return [float(v) for v in extra[0]["centroid"]]
    box = flag_detail.get("bbox")
    if box and len(box) == 2:
        return [(float(a) + float(b) - 1) / 2 for a, b in zip(box[0], box[1], strict=True)]
    return None
