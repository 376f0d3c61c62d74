from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotation.api.parsing import BoundedJSONField
from annotation.errors import Invalid
from annotation.models import Case, LabelSet, Organ, Review, Revision, Task
from annotation.selectors.labels import latest_revision
from annotation.selectors.work import task_organs
from annotation.services.revisions import MAX_SECONDS_SPENT


class OrganSerializer(serializers.ModelSerializer):
    # declared, so that the schema does not depend on the database's integer ranges (SQLite's differ)
    value = serializers.IntegerField(min_value=1, max_value=255, help_text="its voxel value in label maps")

    class Meta:
        model = Organ
        fields = ["value", "name", "display_name", "color"]
        read_only_fields = fields


class LabelSetSerializer(serializers.ModelSerializer):
    organs = OrganSerializer(many=True, read_only=True)

    class Meta:
        model = LabelSet
        fields = ["id", "name", "display_name", "description", "organs"]
        read_only_fields = fields


def _shape() -> serializers.ListField:
    return serializers.ListField(child=serializers.IntegerField(), read_only=True, help_text="voxels (x, y, z)")


def _spacing() -> serializers.ListField:
    return serializers.ListField(child=serializers.FloatField(), read_only=True, help_text="mm (x, y, z)")


class CaseSerializer(serializers.ModelSerializer):
    """The cases are written by the imports, never through the API: every field is read-only."""

    dataset = serializers.SlugRelatedField(slug_field="name", read_only=True)
    shape = _shape()
    spacing = _spacing()
    affine = serializers.ListField(child=serializers.ListField(child=serializers.FloatField()), read_only=True,
                                   help_text="4 x 4, voxel indices to world mm (RAS+)")
    labelled_organs = serializers.SerializerMethodField()

    class Meta:
        model = Case
        fields = ["id", "name", "dataset", "shape", "spacing", "affine", "dtype", "checksum", "source_format",
                  "created", "labelled_organs"]
        read_only_fields = fields

    def get_labelled_organs(self, case: Case) -> list[str]:
        return sorted({organ.name for label in case.source_labels.all() for organ in label.organs.all()})


class CaseBriefSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="name", read_only=True)
    shape = _shape()
    spacing = _spacing()

    class Meta:
        model = Case
        fields = ["id", "name", "dataset", "shape", "spacing"]
        read_only_fields = fields


class HotspotSerializer(serializers.Serializer):
    """One attention hotspot, as ml_engine.attention.hotspots.Hotspot.to_dict stores it."""

    voxels = serializers.IntegerField()
    ml = serializers.FloatField()
    centroid = serializers.ListField(child=serializers.FloatField(), min_length=3, max_length=3,
                                     help_text="mean voxel index (x, y, z)")
    bbox = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField(), min_length=3,
                                                             max_length=3), min_length=2, max_length=2,
                                 help_text="[start, stop]: voxel indices (x, y, z), stop one past the last")
    centroid_mm = serializers.ListField(child=serializers.FloatField(), min_length=3, max_length=3, required=False,
                                        help_text="the centroid in world mm (RAS+)")


class TaskOrganSerializer(serializers.Serializer):
    """One organ of a task's case (selectors.work.task_organs): its attention size and hotspots, largest first."""

    name = serializers.CharField()
    value = serializers.IntegerField(min_value=1, max_value=255, help_text="its voxel value in label maps")
    display_name = serializers.CharField()
    color = serializers.CharField()
    size_ml = serializers.FloatField(help_text="attention size in mL")
    voxels = serializers.IntegerField()
    hotspots = HotspotSerializer(many=True)


class TaskUrlsSerializer(serializers.Serializer):
    ct = serializers.CharField()
    label = serializers.CharField()
    attention = serializers.CharField()


