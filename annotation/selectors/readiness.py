"""What the ranking and the pages read of a round's readiness (services.readiness decides it)."""

from __future__ import annotations

from annotation.models import Round


def ranked_organs(round: Round) -> tuple[list[str] | None, bool]:
    """(organs whose attention counts in the priority, None: every organ; whether the queue falls back to import
    order because no organ is ready)."""
    readiness = round.readiness or {}
    not_ready = set(readiness.get("not_ready") or [])
    if not not_ready:
        return None, False
    if readiness.get("fallback"):
        return [], True
    return [o for o in round.label_set.organ_names() if o not in not_ready], False


def readiness_summary(round: Round | None) -> dict:
    """The shown round's readiness for the pages: round number, organs with status and reasons, the rule, remedy."""
    if round is None or not round.readiness:
        return {"round": None if round is None else round.number, "assessed": False, "organs": [],
                "not_ready": [], "fallback": False, "rule": "", "remedy": ""}
    r = round.readiness
    rule = ("no organ is ready: every priority is 0 and the queue follows the cases' import order" if r["fallback"]
            else f"the priority leaves out {', '.join(r['not_ready'])}" if r["not_ready"]
            else "every organ's attention counts in the priority")
    return {"round": round.number, "assessed": True, "not_ready": list(r["not_ready"]), "fallback": r["fallback"],
            "rule": rule, "remedy": r["remedy"], "ready_dice": r["ready_dice"],
            "ready_attention_share": r["ready_attention_share"],
            # in the label set's order (PostgreSQL's jsonb keeps no key order)
            "organs": [{"organ": organ, **{k: v for k, v in r["organs"][organ].items() if k != "members"},
                        "members": [{"name": m, "dice": d} for m, d in sorted(r["organs"][organ]["members"].items())]}
                       for organ in round.label_set.organ_names() if organ in r["organs"]]}
