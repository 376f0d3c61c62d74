"""The lead dashboard's API: queues and progress, the ranked list, attention curves, quality per round, jobs, and
starting a round (admins). Thin: selectors read, services write. Leads and admins only; starting a round: admins.
"""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api import dashboard_serializers as out
from annotation.api.permissions import IsAdmin, IsLead
from annotation.models import Round, Task
from annotation.selectors import dashboard as boards
from annotation.selectors import quality
from annotation.selectors.interactive import engine_rows
from annotation.selectors.members import member_list
from annotation.selectors.review_board import review_board
from annotation.selectors.rounds import round_by_number, round_summary, shown_round
from annotation.services import metrics
from annotation.services.rounds import ARCHITECTURES, SIZES, start_round

ROUND_PARAM = OpenApiParameter("round", int, description="round number (default: the latest annotating round)")


class RoundQuery(serializers.Serializer):
    round = serializers.IntegerField(required=False, min_value=0)


class TasksQuery(RoundQuery):
    offset = serializers.IntegerField(required=False, min_value=0, default=0)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=100)
    status = serializers.ChoiceField(required=False, choices=Task.Status.choices)


class StartRoundSerializer(serializers.Serializer):
    archs = serializers.ListField(child=serializers.ChoiceField(choices=ARCHITECTURES), min_length=1,
                                  default=list(ARCHITECTURES))
    size = serializers.ChoiceField(choices=SIZES, required=False, allow_null=True, default=None,
                                   help_text="default: base when a start is registered, else tiny")
    epochs = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    steps = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    label_set = serializers.SlugField(required=False, default="abdomenatlas")
    seed = serializers.IntegerField(required=False, default=0)
    holdout = serializers.FloatField(required=False, min_value=0.0, max_value=0.9)
    click = serializers.BooleanField(required=False, default=True,
                                     help_text="also fine-tune the click model (its own job of the round)")
    click_steps = serializers.IntegerField(required=False, allow_null=True, min_value=1,
                                           help_text="the click model's steps (default: steps, else its own)")
    # issue 26: the round's auto-accept rule, audit sample and audit stopping target (services.audit checks them)
    auto_accept = serializers.JSONField(required=False)
    audit_plan = serializers.JSONField(required=False)
    audit_stop = serializers.FloatField(required=False)

    def validate(self, data):
        if data.get("epochs") is not None and data.get("steps") is not None:
            raise ValidationError({"steps": "give epochs or steps, not both"})
        if len(set(data["archs"])) != len(data["archs"]):
            raise ValidationError({"archs": "an architecture is named twice"})
        return data


def _query(serializer_class, request) -> dict:
    body = serializer_class(data=request.query_params)
    body.is_valid(raise_exception=True)
    return body.validated_data


def _round(number: int | None, *, default=shown_round) -> Round | None:
    """The round with this number (404 naming the field when there is none), else the default."""
    return default() if number is None else round_by_number(number)


class DashboardOverview(APIView):
    """Queues of a round (tasks by status, annotator and organ; leases) and progress, pace and time left."""

    permission_classes = [IsLead]

    @extend_schema(parameters=[ROUND_PARAM], responses=out.Overview)
    def get(self, request):
        return Response(out.render(out.Overview, boards.overview(_round(_query(RoundQuery, request).get("round")))))


class DashboardTasks(APIView):
    """A page of a round's ranked list, with ranks among all and among open tasks (for assignment by range)."""

    permission_classes = [IsLead]

    @extend_schema(parameters=[ROUND_PARAM, OpenApiParameter("offset", int), OpenApiParameter("limit", int),
                               OpenApiParameter("status", str, enum=Task.Status.values)],
                   responses=out.RankedPage)
    def get(self, request):
        query = _query(TasksQuery, request)
        round = _round(query.get("round"))
        if round is None:
            return Response({"round": None, "count": 0, "open": 0, "offset": 0, "limit": query["limit"],
                             "results": []})
        return Response(out.render(out.RankedPage, boards.ranked_tasks(
            round, offset=query["offset"], limit=query["limit"], status=query.get("status"))))


class DashboardAttention(APIView):
    """Attention size of every case, largest first, one series per round, revised / confirmed cases marked."""

    permission_classes = [IsLead]

    @extend_schema(responses=out.AttentionCurves)
    def get(self, request):
        return Response(out.render(out.AttentionCurves, {"rounds": quality.attention_curves()}))


