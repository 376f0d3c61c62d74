from django.urls import path

from annotation.api import views

urlpatterns = [
    path("label-sets/", views.LabelSetList.as_view(), name="label-set-list"),
    path("cases/", views.CaseList.as_view(), name="case-list"),
    path("cases/<int:pk>/", views.CaseDetail.as_view(), name="case-detail"),
]
