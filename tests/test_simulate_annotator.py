"""The effort benchmark's own rules (benchmarks/simulate_annotator), on a tiny case without a browser: the policies
drive an in-memory workspace with the page's editing rules (the active organ only, "protect other organs" from the
benchmark's one setting, undo), so what the annotator may read and when it stops can be pinned exactly."""

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from simulate_annotator import rules  # noqa: E402
from simulate_annotator.annotator import Annotator  # noqa: E402
from simulate_annotator.perception import Judge, Rater, rater_view  # noqa: E402
from simulate_annotator.policy import with_tools  # noqa: E402
from simulate_annotator.stats import bootstrap, finished, paired, ratio, summary  # noqa: E402

LIVER, SPLEEN = 5, 1


class ArrayWorkspace:
    """The page's editing rules on an array: the pen, the filled outline and the eraser on the displayed slice, the
    3D clean-ups, Ctrl+Z. `frozen`: voxels no edit may change (an edit there is refused, as the page refuses one)."""

    def __init__(self, label: np.ndarray, frozen: np.ndarray | None = None):
        self.data = label.copy()
        self.frozen = np.zeros(label.shape, bool) if frozen is None else frozen
        self.slice = label.shape[2] // 2
        self.log: list[tuple] = []  # every step, setting and edit, in order
        self.protect_used: set[bool] = set()
        self._undo: list[np.ndarray] = []
        self._n = 0
        self._organ, self._tool, self._brush = LIVER, "navigate", 1

    def label(self, box):
        return self.data[box].copy()

    def members_agree(self):
        return True

    def snap_proposal(self, box, z, organ):
        return None

    def edits(self):
        return self._n

    def wait_for_edit(self, before):
        pass

    def step(self, up):
        self.slice += 1 if up else -1
        self.log.append(("step", self.slice))

    def settings(self, organ, tool, brush=None):
        self._organ, self._tool = organ, tool
        if brush is not None:
            self._brush = brush
        self.log.append(("settings", organ, tool, brush))

    def _edit(self, new: np.ndarray) -> None:
        """Accept voxel by voxel as the page does: only the active organ added or removed; over another organ only
        without protection; never where frozen."""
        protect = rules.PROTECT
        self.protect_used.add(protect)
        old = self.data
        ok = np.where(new == 0, old == self._organ,
                      (new == self._organ) & (~np.bool_(protect) | (old == 0) | (old == self._organ)))
        ok &= (new != old) & ~self.frozen
        self._undo.append(old.copy())
        self.data = np.where(ok, new, old).astype(old.dtype)
        self._n += 1

    def drag(self, points, steps=1):
        self.log.append(("drag", self._tool, tuple(map(tuple, points))))
        line = np.zeros(self.data.shape[:2], bool)
        pts = [(int(round(x)), int(round(y))) for x, y in points]
        for (x0, y0), (x1, y1) in list(zip(pts, pts[1:], strict=False)) or [(pts[0], pts[0])]:
            n = max(abs(x1 - x0), abs(y1 - y0), 1)
            for t in range(n + 1):
                line[round(x0 + (x1 - x0) * t / n), round(y0 + (y1 - y0) * t / n)] = True
        if self._tool == "fill":
            line = ndimage.binary_fill_holes(line)
        elif self._brush > 1:
            line = ndimage.binary_dilation(line, np.ones((self._brush, self._brush), bool))
        new = self.data.copy()
        new[:, :, self.slice][line] = 0 if self._tool == "eraser" else self._organ
        self._edit(new)

    def click(self, selector, wait=None):
        self.log.append(("click", selector))
        organ = self.data == self._organ
        new = self.data.copy()
        if selector == "[data-action=fill-holes]":
            new[ndimage.binary_fill_holes(organ) & ~organ] = self._organ
        elif selector == "[data-action=keep-largest]":
            parts, n = ndimage.label(organ, np.ones((3, 3, 3), bool))
            if n > 1:
                largest = 1 + int(np.argmax(ndimage.sum(organ, parts, range(1, n + 1))))
                new[organ & (parts != largest)] = 0
        else:
            raise NotImplementedError(selector)
        self._edit(new)

    def key(self, key):
        self.log.append(("key", key))
        if key != "Control+z":
            raise NotImplementedError(key)
        if self._undo:
            self.data = self._undo.pop()

    def blur(self):
        pass


def tiny_truth() -> np.ndarray:
    """A 40 x 40 x 12 label map: a liver (an ellipsoid) and a spleen beside it."""
    x, y, z = np.indices((40, 40, 12))
    truth = np.zeros((40, 40, 12), np.uint8)
    truth[((x - 14) / 10.0) ** 2 + ((y - 20) / 12.0) ** 2 + ((z - 6) / 5.0) ** 2 <= 1] = LIVER
    truth[((x - 31) / 5.0) ** 2 + ((y - 20) / 6.0) ** 2 + ((z - 6) / 4.0) ** 2 <= 1] = SPLEEN
    return truth