class DashboardQuality(APIView):
    """Per round: pseudo-label Dice against the revisions, model validation Dice, error tags, attention summary,
    and the cached label-bias matrix and voxel shares (with whether they are stale)."""

    permission_classes = [IsLead]

    @extend_schema(parameters=[OpenApiParameter("round", int, description="one round (default: every round)")],
                   responses=out.Qualities)
    def get(self, request):
        number = _query(RoundQuery, request).get("round")
        rounds = quality.quality() if number is None else [quality.round_quality(_round(number))]
        return Response(out.render(out.Qualities, {"rounds": rounds}))


class RefreshQuality(APIView):
    """Queue a job that brings a round's file-based metrics (label bias, voxel shares) up to date (202); it reads
    only the cases that changed. The quality endpoint shows the result, and `metrics.stale` until it lands."""

    permission_classes = [IsLead]

    @extend_schema(request=RoundQuery, responses={202: out.RefreshAccepted})
    def post(self, request):
        body = RoundQuery(data=request.data)
        body.is_valid(raise_exception=True)
        round = _round(body.validated_data.get("round"))
        if round is None:
            raise ValidationError({"round": "there is no round yet"})
        job = metrics.request_update(round=round)
        return Response(out.render(out.RefreshAccepted, {"round": round.number, "job": job.key, "status": job.status}),
                        status=status.HTTP_202_ACCEPTED)


class DashboardJobs(APIView):
    """Rounds and their step progress; one round's running (live progress), failed and recent jobs."""

    permission_classes = [IsLead]

    @extend_schema(parameters=[OpenApiParameter("round", int, description="round number (default: the latest)")],
                   responses=out.JobsBoard)
    def get(self, request):
        round = _round(_query(RoundQuery, request).get("round"), default=lambda: None)
        data = boards.jobs(round)
        data["can_start"] = IsAdmin().has_permission(request, self)
        return Response(out.render(out.JobsBoard, data))


class DashboardReviews(APIView):
    """The leads' verdicts and the time a review takes, verdicts per annotator, what waits for review, and the
    double reads' inter-annotator Dice and NSD per organ; of one round (default: the shown round)."""

    permission_classes = [IsLead]

    @extend_schema(parameters=[ROUND_PARAM], responses=out.ReviewBoard)
    def get(self, request):
        return Response(out.render(out.ReviewBoard, review_board(_round(_query(RoundQuery, request).get("round")))))
class DashboardMembers(APIView):
    """Registered models (nnU-Net v2 folders, TotalSegmentator) and imported predictions: ensemble members Atlas never
    fine-tunes; which rounds each made. Each round's own members (and which were fine-tuned) are in its summary."""

    permission_classes = [IsLead]

    @extend_schema(responses=out.Members)
    def get(self, request):
        return Response(out.render(out.Members, {"members": member_list(), "interactive": engine_rows()}))


class StartRound(APIView):
    """Start the next round of the loop (admins): train or fine-tune, infer, rank. 409 while one is running."""

    permission_classes = [IsAdmin]

    @extend_schema(request=StartRoundSerializer, responses={201: out.RoundSummary, 400: None, 409: None})
    def post(self, request):
        body = StartRoundSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        options = dict(body.validated_data)
        if options.get("holdout") is None:
            options.pop("holdout", None)
        round = start_round(**options)
        return Response(out.render(out.RoundSummary, round_summary(round)), status=status.HTTP_201_CREATED)


urlpatterns = [
    path("dashboard/", DashboardOverview.as_view(), name="dashboard"),
    path("dashboard/tasks/", DashboardTasks.as_view(), name="dashboard-tasks"),
    path("dashboard/attention/", DashboardAttention.as_view(), name="dashboard-attention"),
    path("dashboard/quality/", DashboardQuality.as_view(), name="dashboard-quality"),
    path("dashboard/quality/refresh/", RefreshQuality.as_view(), name="dashboard-quality-refresh"),
    path("dashboard/jobs/", DashboardJobs.as_view(), name="dashboard-jobs"),
    path("dashboard/reviews/", DashboardReviews.as_view(), name="dashboard-reviews"),
    path("dashboard/members/", DashboardMembers.as_view(), name="dashboard-members"),
    path("rounds/start/", StartRound.as_view(), name="round-start"),
]