class TaskSerializer(serializers.ModelSerializer):
    """A task as the workspace needs it: the case, organs in attention order, file URLs, the base revision."""

    case = CaseBriefSerializer(read_only=True)
    round = serializers.IntegerField(source="round.number", read_only=True)
    lease_holder = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    assignee = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    organs = serializers.SerializerMethodField()
    urls = serializers.SerializerMethodField()
    base_revision = serializers.SerializerMethodField()

    class Meta:
        model = Task
        fields = ["id", "status", "priority", "round", "case", "lease_holder", "lease_expires", "assignee",
                  "review_comment", "base_revision", "organs", "urls"]
        read_only_fields = fields

    @extend_schema_field(TaskOrganSerializer(many=True))
    def get_organs(self, task: Task) -> list[dict]:
        return TaskOrganSerializer(task_organs(task), many=True).data

    @extend_schema_field(TaskUrlsSerializer)
    def get_urls(self, task: Task) -> dict[str, str]:
        base = f"/api/cases/{task.case_id}"
        return {"ct": f"{base}/ct.nii.gz", "label": f"{base}/label.nii.gz", "attention": f"{base}/attention.nii.gz"}

    def get_base_revision(self, task: Task) -> int | None:
        latest = latest_revision(task.case, task)
        return latest.pk if latest else None


class QueueTaskSerializer(serializers.ModelSerializer):
    case = serializers.CharField(source="case.name", read_only=True)
    round = serializers.IntegerField(source="round.number", read_only=True)

    class Meta:
        model = Task
        fields = ["id", "case", "round", "priority", "status", "lease_expires", "review_comment"]
        read_only_fields = fields


class ReviewBriefSerializer(serializers.Serializer):
    """A revision's review: its verdict (accepted or rejected, or how a lead's own edit or adjudication ended)."""

    decision = serializers.ChoiceField(choices=Review.Decision.choices)
    comment = serializers.CharField()
    reviewer = serializers.CharField(source="reviewer.username")


class RevisionSerializer(serializers.ModelSerializer):
    author = serializers.SlugRelatedField(slug_field="username", read_only=True)
    review = serializers.SerializerMethodField()
    changed_voxels = serializers.DictField(child=serializers.IntegerField(), read_only=True,
                                           help_text="per organ name: voxels changed against the pseudo-label")
    dice = serializers.DictField(child=serializers.FloatField(), read_only=True,
                                 help_text="per organ name: Dice against the pseudo-label")
    number = serializers.IntegerField(read_only=True, help_text="1, 2, ... per case")

    class Meta:
        model = Revision
        fields = ["id", "task", "case", "number", "parent", "author", "kind", "changed_voxels", "dice",
                  "seconds_spent", "created", "review"]
        read_only_fields = fields

    @extend_schema_field(ReviewBriefSerializer(allow_null=True))
    def get_review(self, revision: Revision) -> dict | None:
        review = getattr(revision, "review", None)
        return None if review is None else ReviewBriefSerializer(review).data


MAX_ID = 2**63 - 1  # database ids are 64-bit: larger numbers are refused here, not by the database (a 500)


def _id(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


def _seconds() -> serializers.FloatField:
    return serializers.FloatField(required=False, default=0.0, min_value=0.0, max_value=MAX_SECONDS_SPENT)


class RevisionUploadSerializer(serializers.Serializer):
    file = serializers.FileField()
    base_revision = _id(required=False, allow_null=True)
    tags = BoundedJSONField(required=False, help_text='{"liver": ["ambiguous_boundary"]}')
    seconds_spent = _seconds()

    def validate_tags(self, value):
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise Invalid("expected an object {organ: [tag codes]}", field="tags")
        return value


class ConfirmSerializer(serializers.Serializer):
    base_revision = _id(required=False, allow_null=True)
    seconds_spent = _seconds()


class SkipSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class ReviewSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=[(d.value, d.label) for d in Review.VERDICTS])
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)
    seconds_spent = serializers.FloatField(required=False, allow_null=True, min_value=0.0, max_value=MAX_SECONDS_SPENT,
                                           help_text="how long the review took (default: since the review lease)")
    reassign_to = serializers.CharField(required=False, allow_null=True, max_length=150,
                                        help_text="a rejection: the annotator who gets the task (default: its own)")


class AssignSerializer(serializers.Serializer):
    annotator = serializers.CharField(allow_null=True, help_text="username; null unassigns")
    task_ids = serializers.ListField(child=_id(), required=False, max_length=100_000)
    rank_from = serializers.IntegerField(required=False, min_value=1, max_value=2**31 - 1)
    rank_to = serializers.IntegerField(required=False, min_value=1, max_value=2**31 - 1)


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False, max_length=4096)
