"""The domain: label sets and their organs, datasets, cases and the source labels they came with."""

from django.db import models

from ml_engine.labels import OrganIndex


class LabelSet(models.Model):
    """A named list of organs with fixed label values (abdomenatlas, word, btcv, flare)."""

    name = models.SlugField(max_length=64, unique=True)
    display_name = models.CharField(max_length=128)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def organ_names(self) -> tuple[str, ...]:
        """The organs' names in value order: the networks' output channels."""
        return tuple(self.organs.order_by("value").values_list("name", flat=True))

    def organ_values(self) -> dict[str, int]:
        return dict(self.organs.values_list("name", "value"))

    def organ_index(self) -> OrganIndex:
        """The engine's OrganIndex of these rows (values in value order, aliases): the one place that builds it."""
        return OrganIndex.from_entries(self.organs.values("name", "value", "aliases"), name=self.name)


class Organ(models.Model):
    """One structure of a label set: its voxel value in label maps, a canonical name and a colour."""

    label_set = models.ForeignKey(LabelSet, on_delete=models.CASCADE, related_name="organs")
    value = models.PositiveSmallIntegerField()
    name = models.SlugField(max_length=64, help_text="canonical name, e.g. kidney_right, postcava")
    display_name = models.CharField(max_length=128)
    color = models.CharField(max_length=7, help_text="#rrggbb")
    aliases = models.JSONField(default=list, blank=True, help_text="other names in foreign datasets")

    class Meta:
        ordering = ["label_set", "value"]
        constraints = [
            models.UniqueConstraint(fields=["label_set", "value"], name="organ_unique_value"),
            models.UniqueConstraint(fields=["label_set", "name"], name="organ_unique_name"),
            models.CheckConstraint(condition=models.Q(value__gte=1), name="organ_value_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.label_set.name}:{self.value} {self.name}"


class Dataset(models.Model):
    """A collection of cases annotated with one label set."""

    name = models.SlugField(max_length=128, unique=True)
    label_set = models.ForeignKey(LabelSet, on_delete=models.PROTECT, related_name="datasets")
    description = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Case(models.Model):
    """One CT volume, stored as CASE/ct.nii.gz with its source geometry kept exactly.

    shape is (x, y, z) in NIfTI voxel order, spacing in mm, affine the 4 x 4 voxel-to-RAS+ matrix.
    """

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="cases")
    name = models.CharField(max_length=200)
    ct_file = models.FileField(max_length=500)
    shape = models.JSONField()
    spacing = models.JSONField()
    affine = models.JSONField()
    dtype = models.CharField(max_length=16)
    checksum = models.CharField(max_length=64, help_text="sha256 of the source file(s)")
    source_path = models.TextField(blank=True)
    source_format = models.CharField(max_length=32)
    # DICOM sources: the series' UIDs, and its instances' headers in slice order (what a DICOM SEG references)
    study_uid = models.CharField(max_length=64, blank=True)
    series_uid = models.CharField(max_length=64, blank=True, db_index=True)
    dicom_headers = models.FileField(max_length=500, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dataset", "name"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "name"], name="case_unique_name"),
            models.UniqueConstraint(fields=["dataset", "checksum"], name="case_unique_checksum"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset.name}/{self.name}"


class SourceLabel(models.Model):
    """A label map that came with a case, in its label set's values, and the organs it covers.

    Partial labels are the normal case: an organ not in `organs` is unknown, not background.
    """

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="source_labels")
    label_file = models.FileField(max_length=500)
    organs = models.ManyToManyField(Organ, related_name="source_labels")
    checksum = models.CharField(max_length=64)
    source_path = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["case", "id"]

    def __str__(self) -> str:
        return f"{self.case} label {self.pk}"
