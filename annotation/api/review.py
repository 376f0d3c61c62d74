"""Review for leads: the queue of revisions waiting for a verdict, "next to review" (a lease), one revision as the
review view shows it (what it changed against the label it was made from, its files and the diff volume), edit and
accept, adjudicating a double read, setting a round's double reads, quality flags (JSON or CSV, `export=csv`). The
plain verdict is POST /api/revisions/{id}/review/."""

from __future__ import annotations

import csv
import io

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers as s
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api import intake
from annotation.api.files import storage_file_response
from annotation.api.intake import upload_door
from annotation.api.permissions import HasRole, IsLead
from annotation.api.serializers import RevisionSerializer, RevisionUploadSerializer
from annotation.errors import NotFound
from annotation.models import QualityFlag, Review, Revision, Task
from annotation.roles import is_lead
from annotation.selectors import review as selectors
from annotation.selectors.labels import started_from
from annotation.selectors.rounds import round_by_number
from annotation.services import double_reads, review_diff, reviews, revisions


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


def _query(serializer_class, data) -> dict:
    body = serializer_class(data=data)
    body.is_valid(raise_exception=True)
    return body.validated_data


class ReviewQueue(APIView):
    """Revisions waiting for a lead's verdict, in the chosen order, optionally one annotator's or one organ's."""

    permission_classes = [IsLead]

    @extend_schema(parameters=[ReviewQuery], responses=WaitingRevision(many=True))
    def get(self, request):
        query = _query(ReviewQuery, request.query_params)
        return Response(WaitingRevision(selectors.waiting_for_review(**query), many=True).data)


class ReviewNext(APIView):
    """Lease the next revision to review (the one you hold, else the first free one in the order); 204: none."""

    permission_classes = [IsLead]

    @extend_schema(request=ReviewQuery, responses={200: WaitingRevision, 204: None})
    def post(self, request):
        query = _query(ReviewQuery, request.data)
        revision = reviews.lease_next_review(user=request.user, **query)
        if revision is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(WaitingRevision(selectors.waiting_revision(revision.pk)).data)


def _csv_cell(value) -> str:
    """A cell a spreadsheet will not run as a formula (=, +, -, @ lead a formula)."""
    text = "" if value is None else str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@") else text


class QualityFlags(APIView):
    """Quality flags of revisions and pseudo-labels, filtered; `export=csv` for a spreadsheet."""

    permission_classes = [IsLead]

    @extend_schema(parameters=[FlagQuery], responses=FlagRow(many=True))
    def get(self, request):
        query = _query(FlagQuery, request.query_params)
        fmt = query.pop("export")
        rows = [selectors.flag_row(f) for f in selectors.flags(**query)]
        if fmt == "json":
            return Response(FlagRow(rows, many=True).data)
        out = io.StringIO()
        columns = ["case", "round", "source", "revision_number", "organ", "kind", "reason"]
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows([_csv_cell(row[c]) for c in columns] for row in rows)
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="quality-flags.csv"'
        return response


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


def _revision(pk: int) -> Revision:
    revision = selectors.revision_for_review(pk)
    if revision is None:
        raise NotFound(f"no revision with id {pk}")
    return revision


class ReviewRevision(APIView):
    """One revision as the review view shows it: what it changed per organ against the label it was made from
    (mL), its error tags, seconds spent, flags, verdict, double read, and the URLs of its files and diff."""

    permission_classes = [IsLead]

    @extend_schema(responses=ReviewDetail)
    def get(self, request, pk: int):
        revision = _revision(pk)
        base = f"/api/review/revisions/{pk}"
        extra = {**selectors.review_context(revision), "diff": review_diff.diff_summary(revision),
                 "urls": {"ct": f"/api/cases/{revision.case_id}/ct.nii.gz", "label": f"{base}/label.nii.gz",
                          "parent": f"{base}/parent.nii.gz", "diff": f"{base}/diff.nii.gz"}}
        for name, value in extra.items():  # what the serializer reads beside the revision's own fields
            setattr(revision, name, value)
        return Response(ReviewDetail(revision).data)


class ReviewRevisionLabel(APIView):
    """The revision's label map (NIfTI, gzip)."""

    permission_classes = [IsLead]

    @extend_schema(responses={(200, "application/gzip"): OpenApiTypes.BINARY})
    def get(self, request, pk: int):
        revision = get_object_or_404(Revision, pk=pk)
        return storage_file_response(request, revision.label_file.name, filename="label.nii.gz")


class ReviewParentLabel(APIView):
    """The label the revision was made from: its parent revision, else the pseudo-label (404: none)."""

    permission_classes = [IsLead]

    @extend_schema(responses={(200, "application/gzip"): OpenApiTypes.BINARY})
    def get(self, request, pk: int):
        ref = started_from(get_object_or_404(Revision, pk=pk))
        return storage_file_response(request, ref.name if ref else None, filename="parent.nii.gz")


class ReviewDiff(APIView):
    """The diff against the label the revision was made from, as a uint8 NIfTI: 255 where an organ gained voxels,
    96 where it lost them; ?organ=NAME: that organ's only."""

    permission_classes = [IsLead]

    @extend_schema(parameters=[OpenApiParameter("organ", str, description="one organ's changes")],
                   responses={(200, "application/gzip"): OpenApiTypes.BINARY})
    def get(self, request, pk: int):
        revision = get_object_or_404(Revision.objects.select_related("case__dataset", "task"), pk=pk)
        body = review_diff.diff_nifti(revision, request.query_params.get("organ") or None)
        response = HttpResponse(body, content_type="application/gzip")
        response["Content-Disposition"] = 'inline; filename="diff.nii.gz"'
        response["Cache-Control"] = "private, max-age=3600"  # a revision never changes
        return response


