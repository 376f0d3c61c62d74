"""The simulated annotator: what it sees (the label, the displayed slice's CT as the truth of that slice, the
members' outlines) and what it does in the page (scroll, outline, erase, click), counting its actions."""

from __future__ import annotations

import base64

import numpy as np

LIMIT = 120  # actions per case before giving up

# Moore neighbourhood, clockwise on screen (y down), as (dx, dy): W, NW, N, NE, E, SE, S, SW
AROUND = ((-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1), (0, 1), (-1, 1))


def contour(points: np.ndarray) -> list[tuple[int, int]]:
    """The outer boundary of one 8-connected piece (its (x, y) points), in order (Moore neighbour tracing): what an
    annotator's outline follows around it."""
    lo = points.min(axis=0) - 1
    mask = np.zeros(tuple(points.max(axis=0) - lo + 2), dtype=bool)
    mask[tuple((points - lo).T)] = True
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
    """Drives the open workspace: reads the label back, scrolls, outlines, erases, clicks; counts what it does.
    The truth is read only through `seen(z)`, the slice on display."""

    def __init__(self, page, case: dict):
        from tests.browser.conftest import ViewMap

        self.page, self.case = page, case
        self._truth, self.organ, self.box = case["truth"], case["organ"], case["box"]
        region = case.get("region")  # the part of the box to correct (the attention region), else all of it
        self.region = np.ones(tuple(s.stop - s.start for s in self.box), bool) if region is None else region
        self.actions = 0
        self.scrolls = 0
        self.view = ViewMap(page)
        assert (self.view.h, self.view.v) == (0, 1), "the axial view"
        self.tool_state: tuple | None = None
        self.used: list[str] = []  # the correction tools kept (policy b), for the log

    # --- what the annotator sees ---
    def label(self) -> np.ndarray:
        """The page's label inside the box (x, y, z)."""
        b = self.box
        data = self.page.evaluate("""([x0, x1, y0, y1, z0, z1]) => {
            const v = window.atlasViewer, [nx, ny] = v.dims, label = v.label();
            let out = '';
            for (let z = z0; z < z1; z++) for (let y = y0; y < y1; y++) {
                const row = (z * ny + y) * nx;
                out += String.fromCharCode(...label.subarray(row + x0, row + x1));
            }
            return btoa(out);
        }""", [b[0].start, b[0].stop, b[1].start, b[1].stop, b[2].start, b[2].stop])
        shape = tuple(s.stop - s.start for s in b)
        return np.frombuffer(base64.b64decode(data), dtype=np.uint8).reshape(shape[::-1]).transpose(2, 1, 0)

    def seen(self, z: int, reviewing: bool = False) -> np.ndarray:
        """Where the CT shows the organ on slice z, inside the box (in-slice x, y): the slice on display, or one the
        review looks through."""
        assert reviewing or self.view.slice == z, "the annotator sees only the slice on display"
        return self._truth[self.box[0], self.box[1], z] == self.organ

    def inside(self, z: int) -> np.ndarray:
        """The part of slice z (in the box) to correct."""
        return self.region[:, :, z - self.box[2].start]

    def dice(self) -> float:
        """The benchmark's measure (the stopping rule), not the annotator's."""
        a = (self.label() == self.organ) & self.region
        t = (self._truth[self.box] == self.organ) & self.region
        return 1.0 if a.sum() + t.sum() == 0 else 2 * float((a & t).sum()) / float(a.sum() + t.sum())

    def done(self) -> bool:
        return self.dice() >= 0.95

    def review(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Look through the box's slices in order: per slice z where the label differs from what the CT shows, the
        in-slice points (x, y) where the organ is missing and where it is extra. Counted as one scroll a slice (the
        slices are read, not scrolled to one by one, to save the page's time)."""
        now = self.label() == self.organ
        out = {}
        offset = np.array([self.box[0].start, self.box[1].start])
        for k in range(now.shape[2]):
            z = k + self.box[2].start
            seen = self.seen(z, reviewing=True)
            inside = self.inside(z)
            missing = np.argwhere(seen & ~now[:, :, k] & inside) + offset
            extra = np.argwhere(now[:, :, k] & ~seen & inside) + offset
            if len(missing) or len(extra):
                out[z] = (missing, extra)
        self.scrolls += now.shape[2]
        return out

    # --- what it does ---
    def go_to(self, z: int) -> None:
        view = self.view
        probe = view.screen(view.h_boundary, view.v_boundary)
        for _ in range(80):
            now = view.hover(*probe)[2]
            if now == z:
                view.slice = z
                return
            self.page.keyboard.press("ArrowUp" if z > now else "ArrowDown")
            self.scrolls += 1
        raise RuntimeError(f"could not reach slice {z}")

    def act(self, fn) -> None:
        """One action, then wait until the page has accepted its edit (an outline of no area makes none)."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        before = self.page.evaluate(COUNT)
        fn()
        self.actions += 1
        try:
            self.page.wait_for_function(f"n => ({COUNT})() > n", arg=before, timeout=20_000)
        except PlaywrightTimeout:
            pass

    def tool(self, organ: int, tool: str, protect: bool = True) -> None:
        """Organ, tool and protection: settings, not counted (the same in both policies)."""
        if self.tool_state != (organ, tool, protect):
            self.page.click(f"[data-organ][data-value='{organ}']")
            self.page.click(f"[data-tool-button={tool}]")
            (self.page.check if protect else self.page.uncheck)("[data-control=protect]")
            if tool == "fill":  # the outline's line is as wide as the pen: a careful annotator outlines with 1
                self.page.fill("[data-control=brush]", "1")
            self.tool_state = (organ, tool, protect)
        self.page.evaluate("document.activeElement && document.activeElement.blur()")

    def outline(self, z: int, points: np.ndarray) -> None:
        """One filled outline around a piece (its (x, y) points) on slice z, traced along its boundary with a vertex
        on every boundary voxel (every second one when there are more than 60)."""
        self.go_to(z)
        path = contour(points)
        step = 1 if len(path) <= 60 else 2
        corners = path[::step] + [path[0]]
        screens = [self.view.screen(*c) for c in corners]

        def draw():
            self.page.mouse.move(*screens[0])
            self.page.mouse.down()
            for s in screens[1:]:
                self.page.mouse.move(*s)
            self.page.mouse.up()

        self.act(draw)

    def erase(self, z: int, points: np.ndarray) -> None:
        """Eraser strokes across the points on slice z, the brush as tall as they are (30 at most)."""
        self.go_to(z)
        (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
        size = min(30, int(y1 - y0) + 1) | 1
        self.page.fill("[data-control=brush]", str(size))
        for yc in range(int(y0) + size // 2, int(y1) + size // 2 + 1, size):
            s0, s1 = self.view.screen(int(x0), yc), self.view.screen(int(x1), yc)

            def stroke(s0=s0, s1=s1):
                self.page.mouse.move(*s0)
                self.page.mouse.down()
                self.page.mouse.move(*s1, steps=6)
                self.page.mouse.up()

            self.act(stroke)

    def organ_pieces(self, z: int, missing: np.ndarray) -> list[np.ndarray]:
        """The pieces of the organ that the CT shows on slice z and that lack voxels, as (x, y) points."""
        self.go_to(z)
        seen = self.seen(z)
        offset = np.array([self.box[0].start, self.box[1].start])
        lacking = {tuple(p) for p in (missing - offset)}
        return [p + offset for p in pieces(seen & self.inside(z)) if any(tuple(q) in lacking for q in p)]

    def fix_slice(self, z: int, spill: bool) -> None:
        """One slice: eraser strokes across each extra piece, then one outline around each piece of the organ that
        still lacks voxels (the outline puts back what the eraser took of the organ)."""
        self.go_to(z)
        missing, extra = self.on_slice(z)
        if len(extra) >= 3 and not spill:
            self.tool(self.organ, "eraser")
            for piece in pieces_of(extra):
                if len(piece) >= 3 and self.actions < LIMIT:
                    self.erase(z, piece)
            missing, extra = self.on_slice(z)
        if len(missing) >= 3:
            self.tool(self.organ, "fill", protect=not spill)
            for piece in self.organ_pieces(z, missing):
                if self.actions < LIMIT:
                    self.outline(z, piece)

    def on_slice(self, z: int) -> tuple[np.ndarray, np.ndarray]:
        """The displayed slice's points (x, y) where the organ is missing and where it is extra."""
        now = self.label()[:, :, z - self.box[2].start] == self.organ
        seen = self.seen(z)
        inside = self.inside(z)
        offset = np.array([self.box[0].start, self.box[1].start])
        return np.argwhere(seen & ~now & inside) + offset, np.argwhere(now & ~seen & inside) + offset

    def by_hand(self, spill: bool) -> None:
        """Policy (a), slice by slice in order, up to three passes, until Dice >= 0.95."""
        for _ in range(3):
            wrong = self.review()
            if not wrong:
                return
            for z in sorted(wrong):
                if self.done() or self.actions >= LIMIT:
                    return
                self.fix_slice(z, spill)

    def hotspot(self) -> None:
        """Click the hotspot (the views centre on it, the members' outlines appear)."""
        self.act_click("[data-hotspot-index='0']", wait="[data-members]")
        self.view.slice = int(self.page.get_attribute("[data-page=workspace]", "data-crosshair").split(",")[2])
        self.tool_state = None

    def act_click(self, selector: str, wait: str | None = None) -> None:
        self.page.click(selector)
        self.actions += 1
        if wait:
            self.page.wait_for_selector(wait, timeout=120_000)


COUNT = ("() => performance.getEntriesByType('measure')"
         ".filter(e => e.name === 'atlas:tool' || e.name === 'atlas:stroke').length")


def pieces_of(points: np.ndarray) -> list[np.ndarray]:
    """8-connected pieces of a set of in-slice points."""
    lo = points.min(axis=0)
    mask = np.zeros(tuple(points.max(axis=0) - lo + 1), dtype=bool)
    mask[tuple((points - lo).T)] = True
    return [p + lo for p in pieces(mask)]
