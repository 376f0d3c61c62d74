"""Priority (AbdomenAtlas-8K, section 2.2 step 4): cases by total attention size, organs in a case by their own."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class CasePriority:
    """One case of the ranking: total attention size and its organs with attention, largest first."""

    case: str
    total: float
    organs: tuple[tuple[str, float], ...]


def rank_organs(sizes: Mapping[str, float]) -> list[tuple[str, float]]:
    """Organs with a non-zero attention size, largest first; equal sizes keep the mapping's order.

    Organs without attention are left out, as in the published priority list.
    """
    items = [(organ, _size(organ, size)) for organ, size in sizes.items()]
    ranked = sorted(((o, s) for o, s in items if s > 0), key=lambda item: -item[1])
    return ranked


def rank_cases(sizes: Mapping[str, Mapping[str, float]]) -> list[CasePriority]:
    """Cases by total attention size (sum over organs), largest first; ties by case name.

    sizes: {case: {organ: attention size}}, in mL (spacing-aware, the default of the CLI) or in voxels (the
    published method's unit); the unit is the caller's and only has to be the same for every case.
    """
    ranked = []
    for case, organs in sizes.items():
        checked = {organ: _size(f"{case}/{organ}", size) for organ, size in organs.items()}
        ranked.append(CasePriority(case=str(case), total=float(sum(checked.values())),
                                   organs=tuple(rank_organs(checked))))
    ranked.sort(key=lambda p: (-p.total, p.case))
    return ranked


def _size(name: str, size: float) -> float:
    value = float(size)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: attention size must be a finite number >= 0, got {size}")
    return value
