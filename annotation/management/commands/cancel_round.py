"""python manage.py cancel_round"""

from django.core.management.base import BaseCommand

from annotation.errors import command_errors
from annotation.services.rounds import cancel_round


class Command(BaseCommand):
    help = "Cancel the round that is training, inferring or ranking; its queued jobs are dropped."

    def handle(self, *args, **options):
        with command_errors():
            round = cancel_round()
        self.stdout.write(f"round {round.number} cancelled")
