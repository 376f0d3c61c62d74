"""Review for leads: the queue of revisions waiting for a verdict, "next to review" (a lease), quality flags (JSON or
CSV, `export=csv`). The verdict itself is POST /api/revisions/{id}/review/."""

from __future__ import annotations

import csv
import io

from django.http import HttpResponse
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers as s
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.permissions import IsLead
from annotation.models import QualityFlag
from annotation.selectors import review as selectors
from annotation.services import reviews


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


urlpatterns = [
    path("review/queue/", ReviewQueue.as_view(), name="review-queue"),
    path("review/next/", ReviewNext.as_view(), name="review-next"),
    path("quality/flags/", QualityFlags.as_view(), name="quality-flags"),
]
