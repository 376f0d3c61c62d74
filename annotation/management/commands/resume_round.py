"""python manage.py resume_round [ROUND]"""

from django.core.management.base import BaseCommand

from annotation.errors import command_errors
from annotation.selectors.rounds import round_by_number
from annotation.services.rounds import resume_round


class Command(BaseCommand):
    help = ("After a crash: queue again the jobs of a round (the latest by default) that did not finish; "
            "finished work is not redone.")

    def add_arguments(self, parser):
        parser.add_argument("round", nargs="?", type=int)

    def handle(self, *args, **options):
        with command_errors():
            round = round_by_number(options["round"], field=None) if options["round"] is not None else None
            round, queued = resume_round(round=round)
        self.stdout.write(f"round {round.number}: {queued} jobs queued again ({round.status})")
