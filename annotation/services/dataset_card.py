"""The dataset card every export carries beside its labels (issue 26): `quality.json` (the figures) and `DATASET.md`
(the same, for a paper's methods section and for whoever trains on the data next).

What it states: the cases and organs; where each label comes from (imported, human-revised, double-read and
adjudicated, auto-accepted, AI); the models and members that made the AI labels; the rounds and the stopping rule
that ended the work; the audit estimates with their 95% intervals and sample sizes (selectors.audit.audit_board:
the dashboard's figures, the same numbers); the inter-annotator agreement of the double reads.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from django.utils import timezone

from annotation.models import AutoAccept, Case, DoubleRead, LabelSet, Revision, Round
from annotation.selectors.audit import audit_board
from annotation.selectors.labels import LabelRef
from annotation.selectors.members import round_members

SOURCES = {"imported": "imported", "human_revised": "human-revised", "double_read": "double-read (adjudicated)",
           "auto_accepted": "auto-accepted (AI label, accepted by the lead's rule)",
           "ai": "AI (pseudo-label nobody revised)"}


def source_of(final: LabelRef) -> str:
    """The card's source of a final label: imported, human_revised, double_read, auto_accepted or ai."""
    if final.source == "revision":
        adjudicated = DoubleRead.objects.filter(adjudicated=final.revision).exists()
        return "double_read" if adjudicated else "human_revised"
    return {"imported": "imported", "auto_accepted": "auto_accepted"}.get(final.source, "ai")


def _agreement(rounds: list[Round]) -> dict:
    per: dict[str, list[dict]] = defaultdict(list)
    pairs = 0
    for agreement in DoubleRead.objects.filter(round__in=rounds).values_list("agreement", flat=True):
        if agreement:
            pairs += 1
            for organ, values in agreement.items():
                per[organ].append(values)
    return {"pairs": pairs, "organs": {organ: {"dice": round(float(np.mean([v["dice"] for v in values])), 4),
                                               "nsd": round(float(np.mean([v["nsd"] for v in values])), 4),
                                               "pairs": len(values)} for organ, values in per.items()}}


def _members(round: Round) -> list[dict]:
    rows = []
    for row in round_members(round):  # each with its provenance: where its weights come from, licence, citation
        rows.append({**row, "licence": row["provenance"]["licence"], "citation": row["provenance"]["citation"],
                     "weights": row["provenance"]["source"]})
    return rows


