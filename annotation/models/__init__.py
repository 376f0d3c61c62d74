"""The domain models, one module per area; import them from here."""

from annotation.models.audit import Audit, AuditCase, AutoAccept
from annotation.models.catalog import Case, Dataset, LabelSet, Organ, SourceLabel
from annotation.models.double_reads import DoubleRead
from annotation.models.interactive import InteractiveModel
from annotation.models.quality import LabelCheck, QualityFlag, ReviewLease
from annotation.models.rounds import CaseMetrics, Job, ModelVersion, OrganAttention, Prediction, Round
from annotation.models.work import ErrorTag, ImageLink, Review, Revision, RevisionTag, Skip, Task

__all__ = [
    "Audit", "AuditCase", "AutoAccept", "Case", "CaseMetrics", "Dataset", "DoubleRead", "ErrorTag", "ImageLink",
    "InteractiveModel", "Job", "LabelCheck", "LabelSet", "ModelVersion", "Organ", "OrganAttention", "Prediction",
    "QualityFlag", "Review", "ReviewLease", "Revision", "RevisionTag", "Round", "Skip", "SourceLabel", "Task",
]
