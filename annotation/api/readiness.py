"""GET /api/readiness/: whether the shown round's members are fit to rank each organ (services.readiness), the
ranking rule that follows and the remedy. Annotators' queue page and the leads' dashboard show it."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers as s
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.permissions import HasRole
from annotation.selectors.readiness import readiness_summary
from annotation.selectors.rounds import shown_round


class MemberDice(s.Serializer):
    name = s.CharField()
    dice = s.FloatField()


class OrganReadiness(s.Serializer):
    organ = s.CharField()
    status = s.CharField(help_text="ready, not ready, untested (no held-out labelled case)")
    dice = s.FloatField(allow_null=True, help_text="the members' mean Dice on labelled cases they never trained on")
    cases = s.IntegerField(help_text="held-out labelled cases (the most any member had)")
    attention_share = s.FloatField(allow_null=True, help_text="attention / scanned volume, median case")
    reasons = s.ListField(child=s.CharField())
    members = MemberDice(many=True)


class Readiness(s.Serializer):
    round = s.IntegerField(allow_null=True)
    assessed = s.BooleanField()
    not_ready = s.ListField(child=s.CharField())
    fallback = s.BooleanField(help_text="no organ ready: the queue follows the cases' import order")
    rule = s.CharField(help_text="how the priority counts the organs")
    remedy = s.CharField()
    ready_dice = s.FloatField(required=False)
    ready_attention_share = s.FloatField(required=False)
    organs = OrganReadiness(many=True)


class RoundReadiness(APIView):
    permission_classes = [HasRole]

    @extend_schema(responses=Readiness)
    def get(self, request):
        return Response(Readiness(readiness_summary(shown_round())).data)


urlpatterns = [path("readiness/", RoundReadiness.as_view(), name="readiness")]
