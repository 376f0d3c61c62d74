"""`evaluate`: Dice, NSD, HD95, ASSD per organ, and attention sensitivity / precision."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path


def _read_segmentation(path: Path, spec: str | None) -> tuple[dict, object]:
    """{organ: (x, y, z) bool} and the geometry Volume of a multi-label map (values through the label map spec, default
    abdomenatlas) or of a folder of <organ>.nii.gz masks (names or aliases of the abdomenatlas organs, or others)."""
    import numpy as np

    from ml_engine.io import ImageError, is_nifti, load_nifti, nifti_stem, same_geometry
    from ml_engine.labels import ABDOMENATLAS, LabelMap, LabelMapError, translate

    mapping = LabelMap.load(spec or ABDOMENATLAS.name, ABDOMENATLAS)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and is_nifti(p))
        if not files:
            raise ImageError(path, "no <organ>.nii.gz masks in this folder")
        masks, first = {}, None
        for file in files:
            volume = load_nifti(file)
            if first is None:
                first = volume
            elif volume.shape != first.shape or not same_geometry(volume.affine, first.affine):
                raise ImageError(file, f"grid {volume.shape} or affine differs from {files[0].name}'s")
            data = np.asarray(volume.data)
            name = nifti_stem(file)
            masks[ABDOMENATLAS.resolve(name) or name] = data > 0.5 if data.dtype.kind == "f" else data > 0
        return masks, first
    if not path.exists():
        raise ImageError(path, "no such file or folder")
    volume = load_nifti(path, allow_float=False)
    try:
        label, _ = translate(np.asarray(volume.data), ABDOMENATLAS, mapping)
    except LabelMapError as exc:
        raise ImageError(path, str(exc)) from exc
    covered = mapping.organs_covered(ABDOMENATLAS)
    return {organ: label == value for organ, value in ABDOMENATLAS.values.items() if organ in covered}, volume


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Per-organ Dice / NSD / HD95 / ASSD (and attention detection) of P against R: a table and a JSON file."""

    import numpy as np
    from tqdm import tqdm

    from ml_engine.io import ImageError, load_on_grid, same_geometry, write_json
    from ml_engine.labels import ORGANS
    from ml_engine.metrics import attention_detection, evaluate_masks, mean_detection, tolerance_for

    try:
        tolerances = {}
        for item in args.tolerance:
            organ, sep, value = item.partition("=")
            if not sep or not math.isfinite(float(value)) or float(value) < 0:
                raise ValueError(f"--tolerance expects ORGAN=MM with MM >= 0, got {item!r}")
            tolerances[organ] = float(value)
        pred, pred_volume = _read_segmentation(args.pred, args.pred_label_map or args.label_map)
        ref, ref_volume = _read_segmentation(args.ref, args.ref_label_map or args.label_map)
        if pred_volume.shape != ref_volume.shape or not same_geometry(pred_volume.affine, ref_volume.affine):
            raise ImageError(args.pred, f"grid {pred_volume.shape} or affine differs from {args.ref}'s "
                                        f"{ref_volume.shape}")
        common = [o for o in ORGANS if o in pred and o in ref] + sorted(set(pred) & set(ref) - set(ORGANS))
        if args.organs:
            unknown = [o for o in args.organs if o not in common]
            if unknown:
                raise ValueError(f"organs {unknown} are not in both P and R (common: {', '.join(common) or 'none'})")
            common = [o for o in common if o in args.organs]
        if not common:
            raise ValueError(f"{args.pred} and {args.ref} share no organ (P: {', '.join(pred) or 'none'}; "
                             f"R: {', '.join(ref) or 'none'})")
        spacing = ref_volume.spacing
        results: dict[str, dict] = {}
        detections = {}
        for organ in tqdm(common, unit="organ", desc="evaluate", file=sys.stderr, leave=False):
            tolerance = tolerances.get(organ, tolerance_for(organ))
            results[organ] = evaluate_masks(pred[organ], ref[organ], spacing, tolerance_mm=tolerance)
            if args.attention is not None:
                heat_path = args.attention / f"{organ}.nii.gz"
                if heat_path.is_file():
                    heat = load_on_grid(heat_path, ref_volume.shape, ref_volume.affine)  # whole or cropped
                    detections[organ] = attention_detection(heat > 0, pred[organ], ref[organ])
                    results[organ]["attention"] = detections[organ].to_dict()
        if args.attention is not None and not detections:
            raise ImageError(args.attention, f"no attention heatmaps <organ>.nii.gz for {', '.join(common)}")
    except (ImageError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    keys = ("dice", "nsd", "hd95_mm", "assd_mm")
    mean = {k: float(np.mean([r[k] for r in results.values()])) for k in keys}
    header = (f"{'organ':<14} {'dice':>6} {'nsd':>6} {'tol_mm':>6} {'hd95_mm':>8} {'assd_mm':>8} {'ref_ml':>9} "
              f"{'pred_ml':>9}")
    if detections:
        header += f" {'att_sens':>8} {'att_prec':>8}"
    print(header)

    def fmt(value: float | None, width: int, digits: int) -> str:
        return f"{'-':>{width}}" if value is None or math.isnan(value) else f"{value:>{width}.{digits}f}"

    for organ, r in results.items():
        line = (f"{organ:<14} {r['dice']:>6.3f} {r['nsd']:>6.3f} {r['tolerance_mm']:>6.1f} {fmt(r['hd95_mm'], 8, 2)} "
                f"{fmt(r['assd_mm'], 8, 2)} {r['ref_ml']:>9.1f} {r['pred_ml']:>9.1f}")
        if detections:
            d = detections.get(organ)
            line += f" {fmt(d.sensitivity if d else None, 8, 2)} {fmt(d.precision if d else None, 8, 2)}"
        print(line)
    line = (f"{'mean':<14} {mean['dice']:>6.3f} {mean['nsd']:>6.3f} {'':>6} {fmt(mean['hd95_mm'], 8, 2)} "
            f"{fmt(mean['assd_mm'], 8, 2)}")
    attention_mean = mean_detection(detections) if detections else None
    if attention_mean:
        line += f" {'':>9} {'':>9} {fmt(attention_mean['sensitivity'], 8, 2)} {fmt(attention_mean['precision'], 8, 2)}"
    print(line)

    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, float) and not math.isfinite(value):
            return None  # inf (one mask empty) is written as null
        return value

    payload = {"pred": str(args.pred), "ref": str(args.ref), "spacing_mm": list(spacing),
               "conventions": "DeepMind surface distances; FLARE empty-mask rules; inf written as null",
               "organs": clean(results), "mean": clean(mean)}
    if attention_mean is not None:
        payload["attention_mean"] = attention_mean
    try:
        write_json(args.out, payload)
    except OSError as exc:
        print(f"error: {args.out}: cannot write ({exc})", file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    return 0


