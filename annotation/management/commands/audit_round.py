"""python manage.py audit_round [ROUND] [--audit-size N | --audit-width W] [--audit-double 1] [--audit-stop 0.05]
[--auto-accept-ml T [--auto-accept-member-dice D]]"""

from django.core.management.base import BaseCommand, CommandError

from annotation.errors import command_errors
from annotation.management.audit_options import add_audit_arguments, audit_plan
from annotation.selectors.rounds import current_round, round_by_number
from annotation.services.audit import set_plan


class Command(BaseCommand):
    help = ("Set an annotating round's auto-accept rule, audit sample and audit stopping target (issue 26); a worker "
            "applies them (the AUDIT job). round_status shows the estimates.")

    def add_arguments(self, parser):
        parser.add_argument("round", nargs="?", type=int)
        add_audit_arguments(parser)

    def handle(self, *args, **options):
        plan = audit_plan(options)
        if not plan:
            raise CommandError("give --audit-size or --audit-width, --auto-accept-ml, or --audit-stop")
        with command_errors():
            round = (round_by_number(options["round"], field=None) if options["round"] is not None
                     else current_round())
            if round is None:
                raise CommandError("no round yet: start_round")
            job = set_plan(round=round, auto_accept=plan.get("auto_accept"), audit=plan.get("audit_plan"),
                           audit_stop=plan.get("audit_stop"))
        self.stdout.write(f"round {round.number}: " + (f"queued {job.key}" if job else "plan stored; applied once the "
                                                                                     "round is annotating"))
