"""Interactive engines: Atlas's click model of each round (trained with the ensemble) and registered ones
(nnInteractive, from a folder the group downloaded)."""

from django.db import models

from annotation.models.rounds import Round


class InteractiveModel(models.Model):
    """One interactive engine's weights. kind ATLAS_CLICK: the round's click model (round set, fine-tuned from
    parent); NNINTERACTIVE: registered by an operator (round empty), never trained here.

    metadata: validation (Dice after 0, 1, 3, 5 simulated clicks and on which cases), training cases, losses,
    licence, source, the folder of a registered engine."""

    class Kind(models.TextChoices):
        ATLAS_CLICK = "atlas-click", "Atlas click model"
        NNINTERACTIVE = "nninteractive", "nnInteractive (registered)"

    name = models.CharField(max_length=128, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    round = models.OneToOneField(Round, null=True, blank=True, on_delete=models.CASCADE,
                                 related_name="click_model")
    checkpoint = models.FileField(max_length=500, blank=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    registered = models.BooleanField(default=False, help_text="a registered engine offered in the workspace")
    metadata = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-pk"]

    def __str__(self) -> str:
        return self.name
