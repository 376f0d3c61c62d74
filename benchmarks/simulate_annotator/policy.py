"""Policy (b): the correction tools first, then policy (a) (Annotator.by_hand) on what is left."""

from __future__ import annotations

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
    then the local threshold, kept if a threshold follows the CT better still (the drag is one action and letting go
    keeps it; when no threshold is better, Ctrl+Z after it is one more)."""
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
    # the threshold slider, dragged while watching the preview on this slice (input events, one action); letting go
    # at the best threshold keeps it (the change event); when none beat the label, let go and Ctrl+Z (one more)
    trials = {}
    for t in np.arange(0.2, 0.801, 0.05):
        drag_to(a, f"{t:.2f}")
        trials[round(float(t), 2)] = agreement(a, z, inside, seen)
    a.actions += 1  # the drag
    t_best = max(trials, key=lambda t: trials[t])
    keep = trials[t_best] > current + 0.02
    drag_to(a, f"{t_best:.2f}" if keep else f"{0.8:.2f}")
    a.page.locator("[data-control=local-threshold]").dispatch_event("change")  # let go
    a.page.wait_for_timeout(50)
    if keep:
        a.used.append(f"threshold {t_best:.2f}")
    else:
        a.page.evaluate("document.activeElement && document.activeElement.blur()")
        a.act(lambda: a.page.keyboard.press("Control+z"))


def drag_to(a: Annotator, value: str) -> None:
    """The slider moved to value mid-drag: an input event (what a pointer's move sends), no change event yet."""
    a.page.locator("[data-control=local-threshold]").evaluate(
        "(el, v) => { Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(el, v);"
        " el.dispatchEvent(new Event('input', { bubbles: true })) }", value)
    a.page.wait_for_timeout(50)


def snap_outline(a: Annotator, z: int) -> np.ndarray | None:
    """The snap's proposal as the page draws it (the red "snap" outline at the hotspot) on slice z, inside the box
    (in-slice x, y), once the page has computed it for the current label and settings; None when it draws none."""
    organ = a.case["organ"]
    a.page.wait_for_function(
        """organ => { const s = document.querySelector('.snap'), w = document.querySelector('[data-page=workspace]');
            return s && s.dataset.snapState === `${w.dataset.undo}:${w.dataset.redo}:1:0:${organ}` }""",
        arg=organ, timeout=60_000)
    b = a.box
    flat = a.page.evaluate("""([x0, x1, y0, y1, z]) => { const p = window.atlasSnap; if (!p) return null;
        const o = p.outline, out = [];
        for (let x = x0; x < x1; x++) for (let y = y0; y < y1; y++)
            out.push(x >= o.box.x0 && x <= o.box.x1 && y >= o.box.y0 && y <= o.box.y1 && o.inside(x, y, z) ? 1 : 0);
        return out }""", [b[0].start, b[0].stop, b[1].start, b[1].stop, z])
    return None if flat is None else np.array(flat, dtype=bool).reshape(b[0].stop - b[0].start, b[1].stop - b[1].start)


def snap_at_hotspot(a: Annotator) -> None:
    """Policy (b)'s boundary step: with "protect other organs" off (the edge between two organs is both organs' and
    their labels are suspect alike), the page draws the snap's proposal (reach 1) as one more outline at the hotspot,
    at no cost to look at; the annotator compares it with the CT on the displayed slice and clicks "Apply snap" (one
    action) when it follows the CT better than the label there (slice Dice up by more than 0.02)."""
    z, inside, seen = hotspot_slice(a)
    a.tool(a.organ, "navigate", protect=False)
    proposal = snap_outline(a, z)
    if proposal is not None and slice_dice(proposal & inside, seen) > agreement(a, z, inside, seen) + 0.02:
        a.act(lambda: a.page.click("[data-action=snap-use]"))
        a.used.append("snap")


def with_tools(a: Annotator, kind: str) -> None:
    """Policy (b), then (a) on what is left."""
    spill = kind == "spill"
    if kind == "hole":
        a.tool(LIVER, "navigate")
        a.act(lambda: a.page.click("[data-action=fill-holes]"))
    elif kind == "island":  # the liver is one piece: keep its largest
        a.tool(LIVER, "navigate")
        a.act(lambda: a.page.click("[data-action=keep-largest]"))
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
