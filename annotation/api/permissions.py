from rest_framework.permissions import BasePermission

from annotation.roles import ADMIN, is_lead, role_of


class HasRole(BasePermission):
    """Any of annotator, lead or admin."""

    message = "you have no role in Atlas (annotator, lead or admin)"

    def has_permission(self, request, view) -> bool:
        return role_of(request.user) is not None


class IsLead(BasePermission):
    """Leads and admins."""

    message = "only leads and admins may do this"

    def has_permission(self, request, view) -> bool:
        return is_lead(request.user)


class IsAdmin(BasePermission):
    """Admins only (the admin group, or a superuser)."""

    message = "only admins may do this"

    def has_permission(self, request, view) -> bool:
        return role_of(request.user) == ADMIN
