"""python manage.py round_status [ROUND]"""

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Round
from annotation.selectors.rounds import latest_round, round_summary


class Command(BaseCommand):
    help = "Show a round's state, jobs, models and tasks (the latest round by default)."

    def add_arguments(self, parser):
        parser.add_argument("round", nargs="?", type=int)

    def handle(self, *args, **options):
        round = (Round.objects.filter(number=options["round"]).first() if options["round"] is not None
                 else latest_round())
        if round is None:
            raise CommandError("no such round" if options["round"] is not None else "no round yet: start_round")
        s = round_summary(round)
        self.stdout.write(f"round {s['number']}: {s['status']} (label set {s['label_set']})")
        for kind, counts in sorted(s["jobs"].items()):
            self.stdout.write(f"  {kind:<6} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        for job in s["running"]:
            self.stdout.write(f"  running {job['key']}: {100 * job['progress']:.0f}% {job['message']}")
        for job in s["failed"]:
            self.stdout.write(f"  failed {job['key']}: {job['error']}")
        if s["models"]:
            self.stdout.write(f"  models: {', '.join(s['models'])}")
        if s["tasks"]:
            self.stdout.write("  tasks: " + ", ".join(f"{k} {v}" for k, v in sorted(s["tasks"].items())))
        if s["error"]:
            self.stdout.write(f"  error: {s['error']}")
