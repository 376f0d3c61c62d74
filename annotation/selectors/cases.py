"""Read paths for cases and label sets."""

from django.db.models import QuerySet

from annotation.models import Case, LabelSet


def label_sets() -> QuerySet[LabelSet]:
    return LabelSet.objects.prefetch_related("organs")


def cases() -> QuerySet[Case]:
    return Case.objects.select_related("dataset").prefetch_related("source_labels__organs")
