"""`phantoms`: synthetic CT cases in the AbdomenAtlas layout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


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


