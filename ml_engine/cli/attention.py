"""`attention` and `priority`: heatmaps, attention.json and the ranked case list."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def cmd_attention(args: argparse.Namespace) -> int:
    """Attention maps of each case; a bad case gets one error line (the others still run) and exit status 1."""
    from ml_engine.attention import AttentionSettings
    from ml_engine.io import ImageError

    try:
        settings = AttentionSettings(std_threshold=args.std_threshold, entropy_threshold=args.entropy_threshold,
                                     entropy=args.entropy, opening_voxels=args.opening_voxels,
                                     opening_mm=args.opening_mm, connectivity=args.connectivity)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = 0
    for case in args.cases:
        try:
            payload = _attention_case(case, settings, max_hotspots=args.max_hotspots,
                                      full_maps=getattr(args, "full_maps", False))
        except (ImageError, OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        total = payload["total"]
        top = payload["organ_order"][:3]
        largest = ", ".join(f"{o} {payload['organs'][o]['volume_ml']:.2f} mL" for o in top) or "none"
        print(f"{case}: attention {total['volume_ml']:.2f} mL ({total['voxels']} voxels) over "
              f"{len(payload['organs'])} organs from {len(payload['models'])} models; largest: {largest}")
    return 1 if failed else 0


def _attention_case(case: Path, settings, *, max_hotspots: int, full_maps: bool = False) -> dict:
    """Read a case's soft predictions, write its heatmaps (swapped in whole) and attention.json; return the JSON.

    Each heatmap is cropped to its attention's box with the affine shifted (ml_engine.io.write_nifti_box), or with
    full_maps on the CT's whole grid.
    """
    import numpy as np
    from tqdm import tqdm

    from ml_engine.attention import iter_case_attention, rank_organs
    from ml_engine.io import (
        ImageError,
        atomic_folder,
        list_soft_preds,
        load_nifti,
        same_geometry,
        soft_pred_path,
        write_json,
        write_nifti,
        write_nifti_box,
    )
    from ml_engine.labels import ORGANS

    if not case.is_dir():
        raise ImageError(case, "no such case folder")
    if not (case / "backbones").is_dir():
        raise ImageError(case / "backbones", "missing: expected backbones/<arch>/soft_pred/<organ>.nii.gz")
    members = list_soft_preds(case)
    if not members:
        raise ImageError(case / "backbones", "no soft predictions: expected <arch>/soft_pred/<organ>.nii.gz")
    names = set().union(*(files.keys() for files in members.values()))
    organs = [o for o in ORGANS if o in names] + sorted(names - set(ORGANS))
    for member, files in members.items():
        for organ in organs:
            if organ not in files:
                have = next(m for m, f in members.items() if organ in f)
                raise ImageError(soft_pred_path(case, member, organ), f"missing ({have} has {organ}.nii.gz)")
    reference: dict = {}

    def load(organ: str) -> list:
        maps = []
        for files in members.values():
            path = files[organ]
            volume = first.pop(path, None) or load_nifti(path)
            if not reference:
                reference.update(path=path, shape=volume.shape, affine=volume.affine, header=volume.header)
            elif volume.shape != reference["shape"]:
                raise ImageError(path, f"shape {volume.shape} differs from {reference['path']}'s {reference['shape']}")
            elif not same_geometry(volume.affine, reference["affine"]):
                raise ImageError(path, f"affine differs from {reference['path']}'s")
            data = np.asarray(volume.data)
            if data.dtype != np.uint8 and data.dtype.kind != "f":
                raise ImageError(path, f"expected uint8 (p x 255) or float probabilities, found {data.dtype}")
            if data.dtype.kind == "f" and data.size and (data.min() < 0 or data.max() > 1):
                raise ImageError(path, "float probabilities outside [0, 1]")
            maps.append(data)
        return maps

    # The geometry comes from the first file: read it before computing so that spacing is known, and only once.
    first_path = members[next(iter(members))][organs[0]]
    first = {first_path: load_nifti(first_path)}
    spacing = first[first_path].spacing
    average = case / "average"
    average.mkdir(parents=True, exist_ok=True)
    summaries: dict[str, dict] = {}
    with atomic_folder(average / "attention", replace=True) as staging:
        with tqdm(total=2 * len(organs), unit="step", desc=f"attention {case.name}", file=sys.stderr,
                  leave=False) as bar:
            results = iter_case_attention(organs, load, spacing=spacing, settings=settings,
                                          progress=lambda done, total: bar.update(done - bar.n))
            for result in results:
                if full_maps:
                    write_nifti(staging / f"{result.organ}.nii.gz", result.full_heatmap(), reference["affine"],
                                reference["header"], np.uint8)
                else:
                    crop, start = result.compact_heatmap()
                    write_nifti_box(staging / f"{result.organ}.nii.gz", crop, reference["affine"], start,
                                    dtype=np.uint8)
                summary = result.summary()
                summary["heatmap"] = f"attention/{result.organ}.nii.gz"
                if not full_maps:
                    summary["heatmap_box"] = {"start": list(start), "shape": list(crop.shape)}
                summary["hotspots"] = [h.to_dict(reference["affine"]) for h in result.hotspots[:max_hotspots]]
                summaries[result.organ] = summary
    voxel_ml = float(np.prod(spacing)) / 1000.0
    total_voxels = sum(s["voxels"] for s in summaries.values())
    payload = {
        "case": case.name,
        "models": list(members),
        "shape": list(reference["shape"]),
        "spacing_mm": [round(s, 6) for s in spacing],
        "voxel_volume_ml": voxel_ml,
        "settings": settings.to_dict(),
        "opening_radius_voxels": list(settings.opening_radius(spacing)),
        "total": {"voxels": total_voxels, "volume_ml": round(total_voxels * voxel_ml, 6)},
        "organ_order": [o for o, _ in rank_organs({o: s["voxels"] for o, s in summaries.items()})],
        "organs": summaries,
    }
    write_json(average / "attention.json", payload)
    return payload


def cmd_priority(args: argparse.Namespace) -> int:
    """Rank every case under ROOT by its attention.json into a CSV (one row a case) and print the top cases."""
    import json

    from ml_engine.attention import rank_cases
    from ml_engine.io import write_csv

    root: Path = args.root
    if not root.is_dir():
        print(f"error: {root}: no such folder", file=sys.stderr)
        return 1
    key = "volume_ml" if args.by == "ml" else "voxels"
    sizes: dict[str, dict[str, float]] = {}
    lacking: list[Path] = []
    for case in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        path = case / "average" / "attention.json"
        if not path.is_file():
            if (case / "backbones").is_dir():
                lacking.append(case)
            continue
        try:
            organs = json.loads(path.read_text(encoding="utf-8"))["organs"]
            sizes[case.name] = {organ: float(values[key]) for organ, values in organs.items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            print(f"error: {path}: not a readable attention.json ({type(exc).__name__}: {exc})", file=sys.stderr)
            return 1
    if lacking:
        more = f" (and {len(lacking) - 1} more cases)" if len(lacking) > 1 else ""
        print(f"error: {lacking[0]}: no average/attention.json{more}; run `python -m ml_engine attention CASE_DIR` "
              f"first", file=sys.stderr)
        return 1
    if not sizes:
        print(f"error: {root}: no case folders with average/attention.json", file=sys.stderr)
        return 1
    try:
        ranking = rank_cases(sizes)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    width = max(len(p.organs) for p in ranking)
    unit = "ml" if args.by == "ml" else "voxels"
    rows: list[list[object]] = [["case", f"total_{unit}", *(f"organ_{i + 1}" for i in range(width))]]
    for p in ranking:
        total = round(p.total, 6) if args.by == "ml" else int(p.total)
        rows.append([p.case, total, *(o for o, _ in p.organs), *([""] * (width - len(p.organs)))])
    try:
        write_csv(args.out, rows)
    except OSError as exc:
        print(f"error: {args.out}: cannot write ({exc})", file=sys.stderr)
        return 1
    for p in ranking[:10]:
        organs = ", ".join(o for o, _ in p.organs[:4]) + (", ..." if len(p.organs) > 4 else "")
        print(f"{p.case:<24} {p.total:>14.2f} {unit:<6} {organs}")
    print(f"ranked {len(ranking)} case{'s' if len(ranking) != 1 else ''} by attention size ({unit}) into {args.out}")
    return 0


