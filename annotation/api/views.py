"""Thin read-only views; the annotation workflow's endpoints come with the backend issue."""

from rest_framework import generics

from annotation.api.serializers import CaseSerializer, LabelSetSerializer
from annotation.selectors import cases as case_selectors


class LabelSetList(generics.ListAPIView):
    serializer_class = LabelSetSerializer
    pagination_class = None

    def get_queryset(self):
        return case_selectors.label_sets()


class CaseList(generics.ListAPIView):
    serializer_class = CaseSerializer

    def get_queryset(self):
        return case_selectors.cases()


class CaseDetail(generics.RetrieveAPIView):
    serializer_class = CaseSerializer

    def get_queryset(self):
        return case_selectors.cases()
