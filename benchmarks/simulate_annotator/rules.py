"""The frozen rules of the effort benchmark: what both policies share, and the version printed with every run. Change
any of them and change VERSION: figures from different versions are not comparable."""

VERSION = "2026-12-07.1"  # policy, costs, cap and rater noise as of issue 24's rework
LIMIT = 120  # actions a case before giving up (both policies)
STOP = 0.95  # the stopping rule: Dice against the truth, the benchmark's (never the annotator's) measure
PROTECT = False  # "protect other organs", the same in both policies: off (an edge between two organs is both's)
KEEP_MARGIN = 0.02  # a one-click proposal is taken when it follows the rater's view better by more than this
DAB = 2  # errors of at most this many voxels in a slice are fixed with a dab of the pen (size 1), not outlined
TUNED_ON = "injected seeds 0-4 and demo phantoms 0-4"  # the only cases the rules were tried on
