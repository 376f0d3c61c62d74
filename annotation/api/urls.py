from django.urls import include, path

from annotation.api import auth, interactive, label_sets, members, tasks, views

urlpatterns = [
    path("auth/token/", auth.TokenLogin.as_view(), name="token"),
    path("", include("annotation.api.me")),  # session sign-in, me, error tags: the browser workspace
    path("cases/<int:pk>/label-set/", label_sets.CaseLabelSet.as_view(), name="case-label-set"),
    path("label-sets/", label_sets.LabelSetList.as_view(), name="label-set-list"),
    path("cases/", views.CaseList.as_view(), name="case-list"),
    path("cases/<int:pk>/", views.CaseDetail.as_view(), name="case-detail"),
    path("cases/<int:pk>/ct.nii.gz", views.CaseCT.as_view(), name="case-ct"),
    path("cases/<int:pk>/label.nii.gz", views.CaseLabel.as_view(), name="case-label"),
    path("cases/<int:pk>/attention.nii.gz", views.CaseAttention.as_view(), name="case-attention"),
    path("cases/<int:pk>/members/", members.CaseMembers.as_view(), name="case-members"),  # issue 12's tools
    path("cases/<int:pk>/click/", interactive.CaseClick.as_view(), name="case-click"),  # issue 25's click tool
    path("interactive/", interactive.InteractiveEngines.as_view(), name="interactive-engines"),
    path("tasks/next/", tasks.TaskNext.as_view(), name="task-next"),
    path("tasks/assign/", tasks.TaskAssign.as_view(), name="task-assign"),
    path("tasks/<int:pk>/heartbeat/", tasks.TaskHeartbeat.as_view(), name="task-heartbeat"),
    path("tasks/<int:pk>/revisions/", tasks.TaskRevisions.as_view(), name="task-revisions"),
    path("tasks/<int:pk>/confirm/", tasks.TaskConfirm.as_view(), name="task-confirm"),
    path("tasks/<int:pk>/skip/", tasks.TaskSkip.as_view(), name="task-skip"),
    path("queue/", tasks.MyQueue.as_view(), name="my-queue"),
    path("revisions/<int:pk>/review/", tasks.RevisionReview.as_view(), name="revision-review"),
    path("", include("annotation.api.dashboard")),  # the lead dashboard, and starting a round
    path("", include("annotation.api.review.urls")),  # review queue, next to review, quality flags
    path("", include("annotation.api.audit")),  # issue 26: audit samples, auto-accept, the audit panel
    path("", include("annotation.api.readiness")),  # whether the round's members are fit to rank each organ
]
