"""Policy (b): the correction tools first, then policy (a) (Annotator.by_hand) on what is left."""

from __future__ import annotations

import math

import numpy as np

from .annotator import Annotator, slice_dice
from .cases import LIVER


def hotspot_slice(a: Annotator) -> tuple[int, np.ndarray, np.ndarray]:
    """The slice the annotator judges the hotspot's tools on (the hotspot's centre, or the region's middle slice when
    the centroid of a curved region lies outside it): z, the region's part of it and where the CT shows the organ."""
    if not a.box[2].start <= a.view.slice < a.box[2].stop:
        a.go_to((a.box[2].start + a.box[2].stop) // 2)
    z = a.view.slice
    inside = a.inside(z)
    return z, inside, a.seen(z) & inside


def agreement(a: Annotator, z: int, inside: np.ndarray, seen: np.ndarray) -> float:
    """Slice Dice of the label (preview included) against what the CT shows on the displayed slice, in the region."""
    return slice_dice((a.label()[:, :, z - a.box[2].start] == a.organ) & inside, seen)


def members_at_hotspot(a: Annotator) -> None:
    """Policy (b) at a hotspot: unless the page says the members agree there (then none will fix the label), the
    member (or the mean) whose outline follows the CT best on the displayed slice, if better than the label there;
    then the local threshold, kept if a threshold follows the CT better still (the drag is one action, Apply or
    Cancel another)."""
    z, inside, seen = hotspot_slice(a)
    if a.page.locator("[data-members-agree]").count():
        return
    window = (slice(a.box[0].start, a.box[0].stop), slice(a.box[1].start, a.box[1].stop), z)
    members = a.case["members"]
    maps = {**{n: p[window] for n, p in members.items()},
            "mean": np.rint(np.mean(np.stack([p[window] for p in members.values()]).astype(np.float32), axis=0))}
    best, score = max(((n, slice_dice((p > 127) & inside, seen)) for n, p in maps.items()), key=lambda s: s[1])
    if score > agreement(a, z, inside, seen) + 0.02:
        a.act(lambda: a.page.click(f"[data-member-accept={best}]"))
        a.used.append(f"member {best}")
    if a.done():
        return
    current = agreement(a, z, inside, seen)
    # the threshold slider: dragged while watching the preview on this slice (one action), applied or cancelled
    trials = {}
    for t in np.arange(0.2, 0.801, 0.05):
        a.page.fill("[data-control=local-threshold]", f"{t:.2f}")
        a.page.wait_for_timeout(50)
        trials[round(float(t), 2)] = agreement(a, z, inside, seen)
    a.actions += 1  # the drag
    t_best = max(trials, key=lambda t: trials[t])
    if trials[t_best] > current + 0.02:
        a.page.fill("[data-control=local-threshold]", f"{t_best:.2f}")
        a.page.wait_for_timeout(50)
        a.act_click("[data-action=threshold-apply]")
        a.used.append(f"threshold {t_best:.2f}")
    else:
        a.act_click("[data-action=threshold-cancel]")


def snap_at_hotspot(a: Annotator) -> None:
    """Policy (b)'s boundary step: preview "Snap edge to CT" (reach 1; protection off, since the edge between two
    organs is both organs' and their labels are suspect alike) and apply it when it follows the CT better on the
    displayed slice (slice Dice up by more than 0.02); else reach 2 (one action), applied on the same rule; else
    Cancel. Each click and the reach change are one action."""
    z, inside, seen = hotspot_slice(a)
    a.tool(a.organ, "navigate", protect=False)
    before = agreement(a, z, inside, seen)
    for reach in (1, 2):
        if reach == 1:
            a.act(lambda: a.page.click("[data-action=snap-edge]"))
        else:
            a.act(lambda: a.page.select_option("[data-control=snap-reach]", "2"))
            a.page.evaluate("document.activeElement && document.activeElement.blur()")
        if agreement(a, z, inside, seen) > before + 0.02:
            a.act_click("[data-action=snap-apply]")
            a.used.append(f"snap reach {reach}")
            return
    a.act_click("[data-action=snap-cancel]")


def with_tools(a: Annotator, kind: str) -> None:
    """Policy (b), then (a) on what is left."""
    spill = kind == "spill"
    if kind == "hole":
        a.tool(LIVER, "navigate")
        a.act(lambda: a.page.click("[data-action=fill-holes]"))
    elif kind == "island":
        a.tool(LIVER, "navigate")
        wrong = a.review()
        z, (_, extra) = max(wrong.items(), key=lambda w: len(w[1][1]))  # the island's widest slice
        a.go_to(z)
        # its size, as an annotator estimates it: a ball as wide as its widest slice, rounded up to the next mL
        spacing = np.abs(np.diag(a.case["affine"])[:3])
        radius = math.sqrt(len(extra) * spacing[0] * spacing[1] / math.pi)
        ml = math.ceil(4 / 3 * math.pi * radius ** 3 / 1000 + 0.5)
        a.page.fill("[data-control=island-ml]", str(ml))
        a.actions += 1
        a.act(lambda: a.page.click("[data-action=remove-islands]"))
    elif kind in ("missed", "spill"):
        a.tool(a.organ, "fill", protect=not spill)
        slices = {z: m for z, (m, _) in a.review().items() if len(m) >= 3}
        keys = sorted(slices)
        for z in sorted({keys[0], keys[len(keys) // 2], keys[-1]}):
            for piece in a.organ_pieces(z, slices[z]):
                a.outline(z, piece)
        a.page.evaluate("document.activeElement && document.activeElement.blur()")
        a.act(lambda: a.page.keyboard.press("i"))
    else:  # boundary, pseudo: the members at the hotspot (already clicked), then the snap
        members_at_hotspot(a)
        if not a.done():
            snap_at_hotspot(a)
    a.by_hand(spill)
