"""The review API's views: one small view per operation (serializers in .serializers, the CSV in .export)."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api import intake
from annotation.api.files import storage_file_response
from annotation.api.intake import upload_door
from annotation.api.permissions import HasRole, IsLead
from annotation.api.review.export import flags_csv
from annotation.api.review.serializers import (
    AdjudicateBody,
    DoubleReadBody,
    DoubleReadRow,
    EditAcceptBody,
    FlagQuery,
    FlagRow,
    ReviewDetail,
    ReviewQuery,
    WaitingRevision,
)
from annotation.api.serializers import RevisionSerializer
from annotation.errors import NotFound
from annotation.models import Revision, Task
from annotation.roles import is_lead
from annotation.selectors import review as selectors
from annotation.selectors.labels import started_from
from annotation.selectors.rounds import round_by_number
from annotation.services import double_reads, review_diff, reviews, revisions


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
        return flags_csv(rows)


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
