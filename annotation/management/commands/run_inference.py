"""python manage.py run_inference [--cases NAME ...] [--round N]"""

from django.core.management.base import BaseCommand

from annotation.errors import command_errors
from annotation.management.progress import case_progress
from annotation.selectors.rounds import annotating_round
from annotation.services.ensemble import refresh_predictions


class Command(BaseCommand):
    help = ("Refresh predictions and attention with the current round's models (every case not final, or the "
            "named ones), in this process, then re-rank the queue. Leases and revisions are kept.")

    def add_arguments(self, parser):
        parser.add_argument("--cases", nargs="+", metavar="NAME", help="case names (default: every case not final)")
        parser.add_argument("--round", type=int, help="round number (default: the latest; it must be annotating)")

    def handle(self, *args, **options):
        with command_errors():
            round = annotating_round(options["round"])
            with case_progress(f"round {round.number} inference", verbosity=options["verbosity"]) as progress:
                report = refresh_predictions(round=round, case_names=options["cases"], progress=progress)
        models = ", ".join(round.members.order_by("name").values_list("name", flat=True))
        self.stdout.write(f"round {report.round}: {len(report.inferred)} cases inferred with {models}; "
                          f"queue re-ranked ({report.tasks} tasks)")
