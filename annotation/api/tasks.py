"""The annotator's operations on tasks, the lead's review and assignment. Thin: services do the work."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api import intake
from annotation.api.intake import upload_door
from annotation.api.permissions import HasRole, IsLead
from annotation.api.serializers import (
    AssignSerializer,
    ConfirmSerializer,
    QueueTaskSerializer,
    ReviewSerializer,
    RevisionSerializer,
    RevisionUploadSerializer,
    SkipSerializer,
    TaskSerializer,
)
from annotation.errors import Invalid
from annotation.models import Revision, Task
from annotation.roles import ANNOTATOR, role_of
from annotation.selectors.work import my_queue
from annotation.services import queue, reviews, revisions


class TaskNext(APIView):
    """Lease the next task (the one you hold, else the highest priority assigned to you, else unassigned)."""

    permission_classes = [HasRole]

    @extend_schema(request=None, responses={200: TaskSerializer, 204: None})
    def post(self, request):
        task = queue.lease_next(user=request.user)
        if task is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(TaskSerializer(task).data)


class TaskHeartbeat(APIView):
    permission_classes = [HasRole]

    @extend_schema(request=None, responses=QueueTaskSerializer)
    def post(self, request, pk: int):
        task = queue.heartbeat(task_id=pk, user=request.user)
        return Response(QueueTaskSerializer(task).data)


@upload_door("file")
class TaskRevisions(APIView):
    """Upload the corrected label map (multipart: file, base_revision, tags, seconds_spent)."""

    permission_classes = [HasRole]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request={"multipart/form-data": RevisionUploadSerializer},
                   responses={201: RevisionSerializer, 400: None, 409: None, 413: None})
    def post(self, request, pk: int):
        with intake.receive(request, field="file", suffixes=revisions.UPLOAD_SUFFIXES,
                            authorize=lambda: revisions.check_may_send(task_id=pk, user=request.user)) as path:
            body = RevisionUploadSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            revision = revisions.submit_revision(
                task_id=pk, user=request.user, upload=path, base_revision=body.validated_data.get("base_revision"),
                tags=body.validated_data.get("tags") or {}, seconds_spent=body.validated_data.get("seconds_spent", 0.0))
        return Response(RevisionSerializer(revision).data, status=status.HTTP_201_CREATED)


class TaskConfirm(APIView):
    """Record that the case needs no change: a revision equal to its parent."""

    permission_classes = [HasRole]

    @extend_schema(request=ConfirmSerializer, responses={201: RevisionSerializer, 409: None})
    def post(self, request, pk: int):
        get_object_or_404(Task, pk=pk)
        body = ConfirmSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        revision = revisions.confirm(task_id=pk, user=request.user,
                                     base_revision=body.validated_data.get("base_revision"),
                                     seconds_spent=body.validated_data["seconds_spent"])
        return Response(RevisionSerializer(revision).data, status=status.HTTP_201_CREATED)


class TaskSkip(APIView):
    permission_classes = [HasRole]

    @extend_schema(request=SkipSerializer, responses=QueueTaskSerializer)
    def post(self, request, pk: int):
        get_object_or_404(Task, pk=pk)
        body = SkipSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        task = queue.skip(task_id=pk, user=request.user, reason=body.validated_data["reason"])
        return Response(QueueTaskSerializer(task).data)


class MyQueue(APIView):
    permission_classes = [HasRole]

    @extend_schema(responses=QueueTaskSerializer(many=True))
    def get(self, request):
        return Response(QueueTaskSerializer(my_queue(request.user), many=True).data)


class RevisionReview(APIView):
    """A lead accepts or rejects a revision (409 while another lead reviews it); a rejection sends the task back
    with the comment, to its annotator or to `reassign_to`."""

    permission_classes = [IsLead]

    @extend_schema(request=ReviewSerializer, responses=RevisionSerializer)
    def post(self, request, pk: int):
        get_object_or_404(Revision, pk=pk)
        body = ReviewSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        reviews.decide(revision_id=pk, reviewer=request.user, **body.validated_data)
        return Response(RevisionSerializer(Revision.objects.get(pk=pk)).data)


class TaskAssign(APIView):
    """A lead assigns tasks (by id, or a slice of the ranked list) to an annotator."""

    permission_classes = [IsLead]

    @extend_schema(request=AssignSerializer,
                   responses=inline_serializer("Assigned", {"assigned": serializers.IntegerField()}))
    def post(self, request):
        body = AssignSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        annotator = None
        if data["annotator"] is not None:
            annotator = User.objects.filter(username=data["annotator"]).first()
            if annotator is None or role_of(annotator) != ANNOTATOR:
                raise Invalid(f"{data['annotator']!r} is not an annotator", field="annotator")
        n = queue.assign(annotator=annotator, task_ids=data.get("task_ids"), rank_from=data.get("rank_from"),
                         rank_to=data.get("rank_to"))
        return Response({"assigned": n})
