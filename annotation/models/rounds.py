"""Rounds of the loop: the models of each round, their predictions and the attention they left."""

from django.db import models

from annotation.models.catalog import Case, Organ


class ModelVersion(models.Model):
    """A member of an ensemble: a network Atlas trains, an external tool's imported predictions, or a registered
    model Atlas runs but never fine-tunes (an nnU-Net v2 folder, TotalSegmentator)."""

    class Arch(models.TextChoices):
        SWIN_UNETR = "swin_unetr"
        NNUNET = "nnunet"
        UNET = "unet"
        EXTERNAL = "external"
        NNUNETV2 = "nnunetv2", "registered nnU-Net v2 model"
        TOTALSEGMENTATOR = "totalsegmentator", "registered TotalSegmentator"
        MONAI_BUNDLE = "monai-bundle", "registered MONAI bundle"

    TRAINED = (Arch.SWIN_UNETR, Arch.NNUNET, Arch.UNET)  # Atlas's own networks: trained and fine-tuned
    # run by Atlas, never fine-tuned (services.members)
    REGISTERED = (Arch.NNUNETV2, Arch.TOTALSEGMENTATOR, Arch.MONAI_BUNDLE)

    name = models.CharField(max_length=128, unique=True)
    # the member's kind: one of TRAINED (an architecture), REGISTERED, or EXTERNAL; served as "kind" (members) and
    # "arch" (a round's validation rows). The column keeps its name: see issue #27's closing note.
    arch = models.CharField(max_length=32, choices=Arch.choices)
    size = models.CharField(max_length=16, blank=True)
    checkpoint = models.FileField(max_length=500, blank=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    metadata = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.name


class Round(models.Model):
    """Round k of the loop: train (or fine-tune) the models, infer, rank, annotate."""

    class Status(models.TextChoices):
        TRAINING = "training"
        INFERRING = "inferring"
        RANKING = "ranking"
        ANNOTATING = "annotating"
        CLOSED = "closed"
        FAILED = "failed"
        CANCELLED = "cancelled"

    # a round in one of these is still being built by jobs; at most one round at a time
    ACTIVE = (Status.TRAINING, Status.INFERRING, Status.RANKING)

    number = models.PositiveIntegerField(unique=True)
    label_set = models.ForeignKey("annotation.LabelSet", on_delete=models.PROTECT, related_name="rounds")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.TRAINING)
    members = models.ManyToManyField(ModelVersion, related_name="rounds", blank=True)
    settings = models.JSONField(default=dict, blank=True, help_text="archs, size, steps, attention thresholds")
    error = models.TextField(blank=True)
    converged = models.BooleanField(null=True, blank=True, help_text="top case confirmed with no change")

    class StoppedBy(models.TextChoices):
        NONE = "", "not stopped"
        TOP_CASE = "top_case", "top case confirmed unchanged"
        AUDIT = "audit", "audit: upper end of the 95% interval of the share needing correction below the target"

    stopped_by = models.CharField(max_length=16, choices=StoppedBy.choices, default="", blank=True,
                                  help_text="which stopping rule stopped the round (services.audit)")
    double_read_share = models.FloatField(default=0.0, help_text="share of the round's cases read twice, "
                                          "independently (annotation.services.double_reads)")
    metrics = models.JSONField(default=dict, blank=True,
                               help_text="figures that read files (label bias, voxel shares), cached with their key; "
                                         "annotation.services.metrics")
    readiness = models.JSONField(default=dict, blank=True,
                                 help_text="per organ, whether the round's members are fit to rank it "
                                           "(annotation.services.readiness)")
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"round {self.number} ({self.status})"


class Prediction(models.Model):
    """The ensemble's output for one case in one round, in the AbdomenAtlas layout.

    files: {"soft_pred": {arch: {organ: name}}, "attention": {organ: name}}: storage names.
    """

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="predictions")
    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="predictions")
    pseudo_label = models.FileField(max_length=500)
    heatmap = models.FileField(max_length=500, blank=True, help_text="attention heatmap, max over organs (uint8)")
    files = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True, help_text="last (re)recorded: the files may have changed")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["case", "round"], name="prediction_unique_case_round")]

    def __str__(self) -> str:
        return f"{self.case} in round {self.round.number}"


class OrganAttention(models.Model):
    """Attention of one organ of one case in one round. hotspots: [{voxels, ml, centroid, bbox}], largest first."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="attention")
    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="attention")
    organ = models.ForeignKey(Organ, on_delete=models.CASCADE, related_name="attention")
    size_ml = models.FloatField()
    voxels = models.PositiveBigIntegerField()
    hotspots = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["case", "-size_ml"]
        constraints = [
            models.UniqueConstraint(fields=["case", "round", "organ"], name="attention_unique_case_round_organ")
        ]
        indexes = [models.Index(fields=["round", "case"])]


class CaseMetrics(models.Model):
    """One case's figures in a round that need its files (pseudo-label, soft predictions, latest revision).

    key names what they were computed from (prediction and revision ids): an entry is recomputed only when its
    key changes. data: see annotation.services.metrics.case_entry.
    """

    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="case_metrics")
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="metrics")
    key = models.CharField(max_length=64)
    data = models.JSONField(default=dict)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["round", "case"], name="case_metrics_unique_round_case")]


class Job(models.Model):
    """One unit of background work (train an architecture, infer a case, rank, refresh metrics, check labels), with its
    progress.

    key is deterministic (round, kind, case or architecture), so a task delivered twice finds its job done.
    annotation.services.jobs maps each kind to its handler. While a job runs, its worker refreshes heartbeat_at;
    annotation.services.reaper queues a running job again when its heartbeat grows stale (its worker died). attempts
    counts claims and fences each one: only the attempt that holds the job may report progress or finish it.
    """

    class Kind(models.TextChoices):
        TRAIN = "train"
        INFER = "infer"
        ATTEND = "attend"  # with GPU workers: combine a case's stored votes, attention, record (default queue)
        RANK = "rank"
        METRICS = "metrics"
        QC = "qc"
        CLICK = "click"  # train the round's click model (services.interactive)
        AUDIT = "audit"  # apply the round's auto-accept rule and draw its audit sample (services.audit)

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    # kinds that need a GPU (training, inference): services.dispatch sends them to the GPU queue when GPU workers exist
    HEAVY = (Kind.TRAIN, Kind.INFER, Kind.CLICK)

    key = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="jobs")
    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.CASCADE, related_name="jobs")
    arch = models.CharField(max_length=32, blank=True)
    revision = models.ForeignKey("annotation.Revision", null=True, blank=True, on_delete=models.CASCADE,
                                 related_name="jobs", help_text="QC: the revision to check (none: the round's "
                                                                "pseudo-labels)")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    message = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True,
                                        help_text="last sign of life of the worker running it (the database's clock)")
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["round", "kind", "id"]
        indexes = [models.Index(fields=["round", "kind", "status"]), models.Index(fields=["status", "heartbeat_at"])]

    def __str__(self) -> str:
        return f"{self.key} ({self.status})"
