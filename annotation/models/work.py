"""The annotators' work: tasks in a prioritised queue, immutable revisions, reviews, skips, error tags."""

from django.conf import settings
from django.db import models

from annotation.models.catalog import Case, Organ
from annotation.models.rounds import Round


class Task(models.Model):
    """One case to look at in one round. priority = total attention size (mL); higher comes first."""

    class Status(models.TextChoices):
        PENDING = "pending"
        LEASED = "leased"
        REVISED = "revised"
        CONFIRMED = "confirmed"
        SKIPPED = "skipped"

    # a task in one of these can be leased by `next`
    OPEN = (Status.PENDING, Status.SKIPPED)

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="tasks")
    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="tasks")
    priority = models.FloatField(help_text="total attention size in mL")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="assigned_tasks")
    lease_holder = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="leased_tasks")
    lease_expires = models.DateTimeField(null=True, blank=True)
    leased_at = models.DateTimeField(null=True, blank=True, help_text="when the current lease was taken")
    review_comment = models.TextField(blank=True, help_text="the lead's comment when a revision was rejected")
    read = models.PositiveSmallIntegerField(default=1, help_text="1; 2 for a double read's second, independent read")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-priority", "id"]
        constraints = [
            models.UniqueConstraint(fields=["case", "round", "read"], name="task_unique_case_round_read"),
            models.CheckConstraint(
                condition=~models.Q(status="leased")
                | models.Q(lease_holder__isnull=False, lease_expires__isnull=False),
                name="task_leased_has_holder",
            ),
        ]
        indexes = [
            models.Index(fields=["round", "status", "-priority", "id"], name="task_queue_order"),
            models.Index(fields=["status", "lease_expires"], name="task_lease_expiry"),
            # lease_next reads the open tasks in queue order: these let it stop at the first free row
            # (0.1 ms) instead of sorting every open task (8 ms at 8,448 tasks); docs/benchmarks.md, "Queue".
            models.Index(fields=["-priority", "id"], name="task_open_unassigned",
                         condition=models.Q(status__in=["pending", "skipped"], assignee__isnull=True)),
            models.Index(fields=["assignee", "-priority", "id"], name="task_open_assigned",
                         condition=models.Q(status__in=["pending", "skipped"])),
        ]

    def __str__(self) -> str:
        return f"task {self.pk}: {self.case} ({self.status})"


class Skip(models.Model):
    """An annotator passed on a task, with a reason; the task does not come back to them this round."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="skips")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="skips")
    reason = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["user", "task"])]


class ErrorTag(models.Model):
    """The paper's error taxonomy (fixtures/error_tags.json)."""

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=128)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.code


class Revision(models.Model):
    """An immutable version of a case's label map. number counts from 1 per case.

    kind "confirm" records "no change needed": its file equals its parent's (or the pseudo-label).
    changed_voxels / dice: per organ name, against the pseudo-label the annotator started from.
    """

    class Kind(models.TextChoices):
        REVISION = "revision"
        CONFIRM = "confirm"

    task = models.ForeignKey(Task, on_delete=models.PROTECT, related_name="revisions")
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="revisions")
    number = models.PositiveIntegerField()
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="revisions")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.REVISION)
    label_file = models.FileField(max_length=500)
    checksum = models.CharField(max_length=64)
    changed_voxels = models.JSONField(default=dict)
    dice = models.JSONField(default=dict)
    seconds_spent = models.FloatField(default=0)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["case", "number"]
        constraints = [models.UniqueConstraint(fields=["case", "number"], name="revision_unique_number")]

    def __str__(self) -> str:
        return f"{self.case} revision {self.number}"


class RevisionTag(models.Model):
    """An error tag on one organ of a revision."""

    revision = models.ForeignKey(Revision, on_delete=models.CASCADE, related_name="tags")
    organ = models.ForeignKey(Organ, on_delete=models.CASCADE)
    tag = models.ForeignKey(ErrorTag, on_delete=models.PROTECT)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["revision", "organ", "tag"], name="revision_tag_unique")]


class Review(models.Model):
    """A lead's verdict on a revision. A rejection sends the task back to the queue with the comment.

    edited: the lead corrected it into a new revision (its child), which they accepted. adjudicated: one of a double
    read's two reads, which the lead settled into a new, accepted revision. seconds: how long the review took.
    """

    class Decision(models.TextChoices):
        ACCEPTED = "accepted"
        REJECTED = "rejected"
        EDITED = "edited"
        ADJUDICATED = "adjudicated"

    # what a lead may send to POST /api/revisions/{id}/review/; the others come from editing and adjudicating
    VERDICTS = (Decision.ACCEPTED, Decision.REJECTED)

    revision = models.OneToOneField(Revision, on_delete=models.CASCADE, related_name="review")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews")
    decision = models.CharField(max_length=16, choices=Decision.choices)
    comment = models.TextField(blank=True)
    seconds = models.FloatField(null=True, blank=True, help_text="how long the review took (the page's clock, "
                                "else since the review lease was taken)")
    created = models.DateTimeField(auto_now_add=True)


class ImageLink(models.Model):
    """An image id handed to a MONAI Label client (3D Slicer): a random token that stands for one leased task.

    The token itself is never stored: `digest` is its SHA-256, so the table cannot be replayed from a backup or a
    leak. What it grants (task, user, the revision the client was given as its base) stays on the server; the id says
    nothing about any of them. Ids older than services.monailabel.MAX_AGE are refused and removed.
    """

    digest = models.CharField(max_length=64, unique=True)
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="image_links")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="image_links")
    base_revision = models.ForeignKey(Revision, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"image link {self.pk}: task {self.task_id} for user {self.user_id}"
