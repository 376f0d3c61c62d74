"""The annotator effort benchmark: a scripted annotator corrects errors in the real workspace (headless Chromium driven
by Playwright, as the browser tests do), once with the brush, eraser and filled outline only (policy a), once with the
correction tools first (policy b), and counts the actions each needs to reach Dice >= 0.95 against the truth. The
rules (cap, stopping rule, protection, margins, rater noise) are frozen in `rules.py` with a version string that every
run prints, with the cases they were tuned on.

Three sets of cases:
- injected (phantoms 96 x 96 x 64 at 1.5 x 1.5 x 2.5 mm, `--seeds`): the truth with one injected error of a kind:
  - missed: the liver's part at the patient's right (its top 35% of x) removed over 9 slices;
  - spill: the liver grown 4 voxels in the slice into its largest neighbour organ, over 7 slices (the neighbour is
    the organ to correct);
  - island: a false ball of liver (radius 8 mm) in the body far from the liver;
  - hole: a ball (radius 8 mm) cut out of the liver's thickest part;
  - boundary: the liver's edge pulled in by 3 voxels on its right side over 7 slices, with three members (the truth
    warped as a second reader's would be, with its own seed; the wrong label; the truth grown by 2 voxels) and their
    disagreement as the liver's hotspot: no member is the truth;
  - end: the spleen missed on its top third of slices (at least 3);
  - swap: the kidneys' labels swapped, right for left, over 7 slices at their middle (both kidneys to correct).
  Dice inside the error's box grown by 3 voxels, on the organs the error is about (their mean).
- pseudo (the demo's phantoms, `--demo`): the shipped ensemble's real pseudo-label, members and attention (the three
  tiny networks, run here); the target is the case's top hotspot (the first in the workspace's list): Dice of its
  organ inside the hotspot's region, the one the members, threshold and snap tools work in (the server's).
- real (`../shared/data`, skipped when absent): ct_example (TotalSegmentator's normal model as the truth, its --fast
  model's segmentation as the label, the organs where they differ most) and msd_spleen_8 (the Decathlon's expert
  spleen label as the truth, the shipped tiny ensemble's pseudo-label as the label: that is what the project runs on
  it, and it is noise on real CT). See cases.real_cases.

What the simulated annotator perceives (perception.py): a rater's view of the anatomy, never the truth. The view is
the truth warped by a smooth random displacement (its own seed per case), so that boundaries lie up to a voxel off in
patches, as a second reader's would; the annotator reads it one displayed slice at a time (`Rater.slice` refuses any
other), and decides where to edit, which member, which threshold and whether to keep a proposal by comparing what
the page shows with it. The truth is held by the judge alone: Dice >= 0.95 is the stopping rule and the score.
Where it looks: the error's box (injected and real, as a hotspot or a reader's own look would point there) or the
top hotspot's region.

Policy (a), by hand: passes through the box's slices, scrolled in order (down, then up, ...), until the stopping
rule, the cap (LIMIT actions) or a pass that changes nothing. On each slice, organ by organ, against the rater's
view: each extra piece erased (one stroke of the eraser at size 1 round it when it is at most two voxels thick, else
strokes across it, the pen as tall as the piece, 30 at most), then one filled outline
(pen size 1) traced along each of the organ's pieces that lacks more than DAB voxels, then a dab of the pen (size 1)
on each error of at most DAB voxels (extra ones with the eraser).
Policy (b), the tools first, then (a) on what is left:
- hole: "Fill holes"; island: "Keep largest" (one click each);
- a hotspot (boundary, pseudo): on the displayed slice, unless the page says the members agree there, the member (or
  the mean) whose outline follows the rater's view best, if better than the label by KEEP_MARGIN ("use <member>":
  one action); then the local threshold dragged watching the preview (one action; letting go keeps the best; when
  none beats the label by KEEP_MARGIN, Ctrl+Z: one more); then the snap's outline, drawn by the page at no cost,
  applied (one action) by the same rule. A proposal that, once applied, follows the rater's view worse than the
  label did is taken back (Ctrl+Z: one more action);
- otherwise (missed, spill, end, swap, real): organ by organ, a review through the box (scrolls) for the longest run
  of at least 3 slices where the label lacks more than a quarter of the organ the rater sees there; outlines on its
  first, middle and last slices, then `i` (interpolation).
Policy (c), the clicks first (the workspace's Click tool, Atlas's click model: clicks.py), then (a) on what is left:
passes through the box until the stopping rule, the cap or a pass that changes nothing; on each slice, organ by
organ, up to CLICKS_PER_SLICE clicks, each at the centre (deepest point) of the largest piece where the rater's view
and the label disagree (positive where the label lacks the organ, shift-click negative where it has it in excess)
among those that hold at least CLICK_MIN voxels and are no sliver (deepest point CLICK_DEPTH from the border); a
click that leaves the slice following the view worse is taken back, and the organ's clicks on that slice end then,
or after a click that changed nothing there.
All policies: "protect other organs" is rules.PROTECT (off) throughout; in hotspot cases both click the hotspot to
get there (one action).
Counted: actions (strokes, dabs, clicks, tool keys, the threshold's drag), scrolls (slice changes, the reviews'
included) and settings (organ, tool, pen size) apart. A case a policy does not finish is a failure, reported with its
final Dice; ratios are taken over the cases both policies finished, with a bootstrap 95% interval over cases and the
geometric mean of per-case ratios beside it (stats.py).

    .venv/bin/python benchmarks/simulate_annotator [--seeds 10 11 12 13] [--demo 10 ... 19] [--kinds ...] [--no-real]
    (or each policy apart: --policy a > a.log; --policy b > b.log; --policy c > c.log; then --table a.log b.log c.log)

The defaults are the held-out cases (never tuned on: rules.TUNED_ON). Modules: rules, perception (rater and judge),
cases (the sets, stored as one round), workspace (the page), annotator (counting; policy a), policy (policy b),
clicks (policy c),
stats and report. Needs Chromium (/usr/bin/chromium) and the Python playwright package. Never asserts on figures;
tests/test_simulate_annotator.py pins its rules without a browser.
"""

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent
if str(BENCHMARKS) not in sys.path:  # bench_viewer and browser_session live beside the package
    sys.path.insert(0, str(BENCHMARKS))