def tiny_case(kind: str, truth: np.ndarray | None = None) -> dict:
    truth = tiny_truth() if truth is None else truth
    label = truth.copy()
    liver = truth == LIVER
    if kind == "missed":  # the liver's right part removed over 3 slices
        part = liver.copy()
        part[:16] = False
        part[:, :, :5] = part[:, :, 8:] = False
        label[part] = 0
    elif kind == "hole":
        x, y, z = np.indices(truth.shape)
        label[(liver & ((x - 14) ** 2 + (y - 20) ** 2 + ((z - 6) * 2) ** 2 <= 16))] = 0
    elif kind == "island":
        label[36:39, 4:7, 5:8] = LIVER
    box = (slice(0, 40), slice(0, 40), slice(1, 11))
    return {"truth": truth, "label": label, "organs": (LIVER,), "box": box, "members": None,
            "rater": rater_view(truth, seed=7), "kind": kind}


class NeverDone(Judge):
    """A judge whose stopping rule never fires: the run then shows all the annotator would do."""

    def dice(self, label):
        return 0.0


def annotator(case: dict, ws: ArrayWorkspace, judge_cls=Judge) -> Annotator:
    box = case["box"]
    region = np.ones(tuple(s.stop - s.start for s in box), bool)
    return Annotator(ws, Rater(case["rater"], box), judge_cls(case["truth"], case["organs"], box, region), case)


def run(policy: str, case: dict, ws: ArrayWorkspace | None = None, judge_cls=Judge) -> tuple[Annotator, ArrayWorkspace]:
    ws = ws or ArrayWorkspace(case["label"])
    a = annotator(case, ws, judge_cls)
    if policy == "a":
        a.by_hand()
    else:
        with_tools(a, case["kind"])
    return a, ws


def test_the_rater_is_a_second_label_not_the_truth():
    truth = tiny_truth()
    view = rater_view(truth, seed=7)
    assert not np.array_equal(view, truth)
    liver, seen = truth == LIVER, view == LIVER
    assert 0.9 < 2 * (liver & seen).sum() / (liver.sum() + seen.sum()) < 1.0  # about a voxel off, in patches
    assert np.array_equal(rater_view(truth, seed=7), view)  # a seed gives one view
    moved = np.argwhere(view != truth)
    edge = ndimage.binary_dilation(truth > 0) & ~ndimage.binary_erosion(truth > 0)
    assert np.all(ndimage.binary_dilation(edge, iterations=1)[tuple(moved.T)])  # only boundaries move


def test_the_rater_hands_out_only_the_slice_on_display():
    case = tiny_case("missed")
    rater = Rater(case["rater"], case["box"])
    rater.slice(5, displayed=5)
    with pytest.raises(AssertionError, match="looked at slice 4 while slice 5 was displayed"):
        rater.slice(4, displayed=5)


@pytest.mark.parametrize(("policy", "kind"), [("a", "missed"), ("b", "hole"), ("b", "island")])
def test_the_annotator_never_reads_truth_it_has_not_displayed(policy, kind):
    """Every slice read is the one on display, and what the annotator does depends on the truth only through the
    stopping rule: with a judge that never stops it, two different truths behind the same rater's view and label
    give the same actions, step for step."""
    case = tiny_case(kind)
    a, ws = run(policy, case, judge_cls=NeverDone)
    assert a.rater.reads and a.actions > 0
    other = case["truth"].copy()
    other[case["truth"] == LIVER] = SPLEEN  # another truth altogether (the judge's), same view
    a2, ws2 = run(policy, {**case, "truth": other}, judge_cls=NeverDone)
    assert ws2.log == ws.log and a2.actions == a.actions and a2.rater.reads == a.rater.reads
    # and with the real judge it stops at the rule, on the truth
    done, _ = run(policy, case)
    assert done.dice() >= rules.STOP and done.actions <= a.actions


def test_a_pass_that_changes_nothing_ends_the_policy():
    """Where every edit is refused, (a) makes one pass (each of its actions refused, none counted as progress) and
    stops, far below the cap."""
    case = tiny_case("missed")
    frozen = np.ones(case["label"].shape, bool)
    a, ws = run("a", case, ArrayWorkspace(case["label"], frozen))
    assert np.array_equal(ws.data, case["label"]) and a.notes == ["a pass changed nothing"]
    one = annotator(case, ArrayWorkspace(case["label"], frozen))
    one.one_pass()
    assert 0 < a.actions == one.actions < rules.LIMIT


