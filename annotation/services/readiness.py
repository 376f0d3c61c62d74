"""Whether a round's members are fit to rank each organ (issue 28, item 5), decided in the round's RANK job before
the queue is ranked, and stored on the round (`Round.readiness`).

Per organ, two tests:
- **held-out Dice**: each member's votes (p > 0.5) against the labelled cases it never trained on (registered and
  imported members, starts taken as they are: every labelled case; a network Atlas trained: the cases held out of its
  training, `start_round --holdout-labelled N` in round 0, the revised share in later rounds), averaged over the
  members that have such a case. Below `ready_dice` (default READY_DICE): not ready. No such case: untested.
- **attention share**: the organ's attention volume over the scanned volume (the CT's extent), median over the
  round's cases. Above `ready_attention_share` (default READY_ATTENTION_SHARE): not ready, the attention says little.

The ranking rule (services.queue.rebuild_tasks, through selectors.readiness.ranked_organs): a case's priority is the
attention of its ready and untested organs; the organs not ready are left out. When no organ is ready, every
priority is 0 and the queue falls back to the cases' import order. The lead is pointed to a remedy (REMEDY).
"""

from __future__ import annotations

import random
from statistics import median

import numpy as np
from django.db import transaction

from annotation.models import ModelVersion, OrganAttention, Prediction, Round
from annotation.selectors.labels import label_to_train_on
from annotation.storage import read_voxels

READY_DICE = 0.5
READY_ATTENTION_SHARE = 0.05
MAX_CASES = 20  # labelled cases read per round at most (seeded choice): the check reads their votes
REMEDY = ("register a member that already knows these organs (register_member --kind nnunetv2 | monai-bundle | "
          "totalsegmentator), or start the architectures from pretrained weights (register_start, e.g. SuPreM's), "
          "then start the next round; with labelled cases, hold some out (start_round --holdout-labelled N) so that "
          "readiness can be measured")


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def held_out_dice(round: Round) -> dict[str, dict[str, list[float]]]:
    """{organ: {member: [Dice on each labelled case the member did not train on]}} from the round's stored votes."""
    organs = round.label_set.organ_names()
    values = round.label_set.organ_values()
    # soft predictions are filed under the architecture for Atlas's networks, under the name for other members
    trained_on = {(m.arch if m.arch in ModelVersion.TRAINED else m.name): set(m.metadata.get("training_cases") or [])
                  for m in round.members.all()}
    predictions = list(Prediction.objects.filter(round=round).select_related("case").order_by("case_id"))
    labelled = [(p, ref) for p in predictions if (ref := label_to_train_on(p.case)) is not None]
    if len(labelled) > MAX_CASES:
        labelled = random.Random(round.number).sample(labelled, MAX_CASES)
    scores: dict[str, dict[str, list[float]]] = {o: {} for o in organs}
    for prediction, ref in labelled:
        truth = read_voxels(ref.name)
        covered = organs if ref.organs is None else [o for o in organs if o in ref.organs]
        soft = (prediction.files or {}).get("soft_pred") or {}
        for member, per_organ in soft.items():
            if prediction.case.name in trained_on.get(member, set()):
                continue
            for organ in covered:
                if organ in per_organ:
                    vote = read_voxels(per_organ[organ]) > 127
                    scores[organ].setdefault(member, []).append(_dice(vote, truth == values[organ]))
    return scores


def attention_shares(round: Round) -> dict[str, float]:
    """{organ: median over the round's cases of attention volume / scanned volume}."""
    shares: dict[str, list[float]] = {}
    rows = OrganAttention.objects.filter(round=round).select_related("organ", "case")
    for row in rows:
        spacing = np.abs(np.asarray(row.case.spacing, dtype=float))
        scanned = float(np.prod(row.case.shape)) * float(np.prod(spacing)) / 1000.0  # mL
        if scanned > 0:
            shares.setdefault(row.organ.name, []).append(row.size_ml / scanned)
    return {organ: float(median(v)) for organ, v in shares.items()}


def assess(round: Round) -> dict:
    """The round's readiness: {"organs": {organ: {status, dice, members, attention_share, reasons}}, "ready_dice",
    "ready_attention_share", "not_ready", "fallback", "remedy"}."""
    threshold = float(round.settings.get("ready_dice", READY_DICE))
    share_limit = float(round.settings.get("ready_attention_share", READY_ATTENTION_SHARE))
    dice = held_out_dice(round)
    shares = attention_shares(round)
    organs: dict[str, dict] = {}
    for organ in round.label_set.organ_names():
        per_member = {m: round_(float(np.mean(v))) for m, v in dice[organ].items() if v}
        mean = round_(float(np.mean(list(per_member.values())))) if per_member else None
        share = shares.get(organ)
        reasons = []
        if mean is not None and mean < threshold:
            reasons.append(f"members' held-out Dice {mean:.2f} < {threshold:.2f}")
        if share is not None and share > share_limit:
            reasons.append(f"attention covers {100 * share:.1f}% of the scanned volume (median case) > "
                           f"{100 * share_limit:.1f}%")
        status = "not ready" if reasons else ("ready" if mean is not None else "untested")
        cases = max((len(v) for v in dice[organ].values()), default=0)
        organs[organ] = {"status": status, "dice": mean, "members": per_member, "cases": cases,
                         "attention_share": None if share is None else round_(share), "reasons": reasons}
    not_ready = [o for o, r in organs.items() if r["status"] == "not ready"]
    fallback = bool(organs) and len(not_ready) == len(organs)
    return {"organs": organs, "ready_dice": threshold, "ready_attention_share": share_limit, "not_ready": not_ready,
            "fallback": fallback, "remedy": REMEDY if not_ready else ""}


def round_(value: float) -> float:
    return round(value, 4)


def assess_round(*, round: Round) -> dict:
    """Assess and store the round's readiness (the RANK job's first half)."""
    readiness = assess(round)
    with transaction.atomic():
        Round.objects.filter(pk=round.pk).update(readiness=readiness)
    round.readiness = readiness
    return readiness
