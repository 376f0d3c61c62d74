"""The audit's command-line options (issue 26), shared by start_round and audit_round: they build the plan that
services.audit checks (its errors name the setting)."""

from __future__ import annotations


def add_audit_arguments(parser) -> None:
    group = parser.add_argument_group("audit and auto-accept (issue 26)")
    group.add_argument("--audit-size", type=int, help="cases in the audit sample, drawn outside the worked part")
    group.add_argument("--audit-width", type=float,
                       help="instead of a size: the target full width of the 95%% interval of the share needing "
                            "correction (e.g. 0.2)")
    group.add_argument("--audit-expected", type=float, default=0.1,
                       help="the share expected, for --audit-width (default 0.1)")
    group.add_argument("--audit-seed", type=int, default=0)
    group.add_argument("--audit-strata", type=int, default=10, help="attention strata (default 10: deciles)")
    group.add_argument("--audit-double", type=float, default=0.0,
                       help="share of the audit sample read twice (recommended: 1; corrects for the rater's noise)")
    group.add_argument("--audit-annotators", nargs="+", help="who reads the audit (default: every annotator)")
    group.add_argument("--audit-worked", type=int, default=0,
                       help="top-ranked cases the queue will revise, left out of the audit's frame")
    group.add_argument("--audit-ml", type=float, help="a correction of more than this many mL counts (default 5)")
    group.add_argument("--audit-dice", type=float, help="a Dice below this counts as needing correction (0.85)")
    group.add_argument("--audit-stop", type=float,
                       help="stop the round when the upper end of the 95%% interval of the share needing correction "
                            "is below this (e.g. 0.05)")
    group.add_argument("--auto-accept-ml", type=float,
                       help="auto-accept the AI's label of untouched cases with less attention than this (mL)")
    group.add_argument("--auto-accept-member-dice", type=float,
                       help="... and every member's Dice with the mean above this")
    group.add_argument("--auto-accept-with-flags", action="store_true",
                       help="... even when the pseudo-label has a quality flag")


def audit_plan(options: dict) -> dict:
    """{"auto_accept", "audit_plan", "audit_stop"} from the options (those given)."""
    plan: dict = {}
    if options.get("auto_accept_ml") is not None:
        plan["auto_accept"] = {"max_attention_ml": options["auto_accept_ml"],
                               "no_qc_flag": not options.get("auto_accept_with_flags"),
                               "min_member_dice": options.get("auto_accept_member_dice")}
    if options.get("audit_size") is not None or options.get("audit_width") is not None:
        thresholds = {k: options[f"audit_{k}"] for k in ("ml", "dice") if options.get(f"audit_{k}") is not None}
        plan["audit_plan"] = {"size": options.get("audit_size"), "target_width": options.get("audit_width"),
                              "expected_share": options["audit_expected"], "seed": options["audit_seed"],
                              "strata": options["audit_strata"], "double_reads": options["audit_double"],
                              "worked": options["audit_worked"], "thresholds": thresholds}
        if options.get("audit_annotators"):
            plan["audit_plan"]["annotators"] = options["audit_annotators"]
    if options.get("audit_stop") is not None:
        plan["audit_stop"] = options["audit_stop"]
    return plan
