"""The simulated annotator: what it sees (the label, the members' and the snap's outlines, and on the slice on display
the rater's view of the anatomy) and what it does through a workspace, counting its actions; and policy (a), by hand.

The workspace is the real page (workspace.BrowserWorkspace) in the benchmark; any object with the same methods will do
(the tests drive an in-memory one)."""

from __future__ import annotations

import numpy as np

from .perception import Judge, Rater
from .rules import DAB, LIMIT, STOP

# Moore neighbourhood, clockwise on screen (y down), as (dx, dy): W, NW, N, NE, E, SE, S, SW
AROUND = ((-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1), (0, 1), (-1, 1))


def points_mask(points: np.ndarray, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """In-slice points (x, y) as a mask of their box grown by `pad` on each side, and the box's corner."""
    lo = points.min(axis=0) - pad
    mask = np.zeros(tuple(points.max(axis=0) - lo + 1 + pad), dtype=bool)
    mask[tuple((points - lo).T)] = True
    return mask, lo


def contour(points: np.ndarray) -> list[tuple[int, int]]:
    """The outer boundary of one 8-connected piece (its (x, y) points), in order (Moore neighbour tracing): what an
    annotator's outline follows around it."""
    mask, lo = points_mask(points, 1)
    first = min(((int(x), int(y)) for x, y in points - lo), key=lambda p: (p[1], p[0]))  # top row, leftmost
    path, cur, back = [first], first, 0  # `back`: where the search starts (the background we came from: west)
    second = None
    for _ in range(4 * mask.size):
        for k in range(8):
            d = (back + k) % 8
            nxt = (cur[0] + AROUND[d][0], cur[1] + AROUND[d][1])
            if mask[nxt]:
                break
        else:
            break  # a single voxel
        before = (cur[0] + AROUND[(d - 1) % 8][0], cur[1] + AROUND[(d - 1) % 8][1])  # the last background seen
        back = AROUND.index((before[0] - nxt[0], before[1] - nxt[1]))
        if second is None:
            second = nxt
        elif cur == first and nxt == second:
            break
        cur = nxt
        path.append(cur)
    return [(x + int(lo[0]), y + int(lo[1])) for x, y in path[:-1] or path]


def pieces(mask: np.ndarray) -> list[np.ndarray]:
    """8-connected pieces of a 2D mask, each as its (a, b) points."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    return [np.argwhere(labels == k) for k in range(1, n + 1)]


def slice_dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2 * float((a & b).sum()) / total


class Annotator:
    """Drives a workspace and counts: actions (strokes, clicks, typed values, tool keys), scrolls (slice changes) and
    settings (organ, tool, pen size). It has no truth: only the rater's view of the slice on display (`seen`) and
    the judge's verdict on when to stop (`done`)."""

    def __init__(self, ws, rater: Rater, judge: Judge, case: dict):
        self.ws, self.rater, self.judge = ws, rater, judge
        self.organs: tuple[int, ...] = tuple(case["organs"])
        self.box = case["box"]
        self.region = judge.region  # the part of the box to correct (the attention region, else all of it)
        self.members = case.get("members")
        self.offset = np.array([self.box[0].start, self.box[1].start])
        self.actions = self.scrolls = self.settings = 0
        self.used: list[str] = []  # the correction tools kept (policy b), for the log
        self.notes: list[str] = []  # what happened that the table should say (a pass that changed nothing, ...)
        self._settings: tuple | None = None
        self._down = False  # the direction of the last pass through the box
        self._label: np.ndarray | None = None  # the page's label as last read (every action forgets it)

    # --- what the annotator sees ---
    def label(self) -> np.ndarray:
        """The page's label inside the box (x, y, z): what the page shows (read again after any action)."""
        if self._label is None:
            self._label = self.ws.label(self.box)
        return self._label

    def forget(self) -> None:
        """The page's label may have changed (an action, a preview)."""
        self._label = None

    def seen(self, z: int) -> np.ndarray:
        """The rater's view (labels, in-slice x, y inside the box) of slice z, which must be on display."""
        return self.rater.slice(z, self.ws.slice)

    def inside(self, z: int) -> np.ndarray:
        return self.region[:, :, z - self.box[2].start]

    def dice(self) -> float:
        """The judge's score (not the annotator's)."""
        return self.judge.dice(self.label())

    def done(self) -> bool:
        return self.dice() >= STOP

    def spent(self) -> bool:
        return self.actions >= LIMIT

    # --- what it does ---
    def go_to(self, z: int) -> None:
        for _ in range(200):
            if self.ws.slice == z:
                return
            self.ws.step(z > self.ws.slice)
            self.scrolls += 1
        raise RuntimeError(f"could not reach slice {z}")

    def act(self, fn) -> None:
        """One action, then wait until the page has taken its edit in."""
        before = self.ws.edits()
        self.forget()
        fn()
        self.actions += 1
        self.ws.wait_for_edit(before)
        self.forget()

    def tool(self, organ: int, tool: str, brush: int | None = None) -> None:
        """A setting: counted apart from the actions, when it changes."""
        if self._settings != (organ, tool, brush):
            self.settings += 1
            self._settings = (organ, tool, brush)
        self.ws.settings(organ, tool, brush)

    def outline(self, z: int, points: np.ndarray) -> None:
        """One filled outline (pen size 1) around a piece (its (x, y) points) on slice z, traced along its boundary
        with a vertex on every boundary voxel (every second one when there are more than 60)."""
        self.go_to(z)
        path = contour(points)
        step = 1 if len(path) <= 60 else 2
        corners = path[::step] + [path[0]]
        self.act(lambda: self.ws.drag(corners))

    def erase(self, z: int, organ: int, points: np.ndarray) -> None:
        """Eraser strokes across the points on slice z, the pen as tall as they are (30 at most)."""
        self.go_to(z)
        (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
        size = min(30, int(y1 - y0) + 1) | 1
        self.tool(organ, "eraser", size)
        for yc in range(int(y0) + size // 2, int(y1) + size // 2 + 1, size):
            if not self.spent():
                self.act(lambda yc=yc: self.ws.drag([(int(x0), yc), (int(x1), yc)], steps=6))

    def dab(self, z: int, organ: int, points: np.ndarray, erase: bool) -> None:
        """A dab of the pen or the eraser at size 1 over one to DAB voxels (one press, through each, release)."""
        self.go_to(z)
        self.tool(organ, "eraser" if erase else "brush", 1)
        self.act(lambda: self.ws.drag([(int(x), int(y)) for x, y in points]))

    def trace(self, z: int, organ: int, points: np.ndarray) -> None:
        """One eraser stroke at size 1 along a thin piece (every voxel of it on its boundary): round its contour."""
        self.go_to(z)
        self.tool(organ, "eraser", 1)
        path = contour(points)
        self.act(lambda: self.ws.drag([*path, path[0]]))

    def threshold(self, value: float, release: bool = False) -> None:
        """The local threshold's slider at value (mid-drag: the page previews it on the label), or let go there."""
        self.ws.threshold(value)
        if release:
            self.ws.threshold_release()
        self.forget()

    def click(self, selector: str, wait: str | None = None) -> None:
        self.act(lambda: self.ws.click(selector, wait))

    def key(self, key: str) -> None:
        self.act(lambda: self.ws.key(key))

    # --- policy (a) ---
    def wrong(self, z: int, organ: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """On the slice on display: where the rater sees the organ (in-slice mask), and the points (x, y) where the
        label lacks it and where it has it in excess, inside the region."""
        now = self.label()[:, :, z - self.box[2].start] == organ
        inside = self.inside(z)
        want = (self.seen(z) == organ) & inside
        return want, np.argwhere(want & ~now) + self.offset, np.argwhere(now & ~want & inside) + self.offset

    def fix_slice(self, z: int) -> None:
        """One slice, organ by organ: each extra piece erased (a dab when it is at most DAB voxels, one stroke of the
        eraser at size 1 round it when it is thin, else strokes across it), then one outline around each piece of the
        organ that lacks more than DAB voxels, then dabs on what is left."""
        for organ in self.organs:
            extra = self.wrong(z, organ)[2]
            for piece in pieces_of(extra) if len(extra) else []:
                if self.spent():
                    return
                if len(piece) <= DAB:
                    self.dab(z, organ, piece, erase=True)
                elif thin(piece):
                    self.trace(z, organ, piece)
                else:
                    self.erase(z, organ, piece)
            self.outline_lacking(z, organ, more_than=DAB)
            missing = self.wrong(z, organ)[1]
            for piece in pieces_of(missing) if len(missing) else []:
                if len(piece) <= DAB and not self.spent():
                    self.dab(z, organ, piece, erase=False)

    def outline_lacking(self, z: int, organ: int, more_than: int) -> None:
        """One filled outline around each piece of the organ the rater sees on slice z that the label lacks more than
        `more_than` voxels of."""
        want, missing, _ = self.wrong(z, organ)
        lacking = np.zeros_like(want)
        lacking[tuple((missing - self.offset).T)] = True
        for piece in pieces(want):
            if int(lacking[tuple(piece.T)].sum()) > more_than and not self.spent():
                self.tool(organ, "fill", 1)
                self.outline(z, piece + self.offset)

    def one_pass(self) -> None:
        """Through the box's slices in order (alternately down and up, as a reader scrolls), fixing each slice where
        the label differs from the rater's view, until the stopping rule or the cap."""
        zs = list(range(self.box[2].start, self.box[2].stop))
        self._down = not self._down
        for z in zs if self._down else zs[::-1]:
            if self.done() or self.spent():
                return
            self.go_to(z)
            self.fix_slice(z)

    def by_hand(self) -> None:
        """Policy (a): passes through the box until the stopping rule, the cap, or a pass that changes nothing."""
        while not self.done() and not self.spent():
            before = self.label()
            self.one_pass()
            if np.array_equal(self.label(), before):
                self.notes.append("a pass changed nothing")
                return

    def hotspot(self) -> None:
        """Click the first hotspot (one action; the views centre on it and the members' outlines appear)."""
        self.ws.hotspot(self.organs[0])
        self.forget()
        self.actions += 1
        self._settings = None


def thin(points: np.ndarray) -> bool:
    """A piece at most about two voxels thick: nothing of it is left after one erosion."""
    from scipy import ndimage

    return not ndimage.binary_erosion(points_mask(points, 1)[0]).any()


def pieces_of(points: np.ndarray) -> list[np.ndarray]:
    """8-connected pieces of a set of in-slice points."""
    mask, lo = points_mask(points, 0)
    return [p + lo for p in pieces(mask)]
