"""python manage.py cancel_round"""

from django.core.management.base import BaseCommand, CommandError

from annotation.services.rounds import RoundError, cancel_round


class Command(BaseCommand):
    help = "Cancel the round that is training, inferring or ranking; its queued jobs are dropped."

    def handle(self, *args, **options):
        try:
            round = cancel_round()
        except RoundError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"round {round.number} cancelled")
