"""The frozen rules of the effort benchmark: what both policies share, and the version printed with every run. Change
any of them and change VERSION: figures from different versions are not comparable."""

VERSION = "2026-12-07.3"  # issue 24's rework (.1); policy (c), the clicks (issue 25: .2); (c) clicks no sliver,
# nor again where a click did nothing (.3); (a) and (b) unchanged since .1
LIMIT = 120  # actions a case before giving up (both policies)
STOP = 0.95  # the stopping rule: Dice against the truth, the benchmark's (never the annotator's) measure
PROTECT = False  # "protect other organs", the same in both policies: off (an edge between two organs is both's)
KEEP_MARGIN = 0.02  # a one-click proposal is taken when it follows the rater's view better by more than this
DAB = 2  # errors of at most this many voxels in a slice are fixed with a dab of the pen (size 1), not outlined
CLICK_MIN = 6  # policy (c): a disagreement smaller than this (voxels on the slice) is left to the hand tools
CLICK_DEPTH = 2.0  # policy (c): nor one whose deepest point lies nearer its border than this (a sliver along an edge)
CLICKS_PER_SLICE = 3  # policy (c): clicks per organ and slice in one pass
TUNED_ON = "injected seeds 0-4 and demo phantoms 0-4"  # the only cases the rules were tried on
