"""Policy (c): clicks first (the workspace's Click tool, Atlas's click model), then policy (a) (Annotator.by_hand) on
what is left.

Passes through the box's slices (alternately down and up, as (a) scrolls) until the stopping rule, the cap or a pass
that changes nothing. On each slice, organ by organ, up to CLICKS_PER_SLICE times: the largest piece where the rater's
view and the label disagree inside the region (the label lacking the organ: a positive click; having it in excess: a
negative one) among those that hold at least CLICK_MIN voxels and are thicker than a sliver (the deepest point at
least CLICK_DEPTH voxels from the piece's border: a click answers with a piece of the organ, not a line along its
edge) gets one click at its centre (that deepest point). A click that leaves the slice following the rater's view
worse than before is taken back (Ctrl+Z: one more action) and the organ's clicks on that slice end; so do they
after a click that left the slice following the view no better (it changed nothing there). Each click is one
action; choosing the Click tool and the organ is a setting, counted apart as (a)'s are.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .annotator import Annotator, pieces, slice_dice
from .rules import CLICK_DEPTH, CLICK_MIN, CLICKS_PER_SLICE


def centre(points: np.ndarray) -> tuple[int, int, float]:
    """The deepest point of an in-slice piece (its (x, y) points), the farthest from its border, and its distance to
    the border (voxels)."""
    lo = points.min(axis=0)
    mask = np.zeros(tuple(points.max(axis=0) - lo + 3), bool)
    mask[tuple((points - lo + 1).T)] = True
    depth = ndimage.distance_transform_edt(mask)
    x, y = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return int(x + lo[0] - 1), int(y + lo[1] - 1), float(depth[x, y])


def largest_disagreement(a: Annotator, z: int, organ: int) -> tuple[int, int, bool] | None:
    """Where to click on the displayed slice: the centre (box-relative x, y) of the largest piece where the label and
    the rater's view of the organ disagree inside the region that holds at least CLICK_MIN voxels and is no sliver
    (depth CLICK_DEPTH), and whether the label lacks it (a positive click) or has it in excess; None when none is."""
    now = a.label()[:, :, z - a.box[2].start] == organ
    inside = a.inside(z)
    want = (a.seen(z) == organ) & inside
    best = None
    for mask, positive in ((want & ~now, True), (now & ~want & inside, False)):
        for piece in pieces(mask):
            if len(piece) < CLICK_MIN or (best is not None and len(piece) <= best[0]):
                continue
            x, y, depth = centre(piece)
            if depth >= CLICK_DEPTH:
                best = (len(piece), x, y, positive)
    return None if best is None else best[1:]


def follows(a: Annotator, z: int, organ: int) -> float:
    inside = a.inside(z)
    return slice_dice((a.label()[:, :, z - a.box[2].start] == organ) & inside, (a.seen(z) == organ) & inside)


def click_slice(a: Annotator, z: int) -> None:
    for organ in a.organs:
        for _ in range(CLICKS_PER_SLICE):
            if a.done() or a.spent():
                return
            found = largest_disagreement(a, z, organ)
            if found is None:
                break
            x, y, positive = found
            before = follows(a, z, organ)
            a.tool(organ, "click")
            a.act(lambda x=x, y=y, positive=positive: a.ws.click_at(
                int(x + a.offset[0]), int(y + a.offset[1]), positive))
            after = follows(a, z, organ)
            if after < before:
                a.key("Control+z")
                a.notes.append("a click taken back")
                break
            a.used.append("click+" if positive else "click-")
            if after == before:  # the click did nothing here: another one at the same place would not either
                break


def with_clicks(a: Annotator) -> None:
    """Policy (c): click passes until the stopping rule, the cap or a pass that changes nothing; then (a)."""
    down = False
    while not a.done() and not a.spent():
        before = a.label()
        zs = list(range(a.box[2].start, a.box[2].stop))
        down = not down
        for z in zs if down else zs[::-1]:
            if a.done() or a.spent():
                break
            a.go_to(z)
            click_slice(a, z)
        if np.array_equal(a.label(), before):
            break
    a.by_hand()
