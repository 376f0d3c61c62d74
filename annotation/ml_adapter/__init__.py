"""The one place that turns rows into ml_engine calls and back: training cases from labels and revisions,
checkpoints to and from storage, and a case's ensemble inference + attention as files and sizes.

common: a case's CT and stored labels, checkpoints; training: training cases, training and validating an architecture;
inference: a case's ensemble and the files it writes; members: registered and external members. Callers import from
here or from the module.
"""

from annotation.ml_adapter.common import (
    SHIPPED_CHECKPOINTS,
    covered_organs,
    load_case_volume,
    load_model,
    read_label,
    shipped_checkpoint,
)
from annotation.ml_adapter.inference import (
    _PREDICTORS,
    InferenceFiles,
    OrganAttentionInput,
    case_members,
    infer_case,
    predictor_for,
    stored_members,
    write_ensemble,
    write_votes,
)
from annotation.ml_adapter.members import check_member, external_label_name, external_soft, registered_votes
from annotation.ml_adapter.training import (
    PREPROCESSED_CACHE,
    adopt_shipped,
    train_architecture,
    training_cases,
    validate,
)

__all__ = [
    "PREPROCESSED_CACHE", "SHIPPED_CHECKPOINTS", "_PREDICTORS", "InferenceFiles", "OrganAttentionInput",
    "adopt_shipped", "case_members", "check_member", "covered_organs", "external_label_name", "external_soft",
    "infer_case", "load_case_volume", "load_model", "predictor_for", "read_label", "registered_votes",
    "shipped_checkpoint", "stored_members", "train_architecture", "training_cases", "validate", "write_ensemble",
    "write_votes",
]
