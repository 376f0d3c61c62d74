"""The real workspace page, as the simulated annotator drives it (headless Chromium through Playwright): what it reads
back (the label, the slice on display, the members' and the snap's outlines) and what it does (keys, clicks, strokes).
No counting and no policy here: the Annotator counts, the policies decide."""

from __future__ import annotations

import base64

import numpy as np

from .rules import PROTECT

COUNT = ("() => performance.getEntriesByType('measure')"
         ".filter(e => e.name === 'atlas:tool' || e.name === 'atlas:stroke').length")


class SnapNeverDrawn(Exception):
    """The page did not draw the snap's outline for the current label and settings within the wait."""


class BrowserWorkspace:
    def __init__(self, page):
        from tests.browser.conftest import ViewMap

        self.page = page
        self.view = ViewMap(page)
        assert (self.view.h, self.view.v) == (0, 1), "the axial view"
        self._probe = self.view.screen(self.view.h_boundary, self.view.v_boundary)
        self._settings: tuple | None = None

    # --- reading the page ---
    @property
    def slice(self) -> int:
        return self.view.slice

    def label(self, box: tuple[slice, slice, slice]) -> np.ndarray:
        """The page's label inside the box (x, y, z)."""
        data = self.page.evaluate("""([x0, x1, y0, y1, z0, z1]) => {
            const v = window.atlasViewer, [nx, ny] = v.dims, label = v.label();
            let out = '';
            for (let z = z0; z < z1; z++) for (let y = y0; y < y1; y++) {
                const row = (z * ny + y) * nx;
                out += String.fromCharCode(...label.subarray(row + x0, row + x1));
            }
            return btoa(out);
        }""", [box[0].start, box[0].stop, box[1].start, box[1].stop, box[2].start, box[2].stop])
        shape = tuple(s.stop - s.start for s in box)
        return np.frombuffer(base64.b64decode(data), dtype=np.uint8).reshape(shape[::-1]).transpose(2, 1, 0)

    def members_agree(self) -> bool:
        return self.page.locator("[data-members-agree]").count() > 0

    def snap_proposal(self, box: tuple[slice, slice, slice], z: int, organ: int) -> np.ndarray | None:
        """The snap's proposal as the page draws it (the red "snap" outline at the hotspot) on slice z, inside the box
        (in-slice x, y), once the page has answered for the current label and settings (reach 1, no protection, the
        organ): None when it says it has none (`:none:<why>`). SnapNeverDrawn when it does not answer in a minute."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            state = self.page.wait_for_function(
                """organ => { const s = document.querySelector('.snap'),
                    w = document.querySelector('[data-page=workspace]');
                    const want = `${w.dataset.undo}:${w.dataset.redo}:1:0:${organ}`, now = s && s.dataset.snapState;
                    return now && (now === want || now.startsWith(want + ':none:')) && now }""",
                arg=organ, timeout=60_000).json_value()
        except PlaywrightTimeout as exc:
            state = self.page.evaluate("""() => { const s = document.querySelector('.snap'),
                w = document.querySelector('[data-page=workspace]');
                return `snap ${s ? s.dataset.snapState : 'absent'}, undo:redo ${w.dataset.undo}:${w.dataset.redo}` }""")
            raise SnapNeverDrawn(state) from exc
        if ":none:" in state:
            return None
        flat = self.page.evaluate("""([x0, x1, y0, y1, z]) => { const p = window.atlasSnap; if (!p) return null;
            const o = p.outline, out = [];
            for (let x = x0; x < x1; x++) for (let y = y0; y < y1; y++)
                out.push(x >= o.box.x0 && x <= o.box.x1 && y >= o.box.y0 && y <= o.box.y1 && o.inside(x, y, z) ? 1 : 0);
            return out }""", [box[0].start, box[0].stop, box[1].start, box[1].stop, z])
        shape = (box[0].stop - box[0].start, box[1].stop - box[1].start)
        return None if flat is None else np.array(flat, dtype=bool).reshape(shape)

    def edits(self) -> int:
        return self.page.evaluate(COUNT)

    def wait_for_edit(self, before: int) -> None:
        """Until the page has taken the edit in (an outline of no area makes none: then a 20 s wait, no error)."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.wait_for_function(f"n => ({COUNT})() > n", arg=before, timeout=20_000)
        except PlaywrightTimeout:
            pass

    # --- doing ---
    def step(self, up: bool) -> None:
        """One slice change (an arrow key); the slice on display is read back from the page's hover readout."""
        self.page.keyboard.press("ArrowUp" if up else "ArrowDown")
        self.view.slice = self.view.hover(*self._probe)[2]

    def settings(self, organ: int, tool: str, brush: int | None = None) -> None:
        """Organ, tool, pen size and "protect other organs" (always PROTECT, in both policies)."""
        if self._settings != (organ, tool, brush):
            self.page.click(f"[data-organ][data-value='{organ}']")
            self.page.click(f"[data-tool-button={tool}]")
            if tool == "click":  # the tool asks the server which engine it has: wait for the answer
                self.page.wait_for_selector("[data-click-engine^='atlas-click:']", timeout=60_000)
            (self.page.check if PROTECT else self.page.uncheck)("[data-control=protect]")
            if brush is not None:
                self.page.fill("[data-control=brush]", str(brush))
            self._settings = (organ, tool, brush)
        self.blur()

    def drag(self, points: list[tuple[float, float]], steps: int = 1) -> None:
        """Press at the first in-plane voxel (x, y), move through the others, release."""
        screens = [self.view.screen(*p) for p in points]
        self.page.mouse.move(*screens[0])
        self.page.mouse.down()
        for s in screens[1:]:
            self.page.mouse.move(*s, steps=steps)
        self.page.mouse.up()

    def click_at(self, x: int, y: int, positive: bool) -> None:
        """With the Click tool: a click on in-plane voxel (x, y) of the displayed slice (shift: a negative point);
        returns once the page has applied the engine's answer (RuntimeError with the page's message when it could
        not)."""
        sx, sy = self.view.screen(x, y)
        self.page.mouse.move(sx, sy)
        if not positive:
            self.page.keyboard.down("Shift")
        self.page.mouse.down()
        self.page.mouse.up()
        if not positive:
            self.page.keyboard.up("Shift")
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.wait_for_selector("[data-click-queued='0']:is([data-click=done], [data-click=error])",
                                        timeout=120_000)
        except PlaywrightTimeout:
            state = self.page.get_attribute(".click-tool", "data-click")
            raise RuntimeError(f"no answer to the click (state {state}): "
                               f"{self.page.inner_text('.click-tool')[:200]!r}") from None
        if self.page.get_attribute(".click-tool", "data-click") == "error":
            raise RuntimeError(f"the click failed: {self.page.inner_text('[data-click-error]')[:300]!r}")

    def click(self, selector: str, wait: str | None = None) -> None:
        self.page.click(selector)
        if wait:
            self.page.wait_for_selector(wait, timeout=120_000)

    def key(self, key: str) -> None:
        self.blur()
        self.page.keyboard.press(key)

    def blur(self) -> None:
        self.page.evaluate("document.activeElement && document.activeElement.blur()")

    def hotspot(self, organ: int) -> None:
        """Click the first hotspot (the views centre on it, the members' outlines appear); it must be the organ's (the
        case's target is the hotspot the page lists first)."""
        first = self.page.get_attribute("[data-hotspot-index='0']", "data-hotspot-organ")
        if first is not None and int(first) != organ:
            raise RuntimeError(f"the page's first hotspot is organ {first}'s, the case's target is organ {organ}'s")
        self.click("[data-hotspot-index='0']", wait="[data-members]")
        self.view.slice = int(self.page.get_attribute("[data-page=workspace]", "data-crosshair").split(",")[2])
        self._settings = None

    def threshold(self, value: float) -> None:
        """The local threshold's slider moved to value mid-drag: an input event (a pointer's move), no change yet."""
        self.page.locator("[data-control=local-threshold]").evaluate(
            "(el, v) => { Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(el, v);"
            " el.dispatchEvent(new Event('input', { bubbles: true })) }", f"{value:.2f}")
        self.page.wait_for_timeout(50)

    def threshold_release(self) -> None:
        """Letting go of the slider: the change event keeps what the drag shows."""
        self.page.locator("[data-control=local-threshold]").dispatch_event("change")
        self.page.wait_for_timeout(50)
