"""Users and their roles (Django groups annotator / lead / admin)."""

from __future__ import annotations

from django.contrib.auth.models import Group, User
from django.db import transaction

from annotation.errors import Conflict, Invalid
from annotation.roles import ROLES


@transaction.atomic
def create_user(*, username: str, role: str, password: str, email: str = "") -> User:
    """Create a user in one role. An admin is also a Django superuser (the admin site)."""
    if role not in ROLES:
        raise Invalid(f"{role!r} is not one of {', '.join(ROLES)}", field="role")
    if User.objects.filter(username=username).exists():
        raise Conflict(f"a user named {username!r} exists already", field="username")
    user = User.objects.create_user(username=username, password=password, email=email,
                                    is_staff=role == "admin", is_superuser=role == "admin")
    user.groups.add(Group.objects.get(name=role))
    return user
