"""round_status's lines about the audit (issue 26): the stopping rules, the auto-accept rule, the audit's estimates
with their 95% intervals and sample sizes, and which member is right where. The same figures as the dashboard's
audit panel and the export's dataset card (selectors.audit.audit_board)."""

from __future__ import annotations

STOPPED_BY = {"top_case": "today's rule: the top case was confirmed unchanged",
              "audit": "the audit: the upper end of the 95% interval of the share needing correction fell below "
                       "the target",
              "": "not stopped"}


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def estimate_line(name: str, e: dict) -> str:
    share, cases, d, n = e["needs_correction"], e["cases_needing_correction"], e["dice"], e["nsd"]
    rater = ("" if share.get("rater_low") is None else
             f" [rater's range {_pct(share['rater_low'])} to {_pct(share['rater_high'])}]")
    return (f"{name}: needing correction {_pct(share['estimate'])}{rater} (95% {_pct(share['low'])} to "
            f"{_pct(share['high'])}"
            f"; about {cases['estimate']} of {cases['frame']} cases, {cases['low']} to {cases['high']}), Dice "
            f"{_num(d['estimate'])} ({_num(d['low'])} to {_num(d['high'])}), NSD {_num(n['estimate'])} "
            f"({_num(n['low'])} to {_num(n['high'])}); {share['n']} read")


def audit_lines(board: dict) -> list[str]:
    lines = []
    stop = board["stopping"]
    if stop is None:
        return lines
    lines.append(f"stopped by: {STOPPED_BY.get(stop['stopped_by'], stop['stopped_by'])}")
    if stop["audit_target"] is not None:
        lines.append(f"audit stopping rule: upper end below {_pct(stop['audit_target'])}; now "
                     f"{_pct(stop['audit_upper'])} ({'holds' if stop['audit_holds'] else 'does not hold yet'})")
    rule = board["auto_accept"]
    if rule["rule"]:
        r = rule["rule"]
        lines.append(f"auto-accept: attention below {r['max_attention_ml']} mL"
                     + (", no QC flag" if r.get("no_qc_flag") else "")
                     + (f", every member's Dice with the mean above {r['min_member_dice']}"
                        if r.get("min_member_dice") is not None else "")
                     + f": {rule['cases']} cases accepted")
    audit = board["audit"]
    if audit is None:
        lines.append("audit: none drawn in this round")
    else:
        t = audit["thresholds"]
        lines.append(f"audit: {audit['drawn']} cases drawn (seed {audit['seed']}, {len(audit['strata'])} attention "
                     f"strata) from {audit['frame']} unrevised, {audit['read']} read, {audit['double_read']} read "
                     f"twice; a case needs correction when an organ changes by more than {t['ml']} mL or its Dice is "
                     f"below {t['dice']}")
        for key, e in audit["unrevised"].items():
            lines.append("  " + estimate_line("unrevised, " + key, e))
        part = audit["auto_accepted"]
        if part["estimates"]:
            lines.append("  " + estimate_line(f"auto-accepted ({part['cases']} cases)", part["estimates"]["overall"]))
        if audit["rater"]["pairs"]:
            lines.append(f"  rater's own agreement on {audit['rater']['pairs']} double reads: " + ", ".join(
                f"{o} Dice {v['dice']:.3f}" for o, v in audit["rater"]["organs"].items()))
    members = board["members"]
    if members and members["cases"]:
        lines.append(f"members against the human label ({members['cases']} accepted or audited cases; Dice, NSD, "
                     "hotspots where each agrees best):")
        for organ, per in members["organs"].items():
            lines.append(f"  {organ}: " + "; ".join(
                f"{m} {_num(v['dice'])} / {_num(v['nsd'])} / {v['used']}" for m, v in per.items()))
    lines.append(f"weighted combination: {board['weighted_combination']}")
    return lines
