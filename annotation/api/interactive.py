"""The workspace's click tool: which interactive engines there are, and one click (points, scribbles, a box) turned
into the active organ's new mask in a crop (services.interactive)."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.dashboard_serializers import ClickModel
from annotation.api.permissions import HasRole
from annotation.errors import Invalid
from annotation.selectors.interactive import engine_rows
from annotation.selectors.work import visible_cases
from annotation.services.interactive import CROP_MM, MAX_CROP_VOXELS, MAX_POINTS, ClickRequest, click


def _point() -> serializers.ListField:
    return serializers.ListField(child=serializers.IntegerField(), min_length=3, max_length=3)


class Scribble(serializers.Serializer):
    points = serializers.ListField(child=_point(), min_length=1, max_length=MAX_POINTS)
    positive = serializers.BooleanField(default=True)


class ClickInput(serializers.Serializer):
    organ = serializers.CharField(max_length=64)
    box = serializers.ListField(child=_point(), min_length=2, max_length=2,
                                help_text="[[x0, y0, z0], [x1, y1, z1]]: the crop, file voxel indices, inclusive")
    label = serializers.CharField(help_text="the organ's current label in the box as the page holds it: base64 of "
                                            "packed bits (little bit order), x fastest")
    positive = serializers.ListField(child=_point(), default=list, max_length=MAX_POINTS,
                                     help_text="file voxel indices of positive clicks")
    negative = serializers.ListField(child=_point(), default=list, max_length=MAX_POINTS)
    scribbles = Scribble(many=True, required=False)
    box2d = serializers.ListField(child=_point(), min_length=2, max_length=2, required=False, allow_null=True,
                                  help_text="[[x0, y0, z], [x1, y1, z]] on one slice: the organ lies inside it there")
    engine = serializers.CharField(required=False, allow_blank=True, default="",
                                   help_text="an engine's kind from GET interactive/ (default: the first)")


class Seconds(serializers.Serializer):
    wait = serializers.FloatField(help_text="waiting for a free engine slot")
    engine = serializers.FloatField(help_text="the engine's own time (resampling and the network)")
    total = serializers.FloatField(help_text="the server's whole time for the request")


class EngineRef(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.CharField()
    licence = serializers.CharField()


class ClickOutput(serializers.Serializer):
    organ = serializers.CharField()
    box = serializers.ListField(child=_point())
    shape = serializers.ListField(child=serializers.IntegerField())
    mask = serializers.CharField(help_text="the organ's new mask in the box: base64 of packed bits, little bit "
                                           "order, x fastest")
    changed = serializers.IntegerField(help_text="voxels that differ from the label sent")
    engine = EngineRef()
    seconds = Seconds()


class Engines(serializers.Serializer):
    engines = ClickModel(many=True)
    crop_mm = serializers.FloatField(help_text="the side (mm) of the crop to send around a click")
    max_voxels = serializers.IntegerField(help_text="the largest crop one request may send")
    max_points = serializers.IntegerField(help_text="the most points (clicks and scribbles' points) one request may "
                                                    "send; the page thins long scribbles to fit")


class InteractiveEngines(APIView):
    """The interactive engines the workspace offers (the default first), with version, licence and validation."""

    permission_classes = [HasRole]

    @extend_schema(responses={200: Engines})
    def get(self, request):
        return Response({"engines": engine_rows(), "crop_mm": CROP_MM, "max_voxels": MAX_CROP_VOXELS,
                         "max_points": MAX_POINTS})


class CaseClick(APIView):
    """One interaction: the organ's new mask in the box after the given clicks, scribbles and box. Nothing is
    stored; 503 when the engine stayed busy for the whole wait."""

    permission_classes = [HasRole]

    @extend_schema(request=ClickInput, responses={200: ClickOutput})
    def post(self, request, pk: int):
        case = get_object_or_404(visible_cases(request.user), pk=pk)
        data = ClickInput(data=request.data)
        if not data.is_valid():
            field, errors = next(iter(data.errors.items()))
            raise Invalid(str(errors[0] if isinstance(errors, list) else errors), field=field)
        v = data.validated_data
        return Response(click(case, ClickRequest(
            organ=v["organ"], box=(v["box"][0], v["box"][1]), label=v["label"], positive=v["positive"],
            negative=v["negative"], scribbles=[dict(s) for s in v.get("scribbles") or []],
            box2d=v.get("box2d"), engine=v.get("engine") or "")))
