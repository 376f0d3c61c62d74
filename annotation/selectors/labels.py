"""Which label counts: the one place that decides, for every reader of labels.

A case can have an imported source label (partial or whole), a pseudo-label per round, and a chain of revisions,
each of which a lead may have accepted or rejected. Three policies, each pinned by tests/api/test_labels.py:

- **the label to edit** (the workspace, `label.nii.gz`, "confirm"): the latest revision no lead rejected, else an
  imported label that covers every organ, else the latest pseudo-label, else a partial imported label.
- **the label to train on** (fine-tuning, validation): the latest revision no lead rejected (every organ), else the
  imported label (the organs it covers). Never a pseudo-label: the models learn from people and imported truth.
- **the final label** (export, and what makes a case final): the latest revision a lead accepted, else an imported
  label that covers every organ, else the AI's label a lead's auto-accept rule accepted (models.AutoAccept), else the
  latest pseudo-label.

A case is **final** when a lead accepted one of its revisions, or the auto-accept rule accepted its AI label: rounds
no longer infer it.

**Which revisions count** has one home, `revisions()` below, pinned by tests/api/test_labels.py: those no lead
rejected (a rejected revision is no one's label), seen from a task's reader (the other read of a double read is left
out), settled or not (both reads of a double read no lead adjudicated yet are left out). Every reader of revisions
asks it: these policies, the quality figures, the review queue, the double reads' agreement, and `latest_revision`
(the base an upload must name, where a rejected revision still counts: a rejection does not undo the chain).

Double reads (models.DoubleRead): a case read twice in a round has two chains of revisions, one per read task.
- The label to edit for a read's task leaves out the other read's revisions: each annotator continues their own
  chain from the label both started from, never seeing the other's work.
- The label to train on leaves out both reads until a lead adjudicates them (their disagreement is not settled); the
  adjudication is a new revision the lead accepted, so it is then the latest counted and the final label.
- A read itself is never accepted: the lead adjudicates (Review "adjudicated" on both reads), so the final label is
  the adjudicated revision.

Selectors return storage names (and the organs covered), never voxels: callers read files through storage.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F, Q, QuerySet

from annotation.models import AutoAccept, Case, DoubleRead, Prediction, Review, Revision, SourceLabel, Task


@dataclass(frozen=True)
class LabelRef:
    """A stored label map: its storage name, where it comes from, and the organs it covers (None: every organ)."""

    name: str
    source: str  # "revision", "imported", "auto_accepted", "pseudo_label"
    organs: tuple[str, ...] | None = None
    revision: Revision | None = None


def revisions(*, rejected: bool = False, seen_from: Task | int | F | None = None,
              settled: bool = False) -> QuerySet[Revision]:
    """Which revisions count: the one rule (see the module's docstring); callers narrow it by case, round or task.

    rejected: keep the revisions a lead rejected (False: they are no one's label; True: the chain of bases, which a
    rejection does not undo). seen_from: a task (its id, or OuterRef("task") in a subquery): leave out the other read
    of its double read, which its reader never sees. settled: leave out both reads of every double read no lead has
    adjudicated yet (their disagreement is not settled).
    """
    qs = Revision.objects.all()
    if not rejected:
        qs = qs.exclude(review__decision=Review.Decision.REJECTED)
    if seen_from is not None:
        task = seen_from.pk if isinstance(seen_from, Task) else seen_from
        qs = qs.exclude(Q(task__double_read_first__second=task) | Q(task__double_read_second__first=task))
    if settled:
        pending = DoubleRead.objects.filter(adjudicated__isnull=True)
        qs = qs.exclude(Q(task_id__in=pending.values("first_id")) | Q(task_id__in=pending.values("second_id")))
    return qs


def latest_revision(case: Case | int, task: Task | int | None = None) -> Revision | None:
    """The case's newest revision, rejected ones included (the base an upload must name); with a task, the newest its
    reader may see (not the other read's of a double read)."""
    return revisions(rejected=True, seen_from=task).filter(case=case).order_by("-number").first()


def accepted_revisions() -> QuerySet[Revision]:
    return Revision.objects.filter(review__decision=Review.Decision.ACCEPTED)


def final_cases(cases: QuerySet[Case]) -> QuerySet[Case]:
    """The cases among these that are final (a lead accepted a revision, or the auto-accept rule the AI's label)."""
    return cases.filter(Q(pk__in=accepted_revisions().values("case_id"))
                        | Q(pk__in=AutoAccept.objects.values("case_id")))


def open_cases(cases: QuerySet[Case]) -> QuerySet[Case]:
    """The cases among these that are not final: rounds infer them."""
    return (cases.exclude(pk__in=accepted_revisions().values("case_id"))
            .exclude(pk__in=AutoAccept.objects.values("case_id")))


def _revision(queryset: QuerySet[Revision], case: Case) -> LabelRef | None:
    revision = queryset.filter(case=case).order_by("-number").first()
    return None if revision is None else LabelRef(revision.label_file.name, "revision", revision=revision)


def _imported(case: Case, *, whole: bool) -> LabelRef | None:
    """The latest imported label; with whole=True only when it covers every organ of the case's label set."""
    source = SourceLabel.objects.filter(case=case).order_by("-id").first()
    if source is None:
        return None
    covered = set(source.organs.values_list("name", flat=True))
    organs = tuple(o for o in case.dataset.label_set.organ_names() if o in covered)
    every = len(organs) == len(case.dataset.label_set.organ_names())
    if whole and not every:
        return None
    return LabelRef(source.label_file.name, "imported", None if every else organs)


def _pseudo_label(case: Case) -> LabelRef | None:
    prediction = Prediction.objects.filter(case=case).order_by("-round__number").first()
    return None if prediction is None else LabelRef(prediction.pseudo_label.name, "pseudo_label")


def label_to_edit(case: Case, task: Task | None = None) -> LabelRef | None:
    """What an annotator opens and corrects (see the module's policies); task: the read they work on (a double
    read's other read is left out)."""
    return (_revision(revisions(seen_from=task), case) or _imported(case, whole=True) or _pseudo_label(case)
            or _imported(case, whole=False))


def label_to_train_on(case: Case) -> LabelRef | None:
    """What the models learn from for this case, with the organs it covers; None: unlabelled."""
    return _revision(revisions(settled=True), case) or _imported(case, whole=False)


def _auto_accepted(case: Case) -> LabelRef | None:
    accepted = AutoAccept.objects.filter(case=case).first()
    return None if accepted is None else LabelRef(accepted.label.name, "auto_accepted")


def final_label(case: Case) -> LabelRef | None:
    """What the finished dataset holds for this case; None: nothing to export yet."""
    return (_revision(accepted_revisions(), case) or _imported(case, whole=True) or _auto_accepted(case)
            or _pseudo_label(case))


def started_from(revision: Revision) -> LabelRef | None:
    """The label a revision was made from: its parent, else the pseudo-label of its task's round, else the imported
    label (review diffs compare the revision against it)."""
    if revision.parent_id is not None:
        parent = revision.parent
        return LabelRef(parent.label_file.name, "revision", revision=parent)
    prediction = Prediction.objects.filter(case=revision.case_id, round=revision.task.round_id).first()
    if prediction is not None and prediction.pseudo_label:
        return LabelRef(prediction.pseudo_label.name, "pseudo_label")
    return _imported(revision.case, whole=False)
