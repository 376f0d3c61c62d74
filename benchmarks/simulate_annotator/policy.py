"""Policy (b): the correction tools first, each kept or taken back by what the annotator sees, then policy (a)
(Annotator.by_hand) on what is left."""

from __future__ import annotations

import numpy as np

from .annotator import Annotator, slice_dice
from .rules import KEEP_MARGIN

KEYED_SHARE = 0.25  # a slice "lacks the organ" when the label lacks more than this share of what the rater sees there
KEYED_RUN = 3  # key slices and interpolation need a run of at least this many such slices


def display_slice(a: Annotator) -> tuple[int, np.ndarray]:
    """The slice the annotator judges a hotspot's tools on (the hotspot's centre, or the region's middle slice when
    the centroid of a curved region lies outside it): z and the region's part of it."""
    if not a.box[2].start <= a.ws.slice < a.box[2].stop:
        a.go_to((a.box[2].start + a.box[2].stop) // 2)
    z = a.ws.slice
    return z, a.inside(z)


def follows(a: Annotator, z: int, mask: np.ndarray, inside: np.ndarray) -> float:
    """How well an in-slice mask follows the rater's view of the organ on the displayed slice (slice Dice)."""
    return slice_dice(mask & inside, (a.seen(z) == a.organs[0]) & inside)


def label_follows(a: Annotator, z: int, inside: np.ndarray) -> float:
    return follows(a, z, a.label()[:, :, z - a.box[2].start] == a.organs[0], inside)


def take(a: Annotator, what: str, z: int, inside: np.ndarray, apply) -> None:
    """Apply a proposal (one action); when what the page then shows follows the rater's view worse than the label
    did before, take it back (Ctrl+Z: one more action)."""
    before = label_follows(a, z, inside)
    a.act(apply)
    after = label_follows(a, z, inside)
    if after < before:
        a.key("Control+z")
        a.notes.append(f"{what} taken back")
    else:
        a.used.append(what)


def members_at_hotspot(a: Annotator) -> None:
    """At a hotspot: unless the page says the members agree there (then none will fix the label), the member (or the
    mean) whose outline follows the rater's view best on the displayed slice, if better than the label there; then
    the local threshold, dragged watching the preview on that slice (the drag is one action, letting go keeps it;
    when no threshold beats the label, Ctrl+Z after it is one more)."""
    z, inside = display_slice(a)
    if a.ws.members_agree():
        return
    window = (slice(a.box[0].start, a.box[0].stop), slice(a.box[1].start, a.box[1].stop), z)
    members = a.members
    maps = {**{n: p[window] for n, p in members.items()},
            "mean": np.rint(np.mean(np.stack([p[window] for p in members.values()]).astype(np.float32), axis=0))}
    best, score = max(((n, follows(a, z, p > 127, inside)) for n, p in maps.items()), key=lambda s: s[1])
    if score > label_follows(a, z, inside) + KEEP_MARGIN:
        take(a, f"member {best}", z, inside, lambda: a.ws.click(f"[data-member-accept={best}]"))
    if a.done():
        return
    current = label_follows(a, z, inside)
    trials = {}
    for t in np.arange(0.2, 0.801, 0.05):
        a.threshold(float(t))
        trials[round(float(t), 2)] = label_follows(a, z, inside)
    a.actions += 1  # the drag
    t_best = max(trials, key=lambda t: trials[t])
    keep = trials[t_best] > current + KEEP_MARGIN
    a.threshold(t_best if keep else 0.8, release=True)
    if keep:
        a.used.append(f"threshold {t_best:.2f}")
    else:
        a.key("Control+z")


def snap_at_hotspot(a: Annotator) -> None:
    """At a hotspot: the page draws the snap's proposal (reach 1) as one more outline, at no cost to look at; the
    annotator clicks "Apply snap" (one action) when it follows the rater's view better than the label on the displayed
    slice. A page that never draws it is noted, and the annotator goes on by hand."""
    from .workspace import SnapNeverDrawn

    z, inside = display_slice(a)
    a.tool(a.organs[0], "navigate")
    try:
        proposal = a.ws.snap_proposal(a.box, z, a.organs[0])
    except SnapNeverDrawn as exc:
        a.notes.append(f"snap never drawn ({exc})")
        return
    if proposal is not None:
        score = follows(a, z, proposal, inside)
        if score > label_follows(a, z, inside) + KEEP_MARGIN:
            take(a, "snap", z, inside, lambda: a.ws.click("[data-action=snap-use]"))


def lacking_run(a: Annotator, organ: int) -> list[int]:
    """A review through the box (scrolled, counted): the longest run of consecutive slices where the label lacks more
    than KEYED_SHARE of the organ the rater sees there (and more than a dab's worth)."""
    zs = list(range(a.box[2].start, a.box[2].stop))
    flags = []
    for z in zs:
        a.go_to(z)
        want, missing, _ = a.wrong(z, organ)
        flags.append(len(missing) > max(3, KEYED_SHARE * int(want.sum())))
    best: list[int] = []
    run: list[int] = []
    for z, flag in zip(zs, flags, strict=True):
        run = [*run, z] if flag else []
        if len(run) > len(best):
            best = run
    return best if len(best) >= KEYED_RUN else []


def keyed(a: Annotator, organ: int) -> None:
    """Where a run of slices lacks the organ: outlines on its first, middle and last slices, then `i` (interpolation
    between them)."""
    run = lacking_run(a, organ)
    if not run:
        return
    for z in sorted({run[0], run[len(run) // 2], run[-1]}):
        a.go_to(z)
        a.outline_lacking(z, organ, more_than=0)
    a.tool(organ, "fill", 1)
    a.key("i")
    a.used.append("interpolation")


def with_tools(a: Annotator, kind: str) -> None:
    """Policy (b), then (a) on what is left."""
    if kind == "hole":
        a.tool(a.organs[0], "navigate")
        a.click("[data-action=fill-holes]")
        a.used.append("fill holes")
    elif kind == "island":  # the organ is one piece: keep its largest
        a.tool(a.organs[0], "navigate")
        a.click("[data-action=keep-largest]")
        a.used.append("keep largest")
    elif a.members is not None:  # a hotspot: the members and the threshold, then the snap
        members_at_hotspot(a)
        if not a.done():
            snap_at_hotspot(a)
    else:  # a part missing over a run of slices: key slices and interpolation, organ by organ
        for organ in a.organs:
            if not a.done():
                keyed(a, organ)
    a.by_hand()