def test_both_policies_share_the_protection_rule(monkeypatch):
    """Both policies paint under the one PROTECT setting, whichever it is."""
    for protect in (False, True):
        monkeypatch.setattr(rules, "PROTECT", protect)
        used = set()
        for policy, kind in (("a", "missed"), ("b", "missed"), ("a", "hole"), ("b", "hole")):
            case = tiny_case(kind)
            if policy == "b" and kind == "missed":  # (b)'s interpolation key is the page's; the rest is (a)'s
                monkeypatch.setattr("simulate_annotator.policy.keyed", lambda a, organ: None)
            _, ws = run(policy, case)
            used |= ws.protect_used
        assert used == {protect}


def test_small_errors_get_a_dab():
    """A lone wrong voxel is fixed with one dab of the pen at size 1, not an outline."""
    truth = tiny_truth()
    case = tiny_case("missed", truth)
    label = case["rater"].copy()
    z, = [z for z in range(2, 10) if (label[:, :, z] == LIVER).sum() > 50][:1]
    x, y = np.argwhere(label[:, :, z] == LIVER)[0]
    label[x, y, z] = 0
    case = {**case, "label": label}
    a, ws = run("a", case, judge_cls=NeverDone)
    assert ("settings", LIVER, "brush", 1) in ws.log and ws.data[x, y, z] == LIVER
    assert a.notes == ["a pass changed nothing"]


def row(case, policy, actions, dice=0.99):
    return {"case": case, "policy": policy, "actions": actions, "dice": dice}


def test_the_figures_take_only_finished_cases_and_give_an_interval():
    rows = [row("c1", "a", 10), row("c1", "b", 5), row("c2", "a", 8), row("c2", "b", 4), row("c3", "a", 6),
            row("c3", "b", 6), row("c4", "a", 60, dice=0.9), row("c4", "b", 3)]
    pairs = paired(rows)
    assert [a["case"] for a, _ in finished(pairs)] == ["c1", "c2", "c3"]
    assert ratio(finished(pairs)) == pytest.approx(24 / 15)
    lo, hi = bootstrap(finished(pairs))
    assert 1.0 <= lo <= 24 / 15 <= hi <= 2.0
    s = summary(pairs)
    assert (s["finished"], s["failed_a"], s["failed_b"]) == (3, 1, 0)
    assert s["geomean"] == pytest.approx((2 * 2 * 1) ** (1 / 3))


def test_a_thin_extra_strip_takes_one_stroke_round_it():
    """A strip of extra organ two voxels thick is erased by one stroke of the eraser at size 1 along it."""
    case = tiny_case("missed")
    label = case["rater"].copy()
    z = 6
    strip = np.zeros(label.shape, bool)
    strip[5:25, 36:38, z] = True
    strip &= label == 0
    label[strip] = LIVER
    a, ws = run("a", {**case, "label": label}, judge_cls=NeverDone)
    drags = [e for e in ws.log if e[0] == "drag"]
    assert len(drags) == 1 and drags[0][1] == "eraser" and ("settings", LIVER, "eraser", 1) in ws.log
    assert not (ws.data[strip] == LIVER).any() and a.actions == 1


class ClickWorkspace(ArrayWorkspace):
    """ArrayWorkspace with the page's Click tool: a click adds a point of the active organ (shift: negative), and
    the real click model redraws the organ in a CROP_MM cube around it from the points placed so far inside the cube
    and the label as it is, applied with the page's editing rules (one undoable edit)."""

    def __init__(self, label, ct, affine):
        super().__init__(label)
        from ml_engine.interactive import ClickModelEngine

        self.ct, self.affine = ct, affine
        self.engine = ClickModelEngine()
        self.points: dict[int, list[tuple[tuple[int, int, int], bool]]] = {}

    def click_at(self, x, y, positive):
        from ml_engine.interactive import Crop, Prompts
        from ml_engine.interactive.engine import CROP_MM

        assert self._tool == "click"
        self.log.append(("click_at", x, y, self.slice, positive))
        point = (x, y, self.slice)
        placed = self.points.setdefault(self._organ, [])
        placed.append((point, positive))
        half = np.ceil(CROP_MM / 2 / np.abs(np.diag(self.affine)[:3])).astype(int)
        lo = np.maximum(np.array(point) - half, 0)
        hi = np.minimum(np.array(point) + half, np.array(self.data.shape) - 1)
        box = tuple(slice(int(a), int(b) + 1) for a, b in zip(lo, hi, strict=True))
        inside = [(tuple(int(v) for v in np.array(p) - lo), s) for p, s in placed
                  if all(a <= v <= b for v, a, b in zip(p, lo, hi, strict=True))]
        shift = np.eye(4)
        shift[:3, 3] = lo
        mask = self.engine.segment(Crop(ct=self.ct[box], affine=self.affine @ shift,
                                        label=self.data[box] == self._organ,
                                        prompts=Prompts(positive=tuple(p for p, s in inside if s),
                                                        negative=tuple(p for p, s in inside if not s))))
        new = self.data.copy()
        crop = new[box]
        crop[(crop == self._organ) & ~mask] = 0
        crop[mask] = self._organ
        self._edit(new)


