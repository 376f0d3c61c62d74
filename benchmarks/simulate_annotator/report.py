"""Running the policies in the real workspace and the table of their counts."""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_viewer import PASSWORD, REPO, loadavg
from browser_session import atlas_server, signed_in_page

from . import __doc__ as DOC
from .annotator import Annotator
from .cases import KINDS, build
from .clicks import with_clicks
from .perception import Judge, Rater
from .policy import with_tools
from .rules import STOP, TUNED_ON, VERSION
from .stats import paired, summary
from .workspace import BrowserWorkspace

PACKAGE = Path(__file__).resolve().parent
HELD_OUT_SEEDS = [10, 11, 12, 13]  # the default run: never tuned on (TUNED_ON)
HELD_OUT_DEMO = list(range(10, 20))


def run(policy: str, seeds: list[int], kinds: list[str], demo: list[int], real: bool) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="atlas-simulate-") as tmp:
        var = Path(tmp)
        env = {**os.environ, "ATLAS_VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "atlas.settings", "DEBUG": "0"}
        os.environ.update(env)
        sys.path.insert(0, str(REPO))
        cases = build(var, seeds, kinds, demo, real)
        print(f"  {policy}: {len(cases)} cases built", flush=True)
        with (atlas_server(env) as base,
              signed_in_page(base, "annotator", PASSWORD, viewport=(1400, 900), debug=True) as page):
            for _ in range(len(cases)):
                page.wait_for_selector("[data-page=queue]")
                page.click("[data-action=next-case]")
                page.wait_for_selector("[data-page=workspace][data-state=ready]", timeout=120_000)
                name = page.get_attribute("[data-page=workspace]", "data-case")
                rows.append(one_case(page, policy, name, cases[name]))
                page.click("[data-action=submit]")
                page.click("[data-action=upload]")
    return rows


def one_case(page, policy: str, name: str, case: dict) -> dict:
    """One case in the open workspace: the annotator with its rater's view and the judge, under one policy."""
    box = case["box"]
    region = case.get("region")
    region = np.ones(tuple(s.stop - s.start for s in box), bool) if region is None else region
    a = Annotator(BrowserWorkspace(page), Rater(case["rater"], box), Judge(case["truth"], case["organs"], box, region),
                  case)
    start = a.dice()
    t0 = time.perf_counter()
    try:
        if "hotspot" in case:
            a.hotspot()
        if policy == "a":
            a.by_hand()
        elif policy == "c":
            with_clicks(a)
        else:
            with_tools(a, case["kind"])
    except Exception as exc:  # a page or script failure ends this case (reported), not the run
        a.notes.append(f"stopped by an error: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        a.forget()
    seconds = time.perf_counter() - t0
    row = {"case": name, "set": case["set"], "kind": case["kind"], "policy": policy, "actions": a.actions,
           "scrolls": a.scrolls, "settings": a.settings, "seconds": seconds, "start": start, "dice": a.dice(),
           "used": a.used, "notes": a.notes}
    extra = "".join(f"; {k}: {', '.join(row[k])}" for k in ("used", "notes") if row[k])
    print(f"  {policy} {name} ({row['kind']}): {a.actions} actions, {a.scrolls} scrolls, {seconds:.0f} s, "
          f"Dice {start:.3f} -> {row['dice']:.3f}{extra}", flush=True)
    return row


def fmt(x: float, digits: int = 2) -> str:
    return "-" if math.isnan(x) else f"{x:.{digits}f}"


def outcome(r: dict) -> str:
    return str(r["actions"]) if r["dice"] >= STOP else f"failed at {r['actions']} (Dice {r['dice']:.3f})"


def table(rows: list[dict]) -> None:
    """(a) against each other policy run: (b) the tools, (c) the clicks."""
    for other in ("b", "c"):
        if any(r["policy"] == other for r in rows):
            print(f"\n### (a) by hand against ({other}) {'the correction tools' if other == 'b' else 'the clicks'}")
            table_against(rows, other)


def table_against(rows: list[dict], o: str) -> None:
    """Per case, per kind, per set and overall (the phantom sets; the real CT apart)."""
    pairs = paired(rows, o)
    print(f"\n| case | kind | (a) actions | ({o}) actions | (a) scrolls | ({o}) scrolls | (a) s | ({o}) s | "
          f"Dice (a) / ({o}) | ({o}) kept | notes |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for a, b in pairs:
        notes = "; ".join([*(f"(a) {n}" for n in a["notes"]), *(f"({o}) {n}" for n in b["notes"])])
        print(f"| {a['case']} | {a['kind']} | {outcome(a)} | {outcome(b)} | {a['scrolls']} | {b['scrolls']} | "
              f"{a['seconds']:.0f} | {b['seconds']:.0f} | {a['dice']:.3f} / {b['dice']:.3f} | "
              f"{', '.join(b['used']) or '-'} | {notes or '-'} |")
    print(f"\n| group | cases | both finished | (a) actions | ({o}) actions | ratio (a) / ({o}) | 95% interval | "
          f"geometric mean of per-case ratios | failed (a) / ({o}) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    kinds = list(dict.fromkeys(a["kind"] for a, _ in pairs))
    groups = [(k, [p for p in pairs if p[0]["kind"] == k]) for k in kinds]
    for set_ in ("injected", "pseudo", "real"):
        groups.append((f"**{set_} set**", [p for p in pairs if p[0]["set"] == set_]))
    groups.append(("**phantoms (injected + pseudo)**", [p for p in pairs if p[0]["set"] != "real"]))
    for label, group in groups:
        if not group:
            continue
        s = summary(group)
        print(f"| {label} | {s['cases']} | {s['finished']} | {s['a']} | {s['b']} | {fmt(s['ratio'])} | "
              f"{fmt(s['lo'])} to {fmt(s['hi'])} | {fmt(s['geomean'])} | {s['failed_a']} / {s['failed_b']} |")
    for set_label, real in (("phantoms", False), ("real CT", True)):
        s = summary([p for p in pairs if (p[0]["set"] == "real") == real])
        if 0 < s["finished"] < 2:
            print(f"\n{set_label}: {s['finished']} of {s['cases']} cases finished by both policies: too few for a "
                  f"ratio to state; failures (a) {s['failed_a']}, ({o}) {s['failed_b']}")
        elif s["finished"]:
            print(f"\n{set_label}: {s['a']} against {s['b']} actions on the {s['finished']} of {s['cases']} cases both "
                  f"policies finished: ratio {fmt(s['ratio'])}, 95% bootstrap interval {fmt(s['lo'])} to "
                  f"{fmt(s['hi'])} (the figure to state: {fmt(s['lo'])} x); geometric mean of per-case ratios "
                  f"{fmt(s['geomean'])}; failures (a) {s['failed_a']}, ({o}) {s['failed_b']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=DOC.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=HELD_OUT_SEEDS,
                        help="phantom seeds of the injected set (default: held-out 10 11 12 13)")
    parser.add_argument("--kinds", nargs="*", default=list(KINDS), choices=KINDS)
    parser.add_argument("--demo", type=int, nargs="*", default=HELD_OUT_DEMO,
                        help="demo phantoms of the pseudo-label set (default: held-out 10 to 19)")
    parser.add_argument("--no-real", action="store_true", help="leave out the real CT of ../shared/data")
    parser.add_argument("--policy", choices=("a", "b", "c"),
                        help="run one policy only (a process each: one database)")
    parser.add_argument("--table", nargs="+", metavar="LOG", help="only print the table of --policy runs' logs")
    args = parser.parse_args()
    if args.table:
        table([row for log in args.table for line in Path(log).read_text().splitlines() if line.startswith("ROWS ")
               for row in json.loads(line[5:])])
        return
    print(f"simulate_annotator {VERSION}; rules tuned on {TUNED_ON}; this run: seeds {args.seeds}, demo "
          f"{args.demo}, real CT {'no' if args.no_real else 'yes'}", flush=True)
    if args.policy:
        print("ROWS " + json.dumps(run(args.policy, args.seeds, args.kinds, args.demo, not args.no_real)))
        return
    print(f"machine load before: {loadavg()}")
    rows = []
    options = ["--seeds", *map(str, args.seeds), "--demo", *map(str, args.demo), "--kinds", *args.kinds,
               *(["--no-real"] if args.no_real else [])]
    for policy in ("a", "b", "c"):
        out = subprocess.run([sys.executable, str(PACKAGE), "--policy", policy, *options], capture_output=True,
                             text=True, check=True).stdout
        print("".join(line + "\n" for line in out.splitlines() if not line.startswith("ROWS ")), end="")
        rows += json.loads(next(line for line in out.splitlines() if line.startswith("ROWS "))[5:])
    print(f"machine load after: {loadavg()}")
    table(rows)


if __name__ == "__main__":
    main()
