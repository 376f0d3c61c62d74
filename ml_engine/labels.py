"""Label values of the label maps the engine reads: organ name -> voxel value. No heavy imports."""

from __future__ import annotations

ABDOMENATLAS_LABELS: dict[str, int] = {
    "spleen": 1, "kidney_right": 2, "kidney_left": 3, "gallbladder": 4, "liver": 5, "stomach": 6, "aorta": 7,
    "postcava": 8, "pancreas": 9,
}
# TotalSegmentator v2 `total` class values of the abdomenatlas organs.
TOTALSEGMENTATOR_LABELS: dict[str, int] = {
    "spleen": 1, "kidney_right": 2, "kidney_left": 3, "gallbladder": 4, "liver": 5, "stomach": 6, "pancreas": 7,
    "aorta": 52, "postcava": 63,
}
LABEL_MAPS: dict[str, dict[str, int]] = {"totalsegmentator": TOTALSEGMENTATOR_LABELS,
                                         "abdomenatlas": ABDOMENATLAS_LABELS}
