"""python manage.py round_status [ROUND] [--refresh-metrics]"""

from django.core.management.base import BaseCommand, CommandError

from annotation.errors import command_errors
from annotation.management.audit_report import audit_lines
from annotation.selectors.audit import audit_board
from annotation.selectors.interactive import registered_engines, registered_row
from annotation.selectors.quality import convergence, round_quality
from annotation.selectors.readiness import readiness_summary
from annotation.selectors.rounds import current_round, round_by_number, round_summary
from annotation.services.metrics import update_round_metrics

MEMBER_SOURCES = {  # selectors.members.member_source
    "trained": "trained on this round's labelled cases",
    "shipped": "shipped checkpoint as it is, not fine-tuned (no labelled case)",
    "start": "registered start (published weights) as it is, not fine-tuned (no labelled case)",
    "carried": "an earlier round's model, not fine-tuned in this round",
    "registered": "registered, run by Atlas, never fine-tuned",
    "imported": "imported predictions, never fine-tuned",
}


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


class Command(BaseCommand):
    help = ("Show a round's state, jobs, models, tasks, metrics and whether the loop has converged (the latest "
            "round by default).")

    def add_arguments(self, parser):
        parser.add_argument("round", nargs="?", type=int)
        parser.add_argument("--refresh-metrics", action="store_true",
                            help="first bring the metrics that read files (label bias, voxel shares) up to date")

    def handle(self, *args, **options):
        with command_errors():
            round = (round_by_number(options["round"], field=None) if options["round"] is not None
                     else current_round())
        if round is None:
            raise CommandError("no round yet: start_round")
        if options["refresh_metrics"]:
            update_round_metrics(round_id=round.pk)
            round.refresh_from_db()
        s = round_summary(round)
        self.stdout.write(f"round {s['number']}: {s['status']} (label set {s['label_set']})")
        for kind, counts in sorted(s["jobs"].items()):
            self.stdout.write(f"  {kind:<6} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        for job in s["running"]:
            self.stdout.write(f"  running {job['key']}: {100 * job['progress']:.0f}% {job['message']}")
        for job in s["failed"]:
            self.stdout.write(f"  failed {job['key']}: {job['error']}")
        if s["members"]:
            tuned = [m["name"] for m in s["members"] if m["fine_tuned"]]
            self.stdout.write(f"  members ({len(s['members'])}; fine-tuned in this round: "
                              f"{', '.join(tuned) if tuned else 'none'}):")
            for m in s["members"]:
                self.stdout.write(f"    {m['name']}: {m['kind']}, {MEMBER_SOURCES[m['source']]}")
                prov = m["provenance"]
                self.stdout.write(f"      source: {prov['source']}; licence: {prov['licence']}; "
                                  f"citation: {prov['citation']}")
        if s["click_model"]:
            c = s["click_model"]
            v = c["validation"]
            how = "fine-tuned in this round" if c["fine_tuned"] else "kept"
            self.stdout.write(f"  click model: {c['version']} ({how}; {c['licence']}): Dice {_num(v['dice_0'])} "
                              f"before a click, {_num(v['dice_1'])} / "
                              f"{_num(v['dice_3'])} / {_num(v['dice_5'])} after 1 / 3 / 5 simulated clicks on "
                              f"{v['cases']} samples of {v['validated_on']}")
        for e in map(registered_row, registered_engines()):
            self.stdout.write(f"  interactive engine {e['name']} ({e['kind']}, registered, never fine-tuned): "
                              f"{e['version']}; licence {e['licence']}; cite {e['citation']}")
        if s["tasks"]:
            self.stdout.write("  tasks: " + ", ".join(f"{k} {v}" for k, v in sorted(s["tasks"].items())))
        if s["error"]:
            self.stdout.write(f"  error: {s['error']}")
        self.stdout.write(f"  converged: {convergence(round)}")
        self._readiness(readiness_summary(round))
        self._metrics(round_quality(round))
        for line in audit_lines(audit_board(round)):  # issue 26
            self.stdout.write(f"  {line}")

    def _readiness(self, r: dict) -> None:
        """Per organ, whether the members are fit to rank it (services.readiness), the ranking rule and the remedy."""
        out = self.stdout.write
        if not r["assessed"]:
            return
        out(f"  readiness (held-out Dice >= {r['ready_dice']:.2f}, attention <= "
            f"{100 * r['ready_attention_share']:.1f}% of the scanned volume):")
        for row in r["organs"]:
            dice = "-" if row["dice"] is None else f"{row['dice']:.2f} on {row['cases']} held-out cases"
            share = "-" if row["attention_share"] is None else f"{100 * row['attention_share']:.1f}%"
            why = f" ({'; '.join(row['reasons'])})" if row["reasons"] else ""
            out(f"    {row['organ']}: {row['status'].upper() if row['status'] == 'not ready' else row['status']}, "
                f"Dice {dice}, attention {share}{why}")
        out(f"  ranking: {r['rule']}")
        if r["remedy"]:
            out(f"  remedy: {r['remedy']}")

    def _metrics(self, q: dict) -> None:
        out = self.stdout.write
        a = q["attention"]
        if a["cases"]:
            out(f"  attention (mL per case): {a['cases']} cases, total {a['total_ml']:.1f}, max {a['max_ml']:.1f}, "
                f"90th percentile {a['p90_ml']:.1f}, median {a['median_ml']:.1f}, mean {a['mean_ml']:.1f}, "
                f"{a['zero_cases']} with none")
        dice = q["pseudo_label_dice"]
        if dice["cases"]:
            out(f"  pseudo-label Dice against the revisions ({dice['cases']} cases): mean {_num(dice['mean'])}")
            out("    " + ", ".join(f"{organ} {_num(v['mean'])}" for organ, v in dice["organs"].items()))
        for v in q["validation"]:
            out(f"  validation Dice of {v['model']} on {len(v['cases'])} held-out revised cases: {_num(v['mean'])} "
                f"(parent {_num(v['parent_mean'])})")
        tags = q["error_tags"]
        if tags["total"]:
            out("  error tags: " + "; ".join(f"{organ}: " + ", ".join(f"{t} {n}" for t, n in per.items())
                                             for organ, per in tags["organs"].items()))
        state = q["metrics"]
        if state["computed"] is None:
            out("  file metrics (label bias, voxel shares): not computed yet; run with --refresh-metrics")
            return
        voxels = q["voxels"]
        if voxels and voxels["labelled"]:
            out(f"  voxels decided by the AI {_pct(voxels['ai_share'])}, changed by people "
                f"{_pct(voxels['people_share'])} (of {voxels['labelled']} labelled voxels; of {voxels['cases']} cases "
                f"{voxels['cases_revised']} revised, {voxels['cases_confirmed']} confirmed)")
        bias = q["label_bias"]
        if bias:
            out(f"  label bias, mean Dice over organs ({bias['cases']} cases):")
            width = max(len(s) for s in bias["sources"])
            out("    " + " " * width + " " + " ".join(f"{s[:10]:>10}" for s in bias["sources"]))
            for name, row in zip(bias["sources"], bias["mean"], strict=True):
                out(f"    {name:<{width}} " + " ".join(f"{_num(v):>10}" for v in row))
        stale = " (stale: revisions or predictions changed since; run with --refresh-metrics)" if state["stale"] else ""
        out(f"  file metrics computed {state['computed']}{stale}")
