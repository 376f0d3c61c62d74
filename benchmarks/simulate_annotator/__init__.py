"""The annotator effort benchmark: a scripted annotator corrects errors in the real workspace (headless Chromium driven
by Playwright, as the browser tests do), once with the brush, eraser and filled outline only (policy a), once with the
correction tools (policy b), and counts the actions each needs to reach Dice >= 0.95 against the truth.

Two sets of cases, on demo-sized phantoms (96 x 96 x 64; 1.5 x 1.5 x 2.5 mm):
- injected: the phantom's truth with one injected error on the liver, of a known kind:
  - missed: the liver's part at the patient's right (its top 35% of x) removed over 9 slices;
  - spill: the liver grown 4 voxels in the slice into its largest neighbour organ, over 7 slices;
  - island: a false ball of liver (radius 8 mm) in the body far from the liver;
  - hole: a ball (radius 8 mm) cut out of the liver's thickest part;
  - boundary: the liver's edge pulled in by 3 voxels on its right side over 7 slices, where the members disagree:
    three stand-in members (the truth, the wrong label, the truth grown by 2 voxels) and their disagreement as the
    liver's attention hotspot.
  Dice is measured inside the error's box grown by 3 voxels, on the organ the error is about (the liver; for a spill,
  the neighbour), since a small error hardly moves a whole organ's Dice.
- pseudo: the demo's phantoms (`seed_demo`'s seeds) with the shipped ensemble's real pseudo-label, members and
  attention (the three tiny networks, run here); the target is the error inside the case's top hotspot (the first in
  the workspace's list): Dice of its organ inside the hotspot's region, the one the members, threshold and snap
  tools work in (the server's: the attention component at the hotspot inside its box padded by 3, dilated by one).

What the simulated annotator knows (a careful annotator's view, never the truth beyond it):
- where to look: the error's box (for the injected set, as a hotspot would point there) or the top hotspot's box;
- on a slice it displays, where the CT shows the organ: the truth on that slice inside the box (it reviews the box
  slice by slice; the review's slice changes are counted as scrolls);
- the label, and the members' outlines (the members' and the mean's p > 0.5) at the hotspot.
It never reads the truth of a slice it has not displayed, nor any 3D measure of it (Dice decides only when to stop:
the benchmark's stopping rule).

Policy (a), hand tools, slice by slice through the box's wrong slices in order, up to three passes; on each: eraser
strokes across each piece of extra organ (the brush as tall as the piece, 30 at most), then one filled outline
around each piece of the organ (8-connected, as the CT shows it) that still lacks voxels, traced along the piece's
boundary (a vertex on every boundary voxel, every second one above 60) ("protect other organs" on;
for a spill, the neighbour's piece with protection off, so that it paints over the spilled liver, and no eraser).
Policy (b), the tools first, then (a) on what is left:
- missed, spill: the same outlines on the first, middle and last wrong slices only, then `i` (interpolation);
- hole: "Fill holes"; island: "Keep largest" (one click: a careful annotator knows the liver is one piece);
- boundary and pseudo: the hotspot (one click) draws the members' outlines; on the displayed slice (the hotspot's
  centre), unless the page says the members agree there (then no member will fix the label: both steps skipped), the
  annotator compares each outline and the label with the CT and, when one member (or the mean) follows the CT better
  than the label (slice Dice up by more than 0.02), clicks "use <member>"; then it drags the local threshold (one
  action) watching the preview on that slice, and lets go at the best threshold, which keeps it, when it follows the
  CT better still; else it lets go and takes the drag back with Ctrl+Z (one action). Then, with "protect other
  organs" off (an edge between two organs is both organs' and their labels are suspect alike), the page draws the
  snap's proposal (reach 1) as one more outline at the hotspot, recomputed after each edit, which costs nothing to
  look at, like the members' outlines; the annotator compares it with the CT on that slice and clicks "Apply snap"
  (one action) by the same rule. No paid preview and no reach trial.
- At a hotspot, each step is taken only while Dice < 0.95 (the stopping rule); then (a) as everywhere.
The cap: LIMIT (120) actions a case for both policies; the table also prints what a cap of OLD_LIMIT (40) would have
counted. What was tried and dropped, and the runs under the earlier cap: docs/benchmarks.md, "Annotator effort".
Actions: strokes, clicks, typed values and tool key presses; slice scrolling (arrow keys, and the review's slices) is
counted apart, as are the organ, tool and protection toggles (settings, the same in both policies). In the boundary
and pseudo cases both policies click the hotspot to get there.

    .venv/bin/python benchmarks/simulate_annotator [--seeds 2] [--pseudo 4] [--kinds missed spill ...]
    (or each policy apart: --policy a > a.log; --policy b > b.log; then --table a.log b.log)

Modules: cases (the two sets, stored as one round), annotator (what it sees and does; policy a), policy (policy b),
report (the runs and the table). Needs Chromium (/usr/bin/chromium) and the Python playwright package. Never asserts.
"""

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent
if str(BENCHMARKS) not in sys.path:  # bench_viewer and browser_session live beside the package
    sys.path.insert(0, str(BENCHMARKS))
