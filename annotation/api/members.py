"""The ensemble members' probabilities for one organ cropped to a box (a hotspot's), for the workspace's tools."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.parsing import query_numbers
from annotation.api.permissions import HasRole
from annotation.errors import Invalid
from annotation.selectors.members import member_crops
from annotation.selectors.work import visible_cases


def _bytes(help_text: str, **kwargs) -> serializers.CharField:
    return serializers.CharField(help_text=f"base64 of uint8 bytes, x fastest, the box's shape: {help_text}", **kwargs)


class MemberProbability(serializers.Serializer):
    name = serializers.CharField(help_text="the member's architecture")
    probability = _bytes("p x 255")


class MemberCropsSerializer(serializers.Serializer):
    """selectors.members.MemberCrops.as_json."""

    organ = serializers.CharField()
    box = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField(), min_length=3,
                                                            max_length=3), min_length=2, max_length=2,
                                help_text="[[x0, y0, z0], [x1, y1, z1]]: file voxel indices, inclusive")
    shape = serializers.ListField(child=serializers.IntegerField(), min_length=3, max_length=3)
    members = MemberProbability(many=True)
    mean = _bytes("the members' mean probability x 255 (> 127: the pseudo-label's mask)")
    region = _bytes("1 in the hotspot's attention region at seed, dilated by one voxel", allow_null=True)
    agreement = serializers.FloatField(allow_null=True, help_text="smallest pairwise Dice of the members inside the "
                                                                  "region")
    members_agree = serializers.BooleanField()


class CaseMembers(APIView):
    """Each member's probability (uint8, p x 255), their mean, the attention region at `seed` and whether the members
    agree there; arrays are base64 bytes, x fastest, of the box's shape."""

    permission_classes = [HasRole]

    @extend_schema(parameters=[
        OpenApiParameter("organ", str, required=True, description="organ name"),
        OpenApiParameter("box", str, required=True, description="x0,y0,z0,x1,y1,z1: file voxel indices, inclusive"),
        OpenApiParameter("seed", str, description="x,y,z: the hotspot's centroid, for its region"),
    ], responses={200: MemberCropsSerializer})
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
