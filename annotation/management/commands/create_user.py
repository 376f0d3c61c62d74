"""python manage.py create_user NAME --role annotator|lead|admin (password: $ATLAS_PASSWORD, else a prompt)."""

import getpass
import os

from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotation.roles import ROLES
from annotation.services.users import create_user


class Command(BaseCommand):
    help = "Create a user in one role. The password comes from ATLAS_PASSWORD, else it is asked for."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=ROLES)
        parser.add_argument("--email", default="")

    def handle(self, *args, username, role, email, **options):
        if User.objects.filter(username=username).exists():
            raise CommandError(f"user {username!r} already exists")
        password = os.environ.get("ATLAS_PASSWORD")
        if not password:
            password = getpass.getpass(f"password for {username}: ")
            if password != getpass.getpass("again: "):
                raise CommandError("the passwords differ")
        try:
            validate_password(password, User(username=username))
        except ValidationError as exc:
            raise CommandError(f"password: {' '.join(exc.messages)}") from exc
        create_user(username=username, role=role, password=password, email=email)
        self.stdout.write(f"created {username} ({role})")
