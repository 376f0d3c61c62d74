"""Running the policies in the real workspace and the table of their counts."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_viewer import PASSWORD, REPO, loadavg
from browser_session import atlas_server, signed_in_page

from . import __doc__ as DOC
from .annotator import LIMIT, Annotator
from .cases import KINDS, build
from .policy import with_tools

PACKAGE = Path(__file__).resolve().parent
OLD_LIMIT = 40  # the per-case cap in the runs up to 2026-12-01 18:46

def run(policy: str, seeds: int, kinds: list[str], pseudo: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="atlas-simulate-") as tmp:
        var = Path(tmp)
        env = {**os.environ, "ATLAS_VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "atlas.settings", "DEBUG": "0"}
        os.environ.update(env)
        sys.path.insert(0, str(REPO))
        cases = build(var, seeds, kinds, pseudo)
        with (atlas_server(env) as base,
              signed_in_page(base, "annotator", PASSWORD, viewport=(1400, 900), debug=True) as page):
            for _ in range(len(cases)):
                page.wait_for_selector("[data-page=queue]")
                page.click("[data-action=next-case]")
                page.wait_for_selector("[data-page=workspace][data-state=ready]", timeout=120_000)
                name = page.get_attribute("[data-page=workspace]", "data-case")
                case = cases[name]
                kind = case["kind"]
                a = Annotator(page, case)
                start = a.dice()
                t0 = time.perf_counter()
                if "hotspot" in case:
                    a.hotspot()
                if policy == "a":
                    a.by_hand(kind == "spill")
                else:
                    with_tools(a, kind)
                seconds = time.perf_counter() - t0
                rows.append({"case": name, "set": case["set"], "kind": kind, "policy": policy,
                             "actions": a.actions, "scrolls": a.scrolls, "seconds": seconds, "start": start,
                             "dice": a.dice(), "used": a.used})
                kept = f"; kept: {', '.join(a.used)}" if a.used else ""
                print(f"  {policy} {name} ({kind}): {a.actions} actions, {a.scrolls} scrolls, {seconds:.0f} s, "
                      f"Dice {start:.3f} -> {rows[-1]['dice']:.3f}{kept}", flush=True)
                page.click("[data-action=submit]")
                page.click("[data-action=upload]")
    return rows


def table(rows: list[dict]) -> None:
    print("| error kind | cases | (a) actions | (b) actions | ratio (a) / (b) | (a) scrolls | (b) scrolls "
          "| (a) s in page | (b) s in page | reached 0.95 (a) / (b) | lowest Dice (a) / (b) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    groups = [([k], k) for k in kinds]
    for set_ in ("injected", "pseudo"):
        in_set = [k for k in kinds if any(r["kind"] == k and r["set"] == set_ for r in rows)]
        if in_set:
            groups.append((in_set, f"{set_} set"))
    groups.append((kinds, "overall"))
    for group, label in groups:
        a = [r for r in rows if r["policy"] == "a" and r["kind"] in group]
        b = [r for r in rows if r["policy"] == "b" and r["kind"] in group]
        sa, sb = sum(r["actions"] for r in a), sum(r["actions"] for r in b)
        print(f"| {label} | {len(a)} | {sa} | {sb} | {sa / max(sb, 1):.1f} | {sum(r['scrolls'] for r in a)} | "
              f"{sum(r['scrolls'] for r in b)} | {sum(r['seconds'] for r in a):.0f} | "
              f"{sum(r['seconds'] for r in b):.0f} | {sum(r['dice'] >= 0.95 for r in a)} / "
              f"{sum(r['dice'] >= 0.95 for r in b)} | {min(r['dice'] for r in a):.3f} / "
              f"{min(r['dice'] for r in b):.3f} |")
    a = [r for r in rows if r["policy"] == "a"]
    b = [r for r in rows if r["policy"] == "b"]
    if a and b:  # what the cap of 40 actions a case (in the runs up to 2026-12-01 18:46) would have counted
        ca, cb = sum(min(r["actions"], OLD_LIMIT) for r in a), sum(min(r["actions"], OLD_LIMIT) for r in b)
        over = sum(r["actions"] > OLD_LIMIT for r in a + b)
        print(f"\nwith the old cap of {OLD_LIMIT} actions a case: (a) {ca}, (b) {cb}, ratio {ca / max(cb, 1):.1f} "
              f"({over} case(s) past {OLD_LIMIT}); cap now {LIMIT}")


def main() -> None:
    parser = argparse.ArgumentParser(description=DOC.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=2, help="phantom seeds of the injected set")
    parser.add_argument("--kinds", nargs="*", default=list(KINDS), choices=KINDS)
    parser.add_argument("--pseudo", type=int, default=4, help="demo phantoms of the pseudo-label set")
    parser.add_argument("--policy", choices=("a", "b"), help="run one policy only (a process each: one database)")
    parser.add_argument("--table", nargs="+", metavar="LOG", help="only print the table of --policy runs' logs")
    args = parser.parse_args()
    if args.table:
        table([row for log in args.table for line in Path(log).read_text().splitlines() if line.startswith("ROWS ")
               for row in json.loads(line[5:])])
        return
    if args.policy:
        print("ROWS " + json.dumps(run(args.policy, args.seeds, args.kinds, args.pseudo)))
        return
    print(f"machine load before: {loadavg()}")
    rows = []
    for policy in ("a", "b"):
        out = subprocess.run([sys.executable, str(PACKAGE), "--policy", policy, "--seeds", str(args.seeds), "--pseudo",
                              str(args.pseudo), "--kinds", *args.kinds], capture_output=True, text=True, check=True
                             ).stdout
        print("".join(line + "\n" for line in out.splitlines() if not line.startswith("ROWS ")), end="")
        rows += json.loads(next(line for line in out.splitlines() if line.startswith("ROWS "))[5:])
    print(f"machine load after: {loadavg()}")
    table(rows)


if __name__ == "__main__":
    main()
