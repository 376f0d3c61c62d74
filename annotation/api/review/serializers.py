"""The review API's bodies, queries and answers (DRF serializers; the OpenAPI schema's components)."""

from __future__ import annotations

from rest_framework import serializers as s

from annotation.api.serializers import RevisionUploadSerializer
from annotation.models import QualityFlag, Review
from annotation.selectors import review as selectors


class ReviewQuery(s.Serializer):
    order = s.ChoiceField(choices=list(selectors.ORDERS), default="voxels")
    annotator = s.CharField(required=False)
    organ = s.CharField(required=False)


class WaitingRevision(s.Serializer):
    id = s.IntegerField()
    number = s.IntegerField()
    kind = s.CharField()
    case = s.CharField(source="case.name")
    case_id = s.IntegerField()
    task = s.IntegerField(source="task_id")
    author = s.CharField(source="author.username")
    created = s.DateTimeField()
    seconds_spent = s.FloatField()
    revised_voxels = s.SerializerMethodField()
    changed_voxels = s.DictField(child=s.IntegerField())
    flags = s.IntegerField(source="flag_count")
    attention_ml = s.FloatField(source="task.priority")
    reviewer = s.SerializerMethodField(help_text="the lead holding a review lease on it, if any")

    def get_revised_voxels(self, revision) -> int:
        return selectors.revised_voxels(revision)

    def get_reviewer(self, revision) -> str | None:
        lease = getattr(revision, "review_lease", None)
        return lease.holder.username if lease is not None else None


class FlagQuery(s.Serializer):
    round = s.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
    kind = s.ChoiceField(choices=QualityFlag.Check.choices, required=False)
    organ = s.CharField(required=False)
    case = s.CharField(required=False)
    source = s.ChoiceField(choices=["revision", "pseudo_label"], required=False)
    export = s.ChoiceField(choices=["json", "csv"], default="json", help_text="csv: a spreadsheet")


class FlagRow(s.Serializer):
    id = s.IntegerField()
    case = s.CharField()
    case_id = s.IntegerField()
    round = s.IntegerField()
    source = s.ChoiceField(choices=["revision", "pseudo_label"])
    revision = s.IntegerField(allow_null=True)
    revision_number = s.IntegerField(allow_null=True)
    organ = s.CharField()
    kind = s.ChoiceField(choices=QualityFlag.Check.choices)
    reason = s.CharField()
    detail = s.JSONField()
    place = s.ListField(child=s.FloatField(), allow_null=True, help_text="where it points (file voxel indices)")


class VerdictSerializer(s.Serializer):
    decision = s.ChoiceField(choices=Review.Decision.choices)
    reviewer = s.CharField(source="reviewer.username")
    comment = s.CharField()
    seconds = s.FloatField(allow_null=True)


class OrganDiff(s.Serializer):
    organ = s.CharField()
    value = s.IntegerField(min_value=1, max_value=255)
    display_name = s.CharField()
    color = s.CharField()
    added = s.IntegerField(help_text="voxels the organ gained")
    removed = s.IntegerField(help_text="voxels the organ lost")
    added_ml = s.FloatField()
    removed_ml = s.FloatField()
    before_ml = s.FloatField()
    after_ml = s.FloatField()
    change_ml = s.FloatField(help_text="after - before")
    centre = s.ListField(child=s.IntegerField(), allow_null=True, help_text="middle of the changes (file voxel)")


class DiffReference(s.Serializer):
    source = s.ChoiceField(choices=["revision", "pseudo_label", "imported", "empty"])
    revision = s.IntegerField(allow_null=True)
    number = s.IntegerField(allow_null=True)


class DiffSummary(s.Serializer):
    reference = DiffReference(help_text="the label the revision was made from: its parent, else the pseudo-label")
    voxel_ml = s.FloatField()
    organs = OrganDiff(many=True)


class TagRow(s.Serializer):
    organ = s.CharField()
    tag = s.CharField()


class Agreement(s.Serializer):
    organ = s.CharField()
    dice = s.FloatField()
    nsd = s.FloatField()


class OtherRead(s.Serializer):
    id = s.IntegerField()
    number = s.IntegerField()
    author = s.CharField()


class DoubleReadInfo(s.Serializer):
    id = s.IntegerField()
    read = s.IntegerField(min_value=1, max_value=2, help_text="which read this revision is")
    adjudicated = s.IntegerField(allow_null=True, help_text="the adjudicated revision's id")
    other = OtherRead(allow_null=True, help_text="the other read's latest revision (none: not landed)")
    agreement = Agreement(many=True)


class ReviewUrls(s.Serializer):
    ct = s.CharField()
    label = s.CharField()
    parent = s.CharField()
    diff = s.CharField()


class ReviewDetail(WaitingRevision):
    round = s.IntegerField()
    review = VerdictSerializer(allow_null=True)
    error_tags = TagRow(many=True)
    flag_rows = FlagRow(many=True)
    double_read = DoubleReadInfo(allow_null=True)
    annotators = s.ListField(child=s.CharField(), help_text="who a rejection can go to")
    diff = DiffSummary()
    urls = ReviewUrls()


class VerdictBody(s.Serializer):
    comment = s.CharField(required=False, allow_blank=True, default="", max_length=5000)
    seconds_spent = s.FloatField(required=False, allow_null=True, min_value=0.0, max_value=7 * 24 * 3600.0,
                                 help_text="how long the review took (default: since the review lease)")


class EditAcceptBody(RevisionUploadSerializer, VerdictBody):
    base_revision = None
    tags = None


class AdjudicateBody(VerdictBody):
    take = s.ChoiceField(choices=[1, 2], help_text="the read to take (1 or 2)")
    organs = s.DictField(child=s.ChoiceField(choices=[1, 2]), required=False, default=dict,
                         help_text='per organ, the read to take it from: {"liver": 2}')


class DoubleReadBody(s.Serializer):
    round = s.IntegerField(min_value=0, max_value=2**31 - 1)
    share = s.FloatField(min_value=0.0, max_value=1.0, help_text="0.05: one case in twenty is read twice")
    seed = s.IntegerField(required=False, default=0, min_value=0, max_value=2**31 - 1)


class DoubleReadRow(s.Serializer):
    id = s.IntegerField()
    case = s.CharField(source="case.name")
    first = s.IntegerField(source="first_id")
    second = s.IntegerField(source="second_id")
    adjudicated = s.IntegerField(source="adjudicated_id", allow_null=True)
