"""python manage.py resume_round [ROUND]"""

from django.core.management.base import BaseCommand, CommandError

from annotation.errors import command_errors
from annotation.models import Round
from annotation.services.rounds import resume_round


class Command(BaseCommand):
    help = ("After a crash: queue again the jobs of a round (the latest by default) that did not finish; "
            "finished work is not redone.")

    def add_arguments(self, parser):
        parser.add_argument("round", nargs="?", type=int)

    def handle(self, *args, **options):
        round = None
        if options["round"] is not None:
            round = Round.objects.filter(number=options["round"]).first()
            if round is None:
                raise CommandError(f"no round {options['round']}")
        with command_errors():
            round, queued = resume_round(round=round)
        self.stdout.write(f"round {round.number}: {queued} jobs queued again ({round.status})")
