"""The review board of the lead dashboard: the leads' verdicts and the time a review takes, verdicts per annotator,
what waits for review, and the double reads' inter-annotator agreement (Dice, NSD) per organ."""

from __future__ import annotations

import statistics
from collections import defaultdict

from django.db.models import F

from annotation.figures import rounded
from annotation.models import DoubleRead, Review, Round
from annotation.selectors.review import waiting_for_review

VERDICTS = [d.value for d in Review.Decision]



def _seconds(values: list[float]) -> dict:
    return {"median_seconds": rounded(statistics.median(values), 1) if values else None,
            "mean_seconds": rounded(statistics.fmean(values), 1) if values else None}


def review_board(round: Round | None = None) -> dict:
    """One round's (None: every round's) verdicts. A lead's own revisions (edit and accept, adjudication) are not
    counted as verdicts: the annotator's revision carries "edited", the two reads "adjudicated" (one adjudication
    per pair)."""
    reviews = Review.objects.select_related("reviewer", "revision__author").exclude(
        revision__author=F("reviewer"))
    if round is not None:
        reviews = reviews.filter(revision__task__round=round)
    leads: dict[str, dict] = defaultdict(lambda: {**{v: 0 for v in VERDICTS}, "seconds": []})
    annotators: dict[str, dict] = defaultdict(lambda: {v: 0 for v in VERDICTS})
    for review in reviews:
        lead, author = leads[review.reviewer.username], annotators[review.revision.author.username]
        author[review.decision] += 1
        if review.decision == Review.Decision.ADJUDICATED and review.seconds is None:
            continue  # the pair's second read: one adjudication
        lead[review.decision] += 1
        if review.seconds is not None:
            lead["seconds"].append(review.seconds)
    lead_rows = [{"lead": name, "reviews": sum(row[v] for v in VERDICTS), **{v: row[v] for v in VERDICTS},
                  **_seconds(row["seconds"])} for name, row in sorted(leads.items())]
    annotator_rows = []
    for name, row in sorted(annotators.items()):
        total = sum(row.values())
        annotator_rows.append({"annotator": name, "reviewed": total, **row,
                               "accepted_share": rounded(row["accepted"] / total, 4) if total else None})
    waiting = [r for r in waiting_for_review() if round is None or r.task.round_id == round.pk]
    return {"round": round.number if round is not None else None, "waiting": len(waiting),
            "leads": lead_rows, "annotators": annotator_rows, "double_reads": double_read_board(round)}


def double_read_board(round: Round | None = None) -> dict:
    """The double reads: how many, how many with both reads in, adjudicated, and per organ the mean Dice and NSD
    between the two reads over the pairs that measured it."""
    pairs = DoubleRead.objects.all() if round is None else DoubleRead.objects.filter(round=round)
    per_organ: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"dice": [], "nsd": []})
    measured = 0
    for agreement in pairs.values_list("agreement", flat=True):
        measured += bool(agreement)
        for organ, values in agreement.items():
            per_organ[organ]["dice"].append(values["dice"])
            per_organ[organ]["nsd"].append(values["nsd"])
    organs = [{"organ": organ, "pairs": len(v["dice"]), "dice": rounded(statistics.fmean(v["dice"]), 4),
               "nsd": rounded(statistics.fmean(v["nsd"]), 4)} for organ, v in sorted(per_organ.items())]
    return {"share": round.double_read_share if round is not None else None, "pairs": pairs.count(),
            "measured": measured, "adjudicated": pairs.filter(adjudicated__isnull=False).count(), "organs": organs}
