"""Roles are Django groups: annotator, lead, admin. A superuser counts as admin."""

from __future__ import annotations

ANNOTATOR, LEAD, ADMIN = "annotator", "lead", "admin"
ROLES = (ANNOTATOR, LEAD, ADMIN)


def role_of(user) -> str | None:
    """The strongest role of a user, or None for anonymous users and users in no role."""
    if not user or not user.is_authenticated:
        return None
    if user.is_superuser:
        return ADMIN
    names = set(user.groups.values_list("name", flat=True)) if not hasattr(user, "_atlas_roles") else user._atlas_roles
    user._atlas_roles = names
    for role in (ADMIN, LEAD, ANNOTATOR):
        if role in names:
            return role
    return None


def is_lead(user) -> bool:
    return role_of(user) in (LEAD, ADMIN)
