"""The ensemble members' probabilities for one organ cropped to a box (a hotspot's), for the workspace's tools."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.parsing import query_numbers
from annotation.api.permissions import HasRole
from annotation.errors import Invalid
from annotation.selectors.members import member_crops
from annotation.selectors.work import visible_cases


class CaseMembers(APIView):
    """Each member's probability (uint8, p x 255), their mean, the attention region at `seed` and whether the members
    agree there; arrays are base64 bytes, x fastest, of the box's shape."""

    permission_classes = [HasRole]

    @extend_schema(parameters=[
        OpenApiParameter("organ", str, required=True, description="organ name"),
        OpenApiParameter("box", str, required=True, description="x0,y0,z0,x1,y1,z1: file voxel indices, inclusive"),
        OpenApiParameter("seed", str, description="x,y,z: the hotspot's centroid, for its region"),
    ], responses={200: dict})
    def get(self, request, pk: int):
        case = get_object_or_404(visible_cases(request.user), pk=pk)
        organ = request.query_params.get("organ", "")
        if not organ:
            raise Invalid("name the organ", field="organ")
        seed = None
        if "seed" in request.query_params:
            seed = query_numbers(request.query_params["seed"], count=3, field="seed")
        crops = member_crops(case, organ=organ, box=request.query_params.get("box", ""), seed=seed)
        return Response(crops.as_json())
