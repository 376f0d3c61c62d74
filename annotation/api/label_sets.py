"""Label sets: every one (the import and round forms), and the one of a case's dataset (what the workspace paints)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.permissions import HasRole
from annotation.api.serializers import LabelSetSerializer
from annotation.selectors import cases as case_selectors
from annotation.selectors.work import visible_cases


class LabelSetList(generics.ListAPIView):
    serializer_class = LabelSetSerializer
    pagination_class = None

    def get_queryset(self):
        return case_selectors.label_sets()


class CaseLabelSet(APIView):
    """The label set of a case's dataset: every organ the workspace can paint, with values and colours."""

    permission_classes = [HasRole]

    @extend_schema(responses=LabelSetSerializer)
    def get(self, request, pk: int):
        case = get_object_or_404(visible_cases(request.user).select_related("dataset__label_set"), pk=pk)
        return Response(LabelSetSerializer(case.dataset.label_set).data)