class VerdictBody(s.Serializer):
    comment = s.CharField(required=False, allow_blank=True, default="", max_length=5000)
    seconds_spent = s.FloatField(required=False, allow_null=True, min_value=0.0, max_value=7 * 24 * 3600.0,
                                 help_text="how long the review took (default: since the review lease)")


class EditAcceptBody(RevisionUploadSerializer, VerdictBody):
    base_revision = None
    tags = None


@upload_door("file")
class ReviewEditAccept(APIView):
    """Edit and accept: the lead's corrected label map (multipart: file) becomes a new revision, child of this one,
    accepted; this one is marked "edited"."""

    permission_classes = [IsLead]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request={"multipart/form-data": EditAcceptBody}, responses={201: RevisionSerializer, 413: None})
    def post(self, request, pk: int):
        with intake.receive(request, field="file", suffixes=revisions.UPLOAD_SUFFIXES,
                            authorize=lambda: reviews.check_may_edit(revision_id=pk, reviewer=request.user)) as path:
            body = EditAcceptBody(data=request.data)
            body.is_valid(raise_exception=True)
            revision = reviews.edit_and_accept(revision_id=pk, reviewer=request.user, upload=path,
                                               seconds_spent=body.validated_data.get("seconds_spent"),
                                               comment=body.validated_data["comment"])
        return Response(RevisionSerializer(revision).data, status=status.HTTP_201_CREATED)


class AdjudicateBody(VerdictBody):
    take = s.ChoiceField(choices=[1, 2], help_text="the read to take (1 or 2)")
    organs = s.DictField(child=s.ChoiceField(choices=[1, 2]), required=False, default=dict,
                         help_text='per organ, the read to take it from: {"liver": 2}')


class ReviewAdjudicate(APIView):
    """Adjudicate the double read this revision is a read of: take one read, or merge them per organ, into a new
    revision the lead accepts (the case's final label); both reads become "adjudicated"."""

    permission_classes = [IsLead]

    @extend_schema(request=AdjudicateBody, responses={201: RevisionSerializer})
    def post(self, request, pk: int):
        body = AdjudicateBody(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        revision = double_reads.adjudicate(revision_id=pk, reviewer=request.user, take=int(data["take"]),
                                           organs={k: int(v) for k, v in data["organs"].items()},
                                           comment=data["comment"], seconds=data.get("seconds_spent"))
        return Response(RevisionSerializer(revision).data, status=status.HTTP_201_CREATED)


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


class DoubleReads(APIView):
    """Set the share of a round's cases that get two independent reads; returns the round's double reads."""

    permission_classes = [IsLead]

    @extend_schema(request=DoubleReadBody, responses=DoubleReadRow(many=True))
    def post(self, request):
        body = DoubleReadBody(data=request.data)
        body.is_valid(raise_exception=True)
        round = round_by_number(body.validated_data["round"])
        pairs = double_reads.set_share(round=round, share=body.validated_data["share"],
                                       seed=body.validated_data["seed"])
        return Response(DoubleReadRow(pairs, many=True).data)


class TaskFlags(APIView):
    """The quality flags of a task's case that its annotator sees: its round's pseudo-label's and its own
    revisions'. For the task's annotator (holder, assignee or author) and leads."""

    permission_classes = [HasRole]

    @extend_schema(responses=FlagRow(many=True))
    def get(self, request, pk: int):
        task = get_object_or_404(Task, pk=pk)
        if not is_lead(request.user) and not (task.lease_holder_id == request.user.pk
                                              or task.assignee_id == request.user.pk
                                              or task.revisions.filter(author=request.user).exists()):
            raise NotFound(f"no task with id {pk} of yours")
        return Response(FlagRow([selectors.flag_row(f) for f in selectors.task_flags(task)], many=True).data)


urlpatterns = [
    path("tasks/<int:pk>/flags/", TaskFlags.as_view(), name="task-flags"),
    path("review/queue/", ReviewQueue.as_view(), name="review-queue"),
    path("review/next/", ReviewNext.as_view(), name="review-next"),
    path("review/revisions/<int:pk>/", ReviewRevision.as_view(), name="review-revision"),
    path("review/revisions/<int:pk>/label.nii.gz", ReviewRevisionLabel.as_view(), name="review-label"),
    path("review/revisions/<int:pk>/parent.nii.gz", ReviewParentLabel.as_view(), name="review-parent"),
    path("review/revisions/<int:pk>/diff.nii.gz", ReviewDiff.as_view(), name="review-diff"),
    path("review/revisions/<int:pk>/edit-accept/", ReviewEditAccept.as_view(), name="review-edit-accept"),
    path("review/revisions/<int:pk>/adjudicate/", ReviewAdjudicate.as_view(), name="review-adjudicate"),
    path("review/double-reads/", DoubleReads.as_view(), name="double-reads"),
    path("quality/flags/", QualityFlags.as_view(), name="quality-flags"),
]
