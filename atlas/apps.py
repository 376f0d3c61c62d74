"""The project's own app: security wiring (token revocation on a password change) and the media reconciliation
command. Its middleware is in atlas/security.py."""

from django.apps import AppConfig
from django.db.models.signals import post_save


class AtlasConfig(AppConfig):
    name = "atlas"
    verbose_name = "Atlas project"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model

        post_save.connect(_revoke_tokens_on_password_change, sender=get_user_model(),
                          dispatch_uid="atlas-revoke-tokens-on-password-change")


def _revoke_tokens_on_password_change(sender, instance, created: bool, **kwargs) -> None:
    """A password change (set_password, then save) deletes the user's API tokens; sessions end by Django's own
    session hash check. AbstractBaseUser keeps the new raw password in _password until save() has run."""
    if created or getattr(instance, "_password", None) is None:
        return
    from annotation.api.auth import revoke_tokens

    revoke_tokens(instance)
