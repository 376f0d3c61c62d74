"""python manage.py start_round [--epochs N | --steps N] [--archs ...] [--size tiny|base] [--wait]"""

import time

from django.core.management.base import BaseCommand, CommandError

from annotation.errors import command_errors
from annotation.management.audit_options import add_audit_arguments, audit_plan
from annotation.management.progress import round_progress
from annotation.models import Round
from annotation.selectors.rounds import current_round, round_summary
from annotation.services.rounds import ARCHITECTURES, DEFAULT_HOLDOUT, SIZES, start_round


class Command(BaseCommand):
    help = "Start the next round of the loop (round 0 when none exists): train, infer, rank. Needs a Celery worker."

    def add_arguments(self, parser):
        parser.add_argument("--archs", nargs="+", default=list(ARCHITECTURES), choices=[*ARCHITECTURES, "none"],
                            help="Atlas's networks to train; 'none': infer with registered and imported members only")
        parser.add_argument("--size", choices=SIZES, help="default: base when a start is registered "
                                                          "(register_start), else tiny")
        parser.add_argument("--epochs", type=int, help="passes over the labelled cases (default: the arch's steps)")
        parser.add_argument("--steps", type=int, help="training steps per architecture (overrides --epochs)")
        parser.add_argument("--label-set", default="abdomenatlas")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--holdout", type=float, default=DEFAULT_HOLDOUT,
                            help="share of revised cases kept out of fine-tuning to validate the new models "
                                 f"against their parents (default {DEFAULT_HOLDOUT})")
        parser.add_argument("--no-click", action="store_true",
                            help="do not fine-tune the click model this round (the workspace keeps the last one)")
        parser.add_argument("--click-steps", type=int,
                            help="the click model's fine-tuning steps (default: --steps, else 150)")
        parser.add_argument("--holdout-labelled", type=int, default=0,
                            help="cases with imported labels kept out of training to measure, per organ, whether "
                                 "the members are ready to rank (default 0)")
        parser.add_argument("--ready-dice", type=float, help="held-out Dice below which an organ's members are not "
                                                             "ready (default 0.5)")
        parser.add_argument("--ready-attention-share", type=float,
                            help="share of the scanned volume above which an organ's attention (median case) says "
                                 "it is not ready (default 0.05)")
        parser.add_argument("--wait", action="store_true", help="follow the round until it is annotating")
        parser.add_argument("--if-none", action="store_true",
                            help="start round 0 only when no round exists yet; otherwise do nothing (make demo)")
        parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait with --wait")
        add_audit_arguments(parser)

    def handle(self, *args, **options):
        for name in ("epochs", "steps", "click_steps"):
            if options[name] is not None and options[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1")
        if options["if_none"] and (last := current_round()) is not None:
            self.stdout.write(f"round {last.number} exists ({last.status}): no round started")
            return
        archs = [] if options["archs"] == ["none"] else options["archs"]
        if "none" in archs:
            raise CommandError("--archs: 'none' stands alone")
        with command_errors():
            round = start_round(archs=archs, size=options["size"], epochs=options["epochs"],
                                steps=options["steps"], label_set=options["label_set"], seed=options["seed"],
                                holdout=options["holdout"], click=not options["no_click"],
                                click_steps=options["click_steps"], holdout_labelled=options["holdout_labelled"],
                                ready_dice=options["ready_dice"],
                                ready_attention_share=options["ready_attention_share"], **audit_plan(options))
        self.stdout.write(f"round {round.number} started: " + (f"training {', '.join(archs)} ({round.settings['size']})"
                                                                  if archs else "registered and imported members only"))
        if not options["wait"]:
            self.stdout.write("follow it with `python manage.py round_status`")
            return
        deadline = time.monotonic() + options["timeout"]
        with round_progress(f"round {round.number}", verbosity=options["verbosity"]) as progress:
            while True:
                round.refresh_from_db()
                progress(round.status, round.jobs.values_list("kind", "status", "progress"))
                if round.status in (Round.Status.ANNOTATING, Round.Status.FAILED, Round.Status.CANCELLED,
                                    Round.Status.CLOSED):
                    break
                if time.monotonic() > deadline:
                    raise CommandError(f"round {round.number} is still {round.status} after {options['timeout']} s")
                time.sleep(1.0)
        summary = round_summary(round)
        if round.status != Round.Status.ANNOTATING:
            raise CommandError(f"round {round.number} ended {round.status}: {round.error}")
        self.stdout.write(f"round {round.number} is annotating: {sum(summary['tasks'].values())} tasks ranked, "
                          f"models {', '.join(summary['models'])}")
