"""Double reads: a case read twice in one round, independently, by two different annotators; a lead adjudicates."""

from django.conf import settings
from django.db import models

from annotation.models.catalog import Case
from annotation.models.rounds import Round
from annotation.models.work import Revision, Task


class DoubleRead(models.Model):
    """The two tasks (read 1 and read 2) of one case in one round. Neither annotator sees the other's work.

    agreement: {organ: {"dice": float, "nsd": float}} between the two reads' latest revisions, once both landed
    (services.double_reads). adjudicated: the lead's final label, a new accepted revision.
    """

    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="double_reads")
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="double_reads")
    first = models.OneToOneField(Task, on_delete=models.CASCADE, related_name="double_read_first")
    second = models.OneToOneField(Task, on_delete=models.CASCADE, related_name="double_read_second")
    agreement = models.JSONField(default=dict, blank=True)
    agreement_key = models.CharField(max_length=100, blank=True, help_text="the two revisions it was measured on")
    adjudicated = models.OneToOneField(Revision, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="adjudicates")
    adjudicator = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="adjudications")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["round", "case"]
        constraints = [models.UniqueConstraint(fields=["case", "round"], name="double_read_unique_case_round")]

    def tasks(self) -> tuple[Task, Task]:
        return self.first, self.second
