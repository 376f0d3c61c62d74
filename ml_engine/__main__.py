"""Command line of the ML engine: `python -m ml_engine <command> ...`.

Commands:
    phantoms OUT --n N --seed S   write N synthetic CT cases (AbdomenAtlas layout) under OUT

Each command is one function `cmd_<name>(args) -> int` registered in build_parser(); `main` returns the exit
status (0 success, 1 failure while running, 2 bad arguments, as argparse does).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _shape_side(text: str) -> int:
    from ml_engine.phantoms import MIN_SIDE

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape sides are whole numbers of voxels, got {text!r}") from None
    if value < MIN_SIDE:
        raise argparse.ArgumentTypeError(f"every shape side must be at least {MIN_SIDE} voxels, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of mm, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"spacing must be positive, got {text}")
    return value


def _organ(text: str) -> str:
    from ml_engine.phantoms import ORGANS

    if text not in ORGANS:
        raise argparse.ArgumentTypeError(f"unknown organ {text!r} (valid organs: {', '.join(ORGANS)})")
    return text


def _trouble(text: str) -> str:
    from ml_engine.phantoms import TROUBLES

    if text not in TROUBLES:
        raise argparse.ArgumentTypeError(f"unknown trouble {text!r} (valid troubles: {', '.join(TROUBLES)})")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ml_engine", description="Atlas ML engine commands.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    phantoms = commands.add_parser(
        "phantoms", help="write synthetic abdominal CT cases with organ labels",
        description="Write N synthetic abdominal CT cases as OUT/phantom_NNNN/ct.nii.gz and "
                    "OUT/phantom_NNNN/segmentations/<organ>.nii.gz (AbdomenAtlas layout, abdomenatlas label set).")
    phantoms.add_argument("out", type=Path, metavar="OUT", help="folder to write the cases into (created if absent)")
    phantoms.add_argument("--n", type=_positive_int, required=True, help="number of cases")
    phantoms.add_argument("--seed", type=_non_negative_int, required=True, help="dataset seed (same seed, same data)")
    phantoms.add_argument("--shape", type=_shape_side, nargs=3, metavar=("X", "Y", "Z"), default=None,
                          help="array shape in voxels (default 96 96 64)")
    phantoms.add_argument("--spacing", type=_positive_float, nargs=3, metavar=("SX", "SY", "SZ"), default=None,
                          help="voxel size in mm before the per-case jitter of about 10%% (default 1.5 1.5 2.5)")
    phantoms.add_argument("--organs", type=_organ, nargs="*", metavar="ORGAN", default=None,
                          help="organs to write masks for (default all nine; none given: unlabelled cases)")
    phantoms.add_argument("--troubles", type=_trouble, nargs="*", metavar="TROUBLE", default=None,
                          help="troubles every case carries (default: drawn at random per case; none given: none)")
    phantoms.set_defaults(handler=cmd_phantoms)
    return parser


def cmd_phantoms(args: argparse.Namespace) -> int:
    """Write the phantom dataset with a progress bar and print a one-line summary."""
    from tqdm import tqdm

    from ml_engine.phantoms import DEFAULT_SHAPE, DEFAULT_SPACING, ORGANS, generate_dataset

    out: Path = args.out
    if out.exists() and not out.is_dir():
        print(f"error: {out}: exists and is not a folder", file=sys.stderr)
        return 1
    shape = tuple(args.shape) if args.shape else DEFAULT_SHAPE
    spacing = tuple(args.spacing) if args.spacing else DEFAULT_SPACING
    organs = args.organs
    with tqdm(total=args.n, unit="case", desc="phantoms", file=sys.stderr) as bar:
        def progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

        try:
            cases = generate_dataset(out, n=args.n, seed=args.seed, shape=shape, spacing=spacing, organs=organs,
                                     troubles=args.troubles, progress=progress)
        except (OSError, ValueError) as exc:
            bar.close()
            print(f"error: {exc}", file=sys.stderr)
            return 1
    if organs is None:
        labelled = f"all {len(ORGANS)} organs labelled"
    elif not organs:
        labelled = "unlabelled"
    else:
        labelled = f"labelled: {', '.join(o for o in ORGANS if o in organs)}"
    print(f"wrote {len(cases)} phantom case{'s' if len(cases) != 1 else ''} "
          f"({'x'.join(map(str, shape))} voxels, {labelled}) to {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    return int(handler(args))


if __name__ == "__main__":
    sys.exit(main())
