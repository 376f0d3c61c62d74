"""Catalogue views: cases and their files (label sets: label_sets.py). Thin: selectors decide what a user may see."""

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics
from rest_framework.views import APIView

from annotation.api.files import storage_file_response
from annotation.api.permissions import HasRole
from annotation.api.serializers import CaseSerializer
from annotation.selectors.work import heatmap_name, label_name, visible_cases


class CaseList(generics.ListAPIView):
    serializer_class = CaseSerializer
    permission_classes = [HasRole]

    def get_queryset(self):
        return visible_cases(self.request.user)


class CaseDetail(generics.RetrieveAPIView):
    serializer_class = CaseSerializer
    permission_classes = [HasRole]

    def get_queryset(self):
        return visible_cases(self.request.user)


class _CaseFile(APIView):
    permission_classes = [HasRole]
    filename = ""

    def storage_name(self, case, request) -> str | None:
        raise NotImplementedError

    @extend_schema(responses={(200, "application/gzip"): OpenApiTypes.BINARY})
    def get(self, request, pk: int):
        case = get_object_or_404(visible_cases(request.user), pk=pk)
        return storage_file_response(request, self.storage_name(case, request), filename=self.filename)


class CaseCT(_CaseFile):
    """The CT as stored (NIfTI, gzip)."""

    filename = "ct.nii.gz"

    def storage_name(self, case, request):
        return case.ct_file.name


class CaseLabel(_CaseFile):
    """The label map to edit (selectors.labels.label_to_edit): the latest revision no lead rejected (for an
    annotator, of their own read of a double read), else an imported label that covers every organ, else the latest
    pseudo-label, else a partial imported label."""

    filename = "label.nii.gz"

    def storage_name(self, case, request):
        return label_name(case, request.user)


class CaseAttention(_CaseFile):
    """The attention heatmap (uint8): max over organs, or one organ with ?organ=NAME."""

    filename = "attention.nii.gz"

    @extend_schema(parameters=[OpenApiParameter("organ", str, description="one organ's heatmap")],
                   responses={(200, "application/gzip"): OpenApiTypes.BINARY})
    def get(self, request, pk: int):
        return super().get(request, pk)

    def storage_name(self, case, request):
        return heatmap_name(case, request.query_params.get("organ"))