def phantom_case() -> tuple[dict, np.ndarray, np.ndarray]:
    """A phantom (64 x 64 x 40) whose liver's right part is missing on 5 slices, with its CT for the click model."""
    from ml_engine.phantoms import make_phantom

    phantom = make_phantom(7200, shape=(64, 64, 40))
    truth = phantom.labels
    label = truth.copy()
    liver = truth == LIVER
    zs = np.nonzero(liver.any(axis=(0, 1)))[0]
    mid = int(zs.mean())
    xs = np.nonzero(liver.any(axis=(1, 2)))[0]
    part = liver.copy()
    part[: int(np.percentile(xs, 60))] = False
    part[:, :, : mid - 2] = part[:, :, mid + 3:] = False
    label[part] = 0
    box = tuple(slice(int(a), int(b) + 1) for a, b in zip(np.argwhere(part).min(axis=0) - 2,
                                                         np.argwhere(part).max(axis=0) + 2, strict=True))
    case = {"truth": truth, "label": label, "organs": (LIVER,), "box": box, "members": None,
            "rater": rater_view(truth, seed=7), "kind": "missed"}
    return case, phantom.ct, phantom.affine


def test_policy_c_clicks_where_the_rater_sees_the_liver_then_finishes_by_hand():
    import torch
    from simulate_annotator.clicks import with_clicks

    torch.set_num_threads(1)
    case, ct, affine = phantom_case()
    ws = ClickWorkspace(case["label"], ct, affine)
    a = annotator(case, ws)
    start = a.dice()
    with_clicks(a)
    clicks = [e for e in ws.log if e[0] == "click_at"]
    assert clicks and clicks[0][4] is True  # the first click: positive, in the missed part
    assert "click+" in a.used and a.actions >= len(clicks)
    assert a.dice() > start and (a.done() or a.spent() or "a pass changed nothing" in a.notes)
    # every positive click lies where the rater (not the truth) saw the liver (the Rater hands out only the slice on
    # display: reading another raises)
    assert all(case["rater"][x, y, z] == LIVER for _, x, y, z, positive in clicks if positive)


def test_policy_c_reads_only_the_slice_on_display(monkeypatch):
    """With a judge that never stops it, two truths behind the same rater's view give the same clicks and strokes."""
    import torch
    from simulate_annotator import annotator as annotator_module
    from simulate_annotator.clicks import with_clicks

    torch.set_num_threads(1)
    monkeypatch.setattr(annotator_module, "LIMIT", 12)
    case, ct, affine = phantom_case()
    z0 = case["box"][2].start + 2  # the first slice of the missed part
    case = {**case, "box": (case["box"][0], case["box"][1], slice(z0, z0 + 2))}
    ws = ClickWorkspace(case["label"], ct, affine)
    a = annotator(case, ws, NeverDone)
    with_clicks(a)
    assert a.rater.reads and any(e[0] == "click_at" for e in ws.log)
    other = case["truth"].copy()
    other[case["truth"] == LIVER] = SPLEEN
    ws2 = ClickWorkspace(case["label"], ct, affine)
    a2 = annotator({**case, "truth": other}, ws2, NeverDone)
    with_clicks(a2)
    assert ws2.log == ws.log and a2.actions == a.actions


def test_policy_c_leaves_a_sliver_to_the_hand_tools():
    """A disagreement a voxel thick along the liver's edge gets no click (CLICK_DEPTH): the hand pass fixes it."""
    from simulate_annotator.clicks import largest_disagreement, with_clicks

    case, ct, affine = phantom_case()
    truth = case["truth"]
    label = truth.copy()
    box = case["box"]
    z = (box[2].start + box[2].stop) // 2
    liver = truth[:, :, z] == LIVER
    from scipy import ndimage

    edge = liver & ~ndimage.binary_erosion(liver)
    label[:, :, z][edge] = 0  # a one-voxel rim missing on one slice
    case = {**case, "label": label, "rater": truth.copy()}
    ws = ClickWorkspace(label, ct, affine)
    a = annotator(case, ws, NeverDone)
    a.go_to(z)
    assert largest_disagreement(a, z, LIVER) is None
    with_clicks(a)
    assert not [e for e in ws.log if e[0] == "click_at"]
