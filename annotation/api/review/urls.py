"""The review API's routes (included under /api/ by annotation.api.urls)."""

from __future__ import annotations

from django.urls import path

from annotation.api.review.views import (
    DoubleReads,
    QualityFlags,
    ReviewAdjudicate,
    ReviewDiff,
    ReviewEditAccept,
    ReviewNext,
    ReviewParentLabel,
    ReviewQueue,
    ReviewRevision,
    ReviewRevisionLabel,
    TaskFlags,
)

urlpatterns = [
    path("tasks/<int:pk>/flags/", TaskFlags.as_view(), name="task-flags"),
    path("review/queue/", ReviewQueue.as_view(), name="review-queue"),
    path("review/next/", ReviewNext.as_view(), name="review-next"),
    path("review/revisions/<int:pk>/", ReviewRevision.as_view(), name="review-revision"),
    path("review/revisions/<int:pk>/label.nii.gz", ReviewRevisionLabel.as_view(), name="review-label"),
    path("review/revisions/<int:pk>/parent.nii.gz", ReviewParentLabel.as_view(), name="review-parent"),
    path("review/revisions/<int:pk>/diff.nii.gz", ReviewDiff.as_view(), name="review-diff"),
    path("review/revisions/<int:pk>/edit-accept/", ReviewEditAccept.as_view(), name="review-edit-accept"),
    path("review/revisions/<int:pk>/adjudicate/", ReviewAdjudicate.as_view(), name="review-adjudicate"),
    path("review/double-reads/", DoubleReads.as_view(), name="double-reads"),
    path("quality/flags/", QualityFlags.as_view(), name="quality-flags"),
]
