"""Audits: a seeded, stratified sample of the cases nobody was going to revise, read as ordinary tasks, so that the
quality of the unrevised part can be estimated (annotation.services.audit, ml_engine.audit); and the cases a lead's
auto-accept rule made final with the AI's label."""

from django.conf import settings as django_settings
from django.db import models

from annotation.models.catalog import Case
from annotation.models.rounds import Round
from annotation.models.work import Task


class Audit(models.Model):
    """A round's audit sample: how it was drawn and the frame it speaks for.

    frame: {"sizes": [N_h per stratum], "strata": {case id: stratum}}, every case of the frame (the unrevised part at
    the draw, auto-accepted cases included), stratified by attention. settings: {"thresholds": {"ml", "dice"},
    "double_reads", "target_width", "expected_share", "worked"}.
    """

    round = models.OneToOneField(Round, on_delete=models.CASCADE, related_name="audit")
    seed = models.IntegerField(default=0)
    size = models.PositiveIntegerField(help_text="cases drawn")
    strata = models.PositiveSmallIntegerField(default=10)
    frame = models.JSONField(default=dict)
    settings = models.JSONField(default=dict, blank=True)
    drawn_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"audit of round {self.round.number} ({self.size} cases)"


class AuditCase(models.Model):
    """One drawn case: its ordinary task (read 1; a double read adds read 2 as models.DoubleRead), its stratum and
    place in the draw. nsd: {revision id: {organ: NSD}} of the round's pseudo-label against each read, measured by the
    revision's QC job (the Dice and changed voxels are on the revision itself); rater: the two reads' agreement."""

    audit = models.ForeignKey(Audit, on_delete=models.CASCADE, related_name="cases")
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="audits")
    task = models.OneToOneField(Task, on_delete=models.CASCADE, related_name="audit_case")
    stratum = models.PositiveSmallIntegerField()
    order = models.PositiveIntegerField()
    nsd = models.JSONField(default=dict, blank=True)
    rater = models.JSONField(default=dict, blank=True, help_text="a double read: {key: the two revisions, organs: "
                             "{organ: {dice, nsd, changed_ml}} of read 1 against read 2}, the rater's own noise")

    class Meta:
        ordering = ["audit", "order"]
        constraints = [models.UniqueConstraint(fields=["audit", "case"], name="audit_case_unique")]


class AutoAccept(models.Model):
    """A case the lead's rule accepted in a round: final with the AI's label (label: the round's pseudo-label), unless
    a lead later accepts a revision of it. rule: the rule as set; figures: what the case showed (attention mL, QC
    flags, the lowest member Dice with the mean)."""

    case = models.OneToOneField(Case, on_delete=models.CASCADE, related_name="auto_accept")
    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="auto_accepted")
    label = models.FileField(max_length=500)
    rule = models.JSONField(default=dict)
    figures = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["round", "case"]
