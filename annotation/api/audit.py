"""The audit's API: a lead sets a round's auto-accept rule, audit sample and audit stopping target; the dashboard's
audit panel reads the estimates. Thin: services.audit writes, selectors.audit reads. Leads and admins only."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers as s
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.permissions import IsLead
from annotation.models import Round
from annotation.selectors.audit import audit_board
from annotation.selectors.rounds import round_by_number, shown_round
from annotation.services import audit


class EstimateOut(s.Serializer):
    estimate = s.FloatField(allow_null=True)
    low = s.FloatField(allow_null=True, help_text="lower end of the 95% interval")
    high = s.FloatField(allow_null=True, help_text="upper end of the 95% interval")
    n = s.IntegerField(help_text="audit cases read")
    frame = s.IntegerField(help_text="cases the estimate speaks for")
    rater_low = s.FloatField(allow_null=True, help_text="with double reads: the lower of the two estimates (reads "
                             "corrected for the rater's noise, and not); the interval spans both")
    rater_high = s.FloatField(allow_null=True, help_text="with double reads: the higher of the two estimates")


class CasesOut(s.Serializer):
    estimate = s.FloatField(allow_null=True)
    low = s.FloatField(allow_null=True)
    high = s.FloatField(allow_null=True)
    frame = s.IntegerField()


class KeyEstimates(s.Serializer):
    needs_correction = EstimateOut(help_text="share of the cases needing a correction (Wilson interval)")
    cases_needing_correction = CasesOut(help_text="the share extrapolated to the cases it speaks for")
    dice = EstimateOut(help_text="mean Dice of the pseudo-label against the audit reads (bootstrap interval)")
    nsd = EstimateOut(help_text="mean NSD of the pseudo-label against the audit reads (bootstrap interval)")


class StratumOut(s.Serializer):
    stratum = s.IntegerField()
    frame = s.IntegerField()
    drawn = s.IntegerField()
    read = s.IntegerField()
    auto_accepted = s.IntegerField()


class RaterOrgan(s.Serializer):
    dice = s.FloatField()
    nsd = s.FloatField()
    pairs = s.IntegerField()


class RaterOut(s.Serializer):
    pairs = s.IntegerField()
    organs = s.DictField(child=RaterOrgan())


class ThresholdsOut(s.Serializer):
    ml = s.FloatField(allow_null=True)
    dice = s.FloatField(allow_null=True)


class AutoAcceptedPart(s.Serializer):
    cases = s.IntegerField()
    read = s.IntegerField()
    estimates = s.DictField(child=KeyEstimates(), allow_null=True)


class AuditOut(s.Serializer):
    round = s.IntegerField()
    seed = s.IntegerField()
    drawn = s.IntegerField()
    read = s.IntegerField()
    double_read = s.IntegerField()
    frame = s.IntegerField()
    thresholds = ThresholdsOut()
    settings = s.JSONField()
    created = s.CharField(help_text="ISO 8601")
    strata = StratumOut(many=True)
    unrevised = s.DictField(child=KeyEstimates(), help_text='"overall" and each organ')
    auto_accepted = AutoAcceptedPart()
    rater = RaterOut()


class AuditRoundRow(s.Serializer):
    round = s.IntegerField()
    status = s.ChoiceField(choices=Round.Status.choices)
    converged = s.BooleanField(allow_null=True)
    stopped_by = s.CharField(allow_blank=True)
    drawn = s.IntegerField()
    read = s.IntegerField()
    frame = s.IntegerField()
    auto_accepted = s.IntegerField()
    needs_correction = EstimateOut(allow_null=True)
    dice = EstimateOut(allow_null=True)


class StoppingOut(s.Serializer):
    stopped_by = s.CharField(allow_blank=True, help_text='"top_case", "audit" or "" (not stopped)')
    converged = s.BooleanField(allow_null=True)
    audit_target = s.FloatField(allow_null=True)
    audit_upper = s.FloatField(allow_null=True)
    audit_holds = s.BooleanField()


class AutoAcceptOut(s.Serializer):
    rule = s.JSONField(allow_null=True)
    cases = s.IntegerField()


class MemberFigures(s.Serializer):
    dice = s.FloatField(allow_null=True)
    nsd = s.FloatField(allow_null=True)
    cases = s.IntegerField()
    used = s.IntegerField(help_text="hotspots where the human label agrees best with this member")


class MembersOut(s.Serializer):
    cases = s.IntegerField()
    organs = s.DictField(child=s.DictField(child=MemberFigures()))
    ties = s.DictField(child=s.IntegerField())


class AuditBoard(s.Serializer):
    round = s.IntegerField(allow_null=True)
    rounds = AuditRoundRow(many=True)
    audit = AuditOut(allow_null=True)
    stopping = StoppingOut(allow_null=True)
    auto_accept = AutoAcceptOut(allow_null=True)
    members = MembersOut(allow_null=True)
    weighted_combination = s.CharField()


class AuditPlanIn(s.Serializer):
    round = s.IntegerField(min_value=0, help_text="an annotating round (or one being built)")
    auto_accept = s.JSONField(required=False, help_text='{"max_attention_ml", "no_qc_flag", "min_member_dice"}')
    audit = s.JSONField(required=False, help_text='{"size" | "target_width", "expected_share", "seed", "strata", '
                                                  '"double_reads", "annotators", "thresholds", "worked"}')
    audit_stop = s.FloatField(required=False, help_text="stop when the upper end of the 95% interval of the share "
                                                        "needing correction is below this")


class AuditPlanOut(s.Serializer):
    job = s.CharField(allow_null=True, help_text="the AUDIT job that applies the plan (null: applied later)")


class AuditRoundQuery(s.Serializer):
    round = s.IntegerField(required=False, min_value=0)


class DashboardAudit(APIView):
    """The audit panel: per round the audit's figures; for one round (default: the shown one) its estimates with 95%
    intervals and sample sizes, the stopping rules, the auto-accept rule and count, and the members' accuracy."""

    permission_classes = [IsLead]

    @extend_schema(parameters=[OpenApiParameter("round", int, description="round number (default: the shown one)")],
                   responses=AuditBoard)
    def get(self, request):
        query = AuditRoundQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        number = query.validated_data.get("round")
        round = shown_round() if number is None else round_by_number(number)
        return Response(AuditBoard(audit_board(round)).data)


class AuditPlan(APIView):
    """Set a round's auto-accept rule, audit sample and audit stopping target (leads); 202 with the job that applies
    them. 400 names the bad setting; 409 when the round is finished or has its sample already."""

    permission_classes = [IsLead]

    @extend_schema(request=AuditPlanIn, responses={202: AuditPlanOut, 400: None, 409: None})
    def post(self, request):
        body = AuditPlanIn(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        job = audit.set_plan(round=round_by_number(data["round"]), auto_accept=data.get("auto_accept"),
                             audit=data.get("audit"), audit_stop=data.get("audit_stop"))
        return Response(AuditPlanOut({"job": job.key if job else None}).data, status=status.HTTP_202_ACCEPTED)


urlpatterns = [
    path("dashboard/audit/", DashboardAudit.as_view(), name="dashboard-audit"),
    path("audit/", AuditPlan.as_view(), name="audit-plan"),
]
