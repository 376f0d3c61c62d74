"""Attention maps, hotspots, priorities and simulated ensembles (AbdomenAtlas-8K, sections 2.1 and 2.2).

    settings = AttentionSettings()                      # the published defaults; every threshold a field
    case = case_attention({"liver": [p_a, p_b, p_c], ...}, spacing=(0.8, 0.8, 1.5), settings=settings)
    case.organs["liver"].full_heatmap()                 # (x, y, z) uint8, > 0 exactly on the attention
    case.organs["liver"].compact_heatmap()              # (crop, start): the same cropped to the attention's box
    case.organs["liver"].hotspots                       # connected components, largest first
    rank_cases({"case_1": {"liver": 12.5, ...}, ...})   # cases by total attention size, organs by their own

Modules: settings (AttentionSettings), maps (the whole-array criteria: std, entropy, pseudo-label, opening,
overlap), boxes (bounding boxes and their arithmetic), compute (one organ and a case, inside each organ's support
box), hotspots, priority, simulate (ensembles for tests and benchmarks), reference (the published steps, to compare).

Arrays are (x, y, z) in NIfTI voxel order; probabilities are uint8 (p x 255) or float in [0, 1]; spacing in mm.
"""

from ml_engine.attention.boxes import bounding_box
from ml_engine.attention.compute import (
    CaseAttention,
    OrganAttention,
    case_attention,
    iter_case_attention,
    max_heatmap,
    organ_attention,
)
from ml_engine.attention.hotspots import Hotspot, find_hotspots, label_components
from ml_engine.attention.maps import (
    check_spacing,
    inconsistency,
    mean_probability,
    open_mask,
    overlap_masks,
    pseudo_label,
    stack_probabilities,
    uncertainty,
)
from ml_engine.attention.priority import CasePriority, rank_cases, rank_organs
from ml_engine.attention.settings import AttentionSettings

__all__ = [
    "AttentionSettings",
    "CaseAttention",
    "CasePriority",
    "Hotspot",
    "OrganAttention",
    "bounding_box",
    "case_attention",
    "check_spacing",
    "find_hotspots",
    "inconsistency",
    "iter_case_attention",
    "max_heatmap",
    "label_components",
    "mean_probability",
    "open_mask",
    "organ_attention",
    "overlap_masks",
    "pseudo_label",
    "rank_cases",
    "rank_organs",
    "stack_probabilities",
    "uncertainty",
]