def build_card(*, label_set: LabelSet, exported: list[tuple[str, Case, LabelRef]], format: str) -> dict:
    """quality.json's content for the exported cases (name, case, final label)."""
    rounds = list(Round.objects.filter(label_set=label_set).order_by("number"))
    sources = Counter(source_of(final) for _, _, final in exported)
    last = rounds[-1] if rounds else None
    revised = Revision.objects.filter(case__in=[c for _, c, _ in exported])
    return {
        "generated": timezone.now().isoformat(), "format": format, "label_set": label_set.name,
        "datasets": sorted({c.dataset.name for _, c, _ in exported}),
        "cases": len(exported), "organs": dict(label_set.organs.order_by("value").values_list("value", "name")),
        "sources": {key: sources.get(key, 0) for key in SOURCES},
        "members": _members(last) if last is not None else [],
        "rounds": [{"round": r.number, "status": r.status, "created": r.created.isoformat(),
                    "finished": r.finished.isoformat() if r.finished else None, "converged": r.converged,
                    "stopped_by": r.stopped_by, "archs": (r.settings or {}).get("archs"),
                    "size": (r.settings or {}).get("size"), "steps": (r.settings or {}).get("steps"),
                    "revisions": revised.filter(task__round=r).count(),
                    "auto_accepted": AutoAccept.objects.filter(round=r).count(),
                    "audit_stop": (r.settings or {}).get("audit_stop")} for r in rounds],
        "audits": [board["audit"] for r in rounds if (board := audit_board(r))["audit"] is not None],
        "auto_accept": [{"round": r.number, "rule": (r.settings or {}).get("auto_accept"),
                         "cases": AutoAccept.objects.filter(round=r).count()}
                        for r in rounds if (r.settings or {}).get("auto_accept")],
        "inter_annotator": _agreement(rounds),
        "stopping": None if last is None else {
            "round": last.number, "stopped_by": last.stopped_by, "converged": last.converged,
            "audit_target": (last.settings or {}).get("audit_stop")},
    }


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _num(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _range(e: dict, show) -> str:
    return "" if e.get("rater_low") is None else f" [{show(e['rater_low'])} to {show(e['rater_high'])}]"


def render_markdown(card: dict) -> str:
    """DATASET.md from quality.json's content."""
    out = [f"# Dataset card: {', '.join(card['datasets']) or card['label_set']}", "",
           f"Exported by Atlas on {card['generated']} ({card['format']} layout), label set `{card['label_set']}`. "
           "The figures are in `quality.json`; `sources.csv` names each case's label source.", "",
           "## Cases and organs", "", f"{card['cases']} cases; organs (value: name): "
           + ", ".join(f"{v}: {n}" for v, n in card["organs"].items()) + ".", "",
           "## Where the labels come from", "", "| source | cases |", "| --- | --- |"]
    out += [f"| {SOURCES[k]} | {n} |" for k, n in card["sources"].items()]
    out += ["", "## Models and members that made the AI labels", ""]
    if card["members"]:
        out += ["| member | kind | source | fine-tuned | weights from | licence | citation |",
                "| --- | --- | --- | --- | --- | --- | --- |"]
        out += [f"| {m['name']} | {m['kind']} | {m['source']} | {'yes' if m['fine_tuned'] else 'no'} | "
                f"{m['weights']} | {m['licence']} | {m['citation']} |" for m in card["members"]]
    else:
        out.append("No round was run: no AI label.")
    out += ["", "## Rounds", "", "| round | status | archs | revisions | auto-accepted | stopped by |",
            "| --- | --- | --- | --- | --- | --- |"]
    out += [f"| {r['round']} | {r['status']} | {', '.join(r['archs'] or []) or '-'} | {r['revisions']} | "
            f"{r['auto_accepted']} | {r['stopped_by'] or '-'} |" for r in card["rounds"]]
    out += ["", "## How good are the labels nobody revised?", ""]
    if not card["audits"]:
        out.append("No audit sample was drawn: the quality of the unrevised labels is not measured.")
    for audit in card["audits"]:
        t = audit["thresholds"]
        out += [f"Round {audit['round']}: a random audit sample of {audit['drawn']} cases (seed {audit['seed']}, "
                f"stratified by attention into {len(audit['strata'])} strata) from the {audit['frame']} cases nobody "
                f"was going to revise; {audit['read']} read as ordinary tasks, {audit['double_read']} of them twice. "
                f"A case needs a correction when an organ changes by more than {t['ml']} mL or its Dice falls below "
                f"{t['dice']}. 95% intervals: Wilson for shares, a stratified bootstrap for means; stratified "
                "weights. With double reads the rater's own noise leaves a range open (the reads corrected for it, "
                "and not): each figure is then the middle of that range, its interval spans both ends' intervals, "
                "and the range is given in brackets.", "",
                "| part | needing correction (95% interval) | cases needing correction | mean Dice | mean NSD | read |",
                "| --- | --- | --- | --- | --- | --- |"]
        rows = [(f"unrevised, {k}", e) for k, e in audit["unrevised"].items()]
        if audit["auto_accepted"]["estimates"]:
            rows.insert(1, ("auto-accepted, overall", audit["auto_accepted"]["estimates"]["overall"]))
        for name, e in rows:
            s, c, d, n = e["needs_correction"], e["cases_needing_correction"], e["dice"], e["nsd"]
            out.append(f"| {name} | {_pct(s['estimate'])}{_range(s, _pct)} ({_pct(s['low'])} to {_pct(s['high'])}) | "
                       f"{c['estimate']} ({c['low']} to {c['high']}) of {c['frame']} | {_num(d['estimate'])}"
                       f"{_range(d, _num)} ({_num(d['low'])} to {_num(d['high'])}) | {_num(n['estimate'])}"
                       f"{_range(n, _num)} ({_num(n['low'])} to {_num(n['high'])}) | {s['n']} |")
        out.append("")
    out += ["## Auto-accept", ""]
    if card["auto_accept"]:
        for a in card["auto_accept"]:
            r = a["rule"]
            out.append(f"- round {a['round']}: attention below {r['max_attention_ml']} mL"
                       + (", no quality flag" if r.get("no_qc_flag") else "")
                       + (f", every member's Dice with the mean above {r['min_member_dice']}"
                          if r.get("min_member_dice") is not None else "") + f": {a['cases']} cases")
    else:
        out.append("No auto-accept rule was set.")
    ia = card["inter_annotator"]
    out += ["", "## Inter-annotator agreement (double reads)", ""]
    if ia["pairs"]:
        out += [f"{ia['pairs']} cases read twice, independently.", "", "| organ | Dice | NSD | pairs |",
                "| --- | --- | --- | --- |"]
        out += [f"| {o} | {v['dice']:.3f} | {v['nsd']:.3f} | {v['pairs']} |" for o, v in ia["organs"].items()]
    else:
        out.append("No case was read twice.")
    stop = card["stopping"]
    out += ["", "## The stopping rule that ended the work", ""]
    if stop is None:
        out.append("No round was run.")
    else:
        said = {"top_case": "the top-priority case was confirmed with no change (AbdomenAtlas-8K's rule)",
                "audit": "the upper end of the audit's 95% interval of the share needing correction fell below "
                         f"{_pct(stop['audit_target'])}"}.get(stop["stopped_by"])
        out.append(f"Round {stop['round']}: " + (f"stopped because {said}." if said else
                                                 "no stopping rule has stopped the work yet."))
    return "\n".join(out) + "\n"


def write_card(folder: Path, *, label_set: LabelSet, exported: list[tuple[str, Case, LabelRef]], format: str) -> dict:
    """Write quality.json and DATASET.md into the export's (staging) folder; returns the card."""
    card = build_card(label_set=label_set, exported=exported, format=format)
    (folder / "quality.json").write_text(json.dumps(card, indent=1) + "\n")
    (folder / "DATASET.md").write_text(render_markdown(card))
    return card
