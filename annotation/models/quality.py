"""Automatic quality checks of labels (annotation.services.quality_checks) and the leases of reviews."""

from django.conf import settings
from django.db import models

from annotation.models.catalog import Case, Organ
from annotation.models.rounds import Prediction, Round
from annotation.models.work import Revision


class LabelCheck(models.Model):
    """One run of the checks on one label: a revision as it landed, or a round's pseudo-label of a case.

    key: what was checked (the revision, or the prediction as last recorded), so a check is redone only when that
    changes. volumes: {organ: mL}, which the dataset's volume ranges are made of.
    """

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="label_checks")
    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="label_checks")
    revision = models.OneToOneField(Revision, null=True, blank=True, on_delete=models.CASCADE,
                                    related_name="label_check")
    prediction = models.OneToOneField(Prediction, null=True, blank=True, on_delete=models.CASCADE,
                                      related_name="label_check")
    key = models.CharField(max_length=100)
    volumes = models.JSONField(default=dict)
    created = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(
            condition=models.Q(revision__isnull=True) ^ models.Q(prediction__isnull=True),
            name="label_check_one_source")]


class QualityFlag(models.Model):
    """One finding of a check: an organ, what is wrong (reason) and where (detail: voxels, components, bbox)."""

    class Check(models.TextChoices):
        VOLUME = "volume"
        COMPONENTS = "components"
        SIDE = "side"
        EDGE = "edge"
        OUTSIDE_BODY = "outside_body"
        ERASED = "erased"

    label_check = models.ForeignKey(LabelCheck, on_delete=models.CASCADE, related_name="flags")
    organ = models.ForeignKey(Organ, on_delete=models.CASCADE, related_name="flags")
    kind = models.CharField(max_length=16, choices=Check.choices)
    reason = models.TextField()
    detail = models.JSONField(default=dict)

    class Meta:
        ordering = ["label_check", "organ__value", "kind"]
        indexes = [models.Index(fields=["kind"])]


class ReviewLease(models.Model):
    """A lead is reviewing this revision until `expires`: no other lead gets it from "next to review"."""

    revision = models.OneToOneField(Revision, on_delete=models.CASCADE, related_name="review_lease")
    holder = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="review_leases")
    leased_at = models.DateTimeField()
    expires = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["holder"]), models.Index(fields=["expires"])]
