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


class LabelSetSerializer(serializers.ModelSerializer):
    organs = OrganSerializer(many=True, read_only=True)

    class Meta:
        model = LabelSet
        fields = ["id", "name", "display_name", "description", "organs"]


class CaseSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="name", read_only=True)
    labelled_organs = serializers.SerializerMethodField()

    class Meta:
        model = Case
        fields = ["id", "name", "dataset", "shape", "spacing", "affine", "dtype", "checksum", "source_format",
                  "created", "labelled_organs"]

    def get_labelled_organs(self, case: Case) -> list[str]:
        return sorted({organ.name for label in case.source_labels.all() for organ in label.organs.all()})


class CaseBriefSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Case
        fields = ["id", "name", "dataset", "shape", "spacing"]


class TaskSerializer(serializers.ModelSerializer):
    """A task as the workspace needs it: the case, organs in attention order, file URLs, the base revision."""

    case = CaseBriefSerializer(read_only=True)
    round = serializers.IntegerField(source="round.number", read_only=True)
    lease_holder = serializers.SlugRelatedField(slug_field="username", read_only=True)
    assignee = serializers.SlugRelatedField(slug_field="username", read_only=True)
    organs = serializers.SerializerMethodField()
    urls = serializers.SerializerMethodField()
    base_revision = serializers.SerializerMethodField()

    class Meta:
        model = Task
        fields = ["id", "status", "priority", "round", "case", "lease_holder", "lease_expires", "assignee",
                  "review_comment", "base_revision", "organs", "urls"]

    def get_organs(self, task: Task) -> list[dict]:
        return task_organs(task)

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


class RevisionSerializer(serializers.ModelSerializer):
    author = serializers.SlugRelatedField(slug_field="username", read_only=True)
    review = serializers.SerializerMethodField()
    number = serializers.IntegerField(read_only=True, help_text="1, 2, ... per case")

    class Meta:
        model = Revision
        fields = ["id", "task", "case", "number", "parent", "author", "kind", "changed_voxels", "dice",
                  "seconds_spent", "created", "review"]

    def get_review(self, revision: Revision) -> dict | None:
        review = getattr(revision, "review", None)
        return None if review is None else {"decision": review.decision, "comment": review.comment,
                                            "reviewer": review.reviewer.username}


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
