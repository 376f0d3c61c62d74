"""Double reads: a lead sets, per round, the share of cases read twice; each such case gets a second task (read 2)
that only another annotator can take (services.queue), and neither reader sees the other's revisions
(selectors.labels). Once both reads landed a lead adjudicates: takes one read, or merges them organ by organ, into a
new revision they accept (the case's final label); both reads get the verdict "adjudicated".
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

import numpy as np
from django.db import transaction
from django.db.models import Q

from annotation.errors import Conflict, Forbidden, Invalid, NotFound
from annotation.models import DoubleRead, Organ, Review, ReviewLease, Revision, Round, Task
from annotation.services import revisions
from annotation.services.read_agreement import latest_reads
from annotation.services.reviews import check_review_lease, review_seconds
from annotation.storage import read_voxels


def _draw_order(seed: int, case_name: str) -> str:
    return hashlib.sha256(f"{seed}:{case_name}".encode()).hexdigest()


@transaction.atomic
def set_share(*, round: Round, share: float, seed: int = 0) -> list[DoubleRead]:
    """Make round(share x the round's cases) of its cases double reads (at least one when share > 0), drawn by a
    seeded hash of their names among cases nobody has started; lowering the share removes second reads nobody has
    started. Returns the round's double reads."""
    if not (isinstance(share, int | float) and math.isfinite(share) and 0.0 <= share <= 1.0):
        raise Invalid("expected a share from 0 to 1 (0.05: one case in twenty)", field="share")
    if round.status != Round.Status.ANNOTATING:
        raise Conflict(f"round {round.number} is {round.status}; double reads are set on an annotating round")
    Round.objects.select_for_update().filter(pk=round.pk).first()
    firsts = Task.objects.filter(round=round, read=1)
    wanted = 0 if share == 0 else max(1, round_half_up(share * firsts.count()))
    # an audit's double reads (services.audit) are its own: neither counted in the share nor removed by it
    pairs = list(DoubleRead.objects.filter(round=round, first__audit_case__isnull=True)
                 .select_related("case", "second"))
    if len(pairs) > wanted:
        removable = [p for p in pairs if _unstarted(p.second)]
        removable.sort(key=lambda p: _draw_order(seed, p.case.name), reverse=True)
        for pair in removable[:len(pairs) - wanted]:
            second = pair.second
            pair.delete()
            second.delete()
    elif len(pairs) < wanted:
        taken = {p.case_id for p in pairs}
        candidates = [t for t in firsts.select_related("case").exclude(case_id__in=taken) if _unstarted(t)]
        candidates.sort(key=lambda t: _draw_order(seed, t.case.name))
        for first in candidates[:wanted - len(pairs)]:
            second = Task.objects.create(case=first.case, round=round, read=2, priority=first.priority)
            DoubleRead.objects.create(round=round, case=first.case, first=first, second=second)
    Round.objects.filter(pk=round.pk).update(double_read_share=share)
    return list(DoubleRead.objects.filter(round=round).select_related("case"))


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _unstarted(task: Task) -> bool:
    return task.status == Task.Status.PENDING and not task.revisions.exists() and task.assignee_id is None


def _pair_of(revision_id: int) -> tuple[DoubleRead, Revision, Revision]:
    revision = Revision.objects.filter(pk=revision_id).first()
    if revision is None:
        raise NotFound(f"no revision with id {revision_id}")
    pair = (DoubleRead.objects.select_for_update().filter(Q(first_id=revision.task_id) | Q(second_id=revision.task_id))
            .first())
    if pair is None:
        raise Invalid(f"revision {revision_id} is no read of a double read", field="revision")
    if pair.adjudicated_id is not None:
        raise Conflict(f"this double read of {pair.case.name} was adjudicated already (revision "
                       f"{pair.adjudicated.number})")
    first, second = latest_reads(pair)
    if first is None or second is None:
        raise Conflict(f"read {1 if first is None else 2} of {pair.case.name} has not landed yet")
    return pair, first, second


def merge_reads(first: np.ndarray, second: np.ndarray, organs: Mapping[int, str], take: int,
                per_organ: Mapping[str, int]) -> np.ndarray:
    """The adjudicated label (x, y, z) uint8: each organ's voxels from the read chosen for it (per_organ, else
    take), organs painted in label order (a voxel two chosen organs claim keeps the later organ)."""
    reads = {1: first, 2: second}
    chosen = {name: per_organ.get(name, take) for name in organs.values()}
    if len(set(chosen.values())) <= 1:  # one read whole: exactly its voxels
        return reads[next(iter(chosen.values()), take)].astype(np.uint8).copy()
    out = np.zeros_like(first, dtype=np.uint8)
    for value, name in sorted(organs.items()):
        out[reads[chosen[name]] == value] = value
    return out


def adjudicate(*, revision_id: int, reviewer, take: int = 1, organs: Mapping[str, int] | None = None,
               comment: str = "", seconds: float | None = None) -> Revision:
    """Settle the double read that revision `revision_id` is a read of: take read `take` (1 or 2), with `organs`
    {organ: 1 or 2} overriding it organ by organ. The result is a new revision (the lead's, child of the read
    taken) that the lead accepts; both reads get "adjudicated". 409: a read missing, adjudicated already, or
    another lead reviewing one of them."""
    if take not in (1, 2):
        raise Invalid("expected 1 or 2 (the read to take)", field="take")
    organs = dict(organs or {})
    for name, read in organs.items():
        if read not in (1, 2):
            raise Invalid(f"{name}: expected 1 or 2 (the read to take this organ from)", field="organs")
    with transaction.atomic():
        pair, first, second = _pair_of(revision_id)
        known = dict(Organ.objects.filter(label_set=pair.case.dataset.label_set_id).values_list("value", "name"))
        unknown = sorted(set(organs) - set(known.values()))
        if unknown:
            raise Invalid(f"{unknown[0]!r} is not an organ of this case's label set", field="organs")
        for read in (first, second):
            check_review_lease(read, reviewer)
            if read.author_id == reviewer.pk:
                raise Forbidden("you may not adjudicate a double read you read yourself")
            if Review.objects.filter(revision=read).exists():
                raise Conflict(f"revision {read.pk} was reviewed already")
        data = merge_reads(read_voxels(first.label_file.name), read_voxels(second.label_file.name), known, take,
                           organs)
        parent = first if take == 1 else second
        spent = seconds if seconds is not None else review_seconds(first, reviewer)
        result = revisions.store_lead_revision(parent=parent, author=reviewer, data=data)
        Review.objects.create(revision=result, reviewer=reviewer, decision=Review.Decision.ACCEPTED, comment=comment)
        for read in (first, second):
            Review.objects.create(revision=read, reviewer=reviewer, decision=Review.Decision.ADJUDICATED,
                                  comment=comment, seconds=spent if read is first else None)
        ReviewLease.objects.filter(revision__in=[first, second]).delete()
        DoubleRead.objects.filter(pk=pair.pk).update(adjudicated=result, adjudicator=reviewer)
    return result
