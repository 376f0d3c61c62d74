"""Command line of the ML engine: `python -m ml_engine <command> ...`.

Commands:
    phantoms OUT --n N --seed S   write N synthetic CT cases (AbdomenAtlas layout) under OUT
    train --data DIR --arch ARCH --out MODEL.pt [--init PARENT.pt] [--epochs N]   train / fine-tune one network
    infer --ct CT --models A.pt B.pt C.pt --out CASE_DIR   ensemble prediction in the AbdomenAtlas layout
    external --seg SEG --name NAME --out CASE_DIR   another tool's label map as an ensemble member
    attention CASE_DIR   attention heatmaps + attention.json from the models' soft predictions
    priority ROOT --out priority.csv   cases ranked by attention size, organs within each
    evaluate --pred P --ref R   Dice, NSD, HD95, ASSD per organ (+ attention sensitivity / precision)

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

    train = commands.add_parser(
        "train", help="train or fine-tune one network on an AbdomenAtlas folder (partial labels allowed)",
        description="Train one network on DIR/CASE/ct.nii.gz + DIR/CASE/segmentations/<organ>.nii.gz (a case may "
                    "label only some organs: its loss covers only those) and write one checkpoint file. With --init, "
                    "fine-tune that checkpoint (its architecture, size, organs and spacing are kept).")
    train.add_argument("--data", type=Path, required=True, metavar="DIR", help="AbdomenAtlas folder of cases")
    train.add_argument("--arch", choices=("swin_unetr", "nnunet", "unet"), default=None,
                       help="architecture (required unless --init)")
    train.add_argument("--size", choices=("tiny", "base"), default="tiny", help="network size (default tiny)")
    train.add_argument("--out", type=Path, required=True, metavar="MODEL.pt", help="checkpoint to write")
    train.add_argument("--init", type=Path, default=None, metavar="PARENT.pt", help="fine-tune this checkpoint")
    train.add_argument("--epochs", type=_positive_int, default=None,
                       help="epochs of one random patch per case each (default: the architecture's step count)")
    train.add_argument("--steps", type=_positive_int, default=None, help="optimiser steps (overrides --epochs)")
    train.add_argument("--lr", type=_learning_rate, default=None, help="learning rate (default per architecture; "
                                                                        "a third of it when fine-tuning)")
    train.add_argument("--organs", type=_organ, nargs="+", default=None, metavar="ORGAN",
                       help="organs of the network (default the nine abdomenatlas organs)")
    train.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default 0)")
    train.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    train.set_defaults(handler=cmd_train)

    infer = commands.add_parser(
        "infer", help="run the ensemble on one CT and write the AbdomenAtlas prediction layout",
        description="Write OUT/backbones/<arch>/soft_pred/<organ>.nii.gz (uint8, p x 255), "
                    "OUT/average/segmentations/<organ>.nii.gz and OUT/average/pseudo_label.nii.gz (mean > 0.5, "
                    "overlaps to the highest mean probability), all on the CT's grid and affine.")
    infer.add_argument("--ct", type=Path, required=True, help="CT volume (.nii.gz)")
    infer.add_argument("--models", type=Path, nargs="+", required=True, metavar="MODEL.pt", help="checkpoints")
    infer.add_argument("--out", type=Path, required=True, metavar="CASE_DIR", help="case folder to write into")
    infer.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda when available)")
    infer.add_argument("--overlap", type=float, default=0.5, help="sliding-window overlap (default 0.5)")
    infer.set_defaults(handler=cmd_infer)

    external = commands.add_parser(
        "external", help="add another tool's hard label map to a case as an ensemble member",
        description="Write OUT/backbones/NAME/soft_pred/<organ>.nii.gz (0 or 255) from a multi-label map through a "
                    "label map, then recompute OUT/average/ over every member under OUT/backbones/.")
    external.add_argument("--seg", type=Path, required=True, help="multi-label segmentation (.nii.gz)")
    external.add_argument("--name", required=True, help="member name, e.g. totalsegmentator")
    external.add_argument("--label-map", default="totalsegmentator",
                          help="totalsegmentator, abdomenatlas, or a JSON file {organ: value or [values]}")
    external.add_argument("--out", type=Path, required=True, metavar="CASE_DIR", help="case folder to write into")
    external.add_argument("--ct", type=Path, default=None, help="the case's CT: the map must share its grid")
    external.set_defaults(handler=cmd_external)

    attention = commands.add_parser(
        "attention", help="attention maps of a case from its models' soft predictions (AbdomenAtlas method)",
        description="Read CASE/backbones/<arch>/soft_pred/<organ>.nii.gz (uint8 p x 255, or float in [0, 1]) and write "
                    "CASE/average/attention/<organ>.nii.gz (uint8 heatmap, > 0 exactly on the attention) and "
                    "CASE/average/attention.json (per organ: sizes, hotspots). Defaults are the published ones.")
    attention.add_argument("cases", type=Path, nargs="+", metavar="CASE_DIR", help="case folder(s)")
    attention.add_argument("--std-threshold", type=float, default=0.1, help="inconsistency: std > this (default 0.1)")
    attention.add_argument("--entropy-threshold", type=float, default=0.05,
                           help="uncertainty: entropy > this (default 0.05)")
    attention.add_argument("--entropy", choices=("term", "binary"), default="term",
                           help="term: mean over models of -p ln p (published, default); binary: binary entropy of "
                                "the mean probability")
    opening = attention.add_mutually_exclusive_group()
    opening.add_argument("--opening-voxels", type=_non_negative_int, default=2,
                         help="opening half-width in voxels: erosions, then dilations, 26-connected "
                              "(default 2; 0: none)")
    opening.add_argument("--opening-mm", type=float, default=None,
                         help="opening half-width in mm instead, rounded per axis "
                              "(6 = the published 2 voxels at 3 mm)")
    attention.add_argument("--connectivity", type=int, choices=(6, 18, 26), default=26,
                           help="hotspot connectivity (default 26)")
    attention.add_argument("--max-hotspots", type=_non_negative_int, default=50,
                           help="hotspots listed per organ in attention.json, largest first (default 50)")
    attention.set_defaults(handler=cmd_attention)

    priority = commands.add_parser(
        "priority", help="rank the cases under ROOT by attention size into a CSV",
        description="Read ROOT/<case>/average/attention.json of every case and write one CSV row a case, largest "
                    "total attention first: case, total size, then its organs with attention, largest first.")
    priority.add_argument("root", type=Path, metavar="ROOT", help="folder holding the case folders")
    priority.add_argument("--out", type=Path, required=True, help="CSV file to write")
    priority.add_argument("--by", choices=("ml", "voxels"), default="ml",
                          help="size unit: ml (spacing-aware, default) or voxels (as the published method)")
    priority.set_defaults(handler=cmd_priority)

    evaluate = commands.add_parser(
        "evaluate", help="Dice, NSD, HD95, ASSD per organ (and attention sensitivity / precision)",
        description="Compare a prediction with a reference, organ by organ: Dice, NSD at FLARE's tolerances, HD95 and "
                    "ASSD (DeepMind surface-distance definitions, spacing-aware). P and R are multi-label NIfTI maps "
                    "(values through a label map) or folders of <organ>.nii.gz masks. Prints a table, writes JSON.")
    evaluate.add_argument("--pred", type=Path, required=True, metavar="P", help="predicted segmentation")
    evaluate.add_argument("--ref", type=Path, required=True, metavar="R", help="reference segmentation")
    evaluate.add_argument("--label-map", default=None, metavar="MAP",
                          help="for both multi-label maps: abdomenatlas (default), totalsegmentator, or a JSON file "
                               "({organ: value or [values]} or {\"labels\": {value: organ}})")
    evaluate.add_argument("--pred-label-map", default=None, metavar="MAP", help="label map of P only")
    evaluate.add_argument("--ref-label-map", default=None, metavar="MAP", help="label map of R only")
    evaluate.add_argument("--organs", nargs="+", default=None, metavar="ORGAN", help="evaluate only these organs")
    evaluate.add_argument("--tolerance", action="append", default=[], metavar="ORGAN=MM",
                          help="NSD tolerance of one organ (repeatable; default FLARE's, else 2 mm)")
    evaluate.add_argument("--attention", type=Path, default=None, metavar="DIR",
                          help="attention heatmaps DIR/<organ>.nii.gz: also the component-wise sensitivity and "
                               "precision of the attention against the errors of P (P is then the pseudo-label)")
    evaluate.add_argument("--out", type=Path, default=Path("evaluation.json"),
                          help="JSON file to write (default evaluation.json)")
    evaluate.set_defaults(handler=cmd_evaluate)
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


def _learning_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"learning rate must be positive, got {text}")
    return value


def cmd_train(args: argparse.Namespace) -> int:
    """Load the cases with a progress bar, train with a progress bar, write the checkpoint."""
    import math as _math

    from tqdm import tqdm

    from ml_engine.io import CheckpointError, ImageError, find_atlas_cases, load_atlas_case
    from ml_engine.networks import defaults_for
    from ml_engine.phantoms import ORGANS
    from ml_engine.train import FINE_TUNE_STEPS, TrainConfig, load_checkpoint, make_train_case, save_checkpoint, train

    try:
        parent = load_checkpoint(args.init) if args.init else None
        if parent is None and args.arch is None:
            print("error: --arch is required unless --init names a checkpoint", file=sys.stderr)
            return 2
        if parent is not None and args.organs and tuple(args.organs) != parent.organs:
            raise CheckpointError(args.init, f"organs {', '.join(parent.organs)} differ from --organs "
                                             f"{', '.join(args.organs)}")
        arch = parent.arch if parent else args.arch
        size = parent.size if parent else args.size
        organs = parent.organs if parent else tuple(args.organs or ORGANS)
        defaults = defaults_for(arch, size)
        spacing = parent.spacing if parent else defaults.spacing
        hu_window = parent.hu_window if parent else (-175.0, 250.0)
        folders = find_atlas_cases(args.data)
        if not folders:
            raise ImageError(args.data, "no case folders with ct.nii.gz")
        cases = []
        for folder in tqdm(folders, desc="load cases", unit="case", file=sys.stderr):
            case = load_atlas_case(folder, organs)
            cases.append(make_train_case(case.name, case.ct.data, case.ct.affine, case.masks, organs, spacing,
                                         hu_window=hu_window))
        if not any(c.labelled.any() for c in cases):
            raise ImageError(args.data, f"no case has a segmentation of any of {', '.join(organs)}")
        steps = args.steps
        if steps is None and args.epochs is not None:
            steps = args.epochs * max(1, _math.ceil(len(cases) / defaults.batch))
        config = TrainConfig(arch=arch, size=size, organs=organs, steps=steps, lr=args.lr, seed=args.seed,
                             device=args.device)
        total = steps or (max(1, int(defaults.steps * FINE_TUNE_STEPS)) if parent else defaults.steps)
        with tqdm(total=total, desc=f"train {arch}", unit="step", file=sys.stderr) as bar:
            def progress(done: int, total: int, loss: float) -> None:
                bar.update(done - bar.n)
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

            checkpoint = train(cases, config, init=parent, progress=progress)
        if parent is not None:
            checkpoint.parent = args.init.name
        save_checkpoint(args.out, checkpoint)
    except (ImageError, CheckpointError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    m = checkpoint.metrics
    print(f"wrote {args.out} ({checkpoint.arch} {checkpoint.size}, {len(cases)} cases, {int(m['steps'])} steps, "
          f"loss {m['loss_first']:.3f} -> {m['loss_last']:.3f}, {m['wall_seconds']:.0f} s)")
    return 0


def cmd_infer(args: argparse.Namespace) -> int:
    """Run the ensemble on one CT; write soft predictions, per-organ masks and the pseudo-label, organ by organ."""
    import numpy as np
    from tqdm import tqdm

    from ml_engine.io import (
        CheckpointError,
        ImageError,
        average_mask_path,
        load_nifti,
        pseudo_label_path,
        soft_pred_path,
        write_nifti,
    )
    from ml_engine.predict import Predictor
    from ml_engine.train import load_checkpoint

    try:
        checkpoints = [load_checkpoint(path) for path in args.models]
        for path, ckpt in zip(args.models, checkpoints, strict=True):
            if ckpt.organs != checkpoints[0].organs:
                raise CheckpointError(path, f"organs {', '.join(ckpt.organs)} differ from {args.models[0]}'s "
                                            f"{', '.join(checkpoints[0].organs)}")
        ct = load_nifti(args.ct)
        predictor = Predictor(checkpoints, device=args.device, overlap=args.overlap)
        with tqdm(total=len(checkpoints) + len(predictor.organs), desc="infer", unit="step", file=sys.stderr) as bar:
            def progress(stage: str, done: int, total: int) -> None:
                bar.update(done - bar.n)

            result = predictor.predict(ct.data, ct.affine, progress=progress)
            for out in result.iter_organs():
                for member, soft in out.soft.items():
                    write_nifti(soft_pred_path(args.out, member, out.organ), soft, ct.affine, ct.header, np.uint8)
                write_nifti(average_mask_path(args.out, out.organ), out.mask, ct.affine, ct.header, np.uint8)
                bar.update(1)
            write_nifti(pseudo_label_path(args.out), result.pseudo_label, ct.affine, ct.header, np.uint8)
    except (ImageError, CheckpointError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(checkpoints)} members x {len(predictor.organs)} organs and the pseudo-label to {args.out}")
    return 0


def cmd_external(args: argparse.Namespace) -> int:
    """Write another tool's label map as a member (0 / 255 per organ); recompute the case's average over members."""
    import json

    import numpy as np

    from ml_engine.io import (
        ImageError,
        average_mask_path,
        list_soft_preds,
        load_nifti,
        pseudo_label_path,
        same_geometry,
        soft_pred_path,
        write_nifti,
    )
    from ml_engine.phantoms import ORGANS
    from ml_engine.predict import LABEL_MAPS, external_soft_preds, pseudo_label_from_soft

    try:
        if args.label_map in LABEL_MAPS:
            labels = LABEL_MAPS[args.label_map]
        else:
            path = Path(args.label_map)
            try:
                labels = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise ImageError(path, f"not a readable JSON label map ({exc})") from exc
            if not isinstance(labels, dict) or any(o not in ORGANS for o in labels):
                raise ImageError(path, f"expected {{organ: value}} with organs among {', '.join(ORGANS)}")
        if not args.name or "/" in args.name or args.name.startswith("."):
            raise ValueError(f"bad member name {args.name!r}")
        seg = load_nifti(args.seg, allow_float=False)
        if args.ct is not None:
            ct = load_nifti(args.ct)
            if ct.shape != seg.shape or not same_geometry(ct.affine, seg.affine):
                raise ImageError(args.seg, f"grid {seg.shape} differs from the CT's {ct.shape} or its affine")
        soft = external_soft_preds(np.asarray(seg.data), labels, ORGANS)
        for organ, data in soft.items():
            write_nifti(soft_pred_path(args.out, args.name, organ), data, seg.affine, seg.header, np.uint8)
        members = {}
        for member, files in list_soft_preds(args.out).items():
            members[member] = {}
            for organ, path in files.items():
                volume = load_nifti(path, allow_float=False)
                if volume.shape != seg.shape:
                    raise ImageError(path, f"shape {volume.shape} differs from {args.seg}'s {seg.shape}")
                members[member][organ] = np.asarray(volume.data, dtype=np.uint8)
        organs = [o for o in ORGANS if any(o in m for m in members.values())]
        label, masks = pseudo_label_from_soft(members, organs)
        for organ, mask in masks.items():
            write_nifti(average_mask_path(args.out, organ), mask, seg.affine, seg.header, np.uint8)
        write_nifti(pseudo_label_path(args.out), label, seg.affine, seg.header, np.uint8)
    except (ImageError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.name}: {len(soft)} organs; average over {len(members)} members ({', '.join(members)}) "
          f"in {args.out}")
    return 0


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
            payload = _attention_case(case, settings, max_hotspots=args.max_hotspots)
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


def _attention_case(case: Path, settings, *, max_hotspots: int) -> dict:
    """Read a case's soft predictions, write its heatmaps (swapped in whole) and attention.json; return the JSON."""
    import os
    import secrets
    import shutil

    import numpy as np
    from tqdm import tqdm

    from ml_engine.attention import iter_case_attention, rank_organs
    from ml_engine.io import (
        ImageError,
        list_soft_preds,
        load_nifti,
        same_geometry,
        soft_pred_path,
        write_json,
        write_nifti,
    )
    from ml_engine.phantoms import ORGANS

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
            volume = load_nifti(path)
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

    # The geometry comes from the first file; read it before computing so that spacing is known.
    first = load_nifti(members[next(iter(members))][organs[0]])
    spacing = first.spacing
    average = case / "average"
    average.mkdir(parents=True, exist_ok=True)
    staging = average / f".attention.{os.getpid()}.{secrets.token_hex(4)}"
    staging.mkdir()  # (not mkdtemp: the folder gets the umask's permissions, as the rest of the case)
    summaries: dict[str, dict] = {}
    try:
        with tqdm(total=2 * len(organs), unit="step", desc=f"attention {case.name}", file=sys.stderr,
                  leave=False) as bar:
            results = iter_case_attention(organs, load, spacing=spacing, settings=settings,
                                          progress=lambda done, total: bar.update(done - bar.n))
            for result in results:
                write_nifti(staging / f"{result.organ}.nii.gz", result.full_heatmap(), reference["affine"],
                            reference["header"], np.uint8)
                summary = result.summary()
                summary["heatmap"] = f"attention/{result.organ}.nii.gz"
                summary["hotspots"] = [h.to_dict(reference["affine"]) for h in result.hotspots[:max_hotspots]]
                summaries[result.organ] = summary
        target = average / "attention"
        old = None
        if target.exists():
            old = average / f".attention-old.{os.getpid()}.{secrets.token_hex(4)}"
            target.rename(old)
        staging.rename(target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
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


_TOTALSEGMENTATOR_VALUES = {"spleen": [1], "kidney_right": [2], "kidney_left": [3], "gallbladder": [4], "liver": [5],
                            "stomach": [6], "pancreas": [7], "aorta": [52], "postcava": [63]}
_ORGAN_ALIASES = {"inferior_vena_cava": "postcava", "ivc": "postcava", "right_kidney": "kidney_right",
                  "left_kidney": "kidney_left"}


def _label_map(spec: str | None) -> dict[str, list[int]]:
    """{organ: [values]} from a built-in name or a JSON file ({organ: value(s)} or {"labels": {value: organ}})."""
    import json

    from ml_engine.io import ImageError
    from ml_engine.phantoms import ORGANS

    if spec is None or spec == "abdomenatlas":
        return {organ: [index + 1] for index, organ in enumerate(ORGANS)}
    if spec == "totalsegmentator":
        return {organ: list(values) for organ, values in _TOTALSEGMENTATOR_VALUES.items()}
    path = Path(spec)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ImageError(path, f"not a readable JSON label map ({type(exc).__name__}: {exc})") from exc
    out: dict[str, list[int]] = {}
    try:
        if isinstance(data, dict) and isinstance(data.get("labels"), dict):
            for value, organ in data["labels"].items():
                if organ is not None:
                    out.setdefault(_ORGAN_ALIASES.get(str(organ), str(organ)), []).append(int(value))
        elif isinstance(data, dict):
            for organ, values in data.items():
                values = values if isinstance(values, list) else [values]
                out.setdefault(_ORGAN_ALIASES.get(str(organ), str(organ)), []).extend(int(v) for v in values)
        else:
            raise ValueError("expected a JSON object")
    except (TypeError, ValueError) as exc:
        raise ImageError(path, f"not a label map: {exc}") from exc
    if not out or any(v < 1 for values in out.values() for v in values):
        raise ImageError(path, "a label map needs organs with label values >= 1")
    return out


def _read_segmentation(path: Path, label_map: dict[str, list[int]]) -> tuple[dict, object]:
    """{organ: (x, y, z) bool} and the geometry Volume of a multi-label map or a folder of <organ>.nii.gz masks."""
    import numpy as np

    from ml_engine.io import ImageError, is_nifti, load_nifti, nifti_stem, same_geometry

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
            masks[_ORGAN_ALIASES.get(name, name)] = data > 0.5 if data.dtype.kind == "f" else data > 0
        return masks, first
    if not path.exists():
        raise ImageError(path, "no such file or folder")
    volume = load_nifti(path, allow_float=False)
    data = np.asarray(volume.data)
    return {organ: np.isin(data, values) for organ, values in label_map.items()}, volume


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Per-organ Dice / NSD / HD95 / ASSD (and attention detection) of P against R: a table and a JSON file."""
    import math

    import numpy as np
    from tqdm import tqdm

    from ml_engine.io import ImageError, load_nifti, same_geometry, write_json
    from ml_engine.metrics import attention_detection, evaluate_masks, mean_detection, tolerance_for
    from ml_engine.phantoms import ORGANS

    try:
        tolerances = {}
        for item in args.tolerance:
            organ, sep, value = item.partition("=")
            if not sep or not math.isfinite(float(value)) or float(value) < 0:
                raise ValueError(f"--tolerance expects ORGAN=MM with MM >= 0, got {item!r}")
            tolerances[organ] = float(value)
        pred_map = _label_map(args.pred_label_map or args.label_map)
        ref_map = _label_map(args.ref_label_map or args.label_map)
        pred, pred_volume = _read_segmentation(args.pred, pred_map)
        ref, ref_volume = _read_segmentation(args.ref, ref_map)
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
                    heat = load_nifti(heat_path)
                    if heat.shape != ref_volume.shape:
                        raise ImageError(heat_path, f"shape {heat.shape} differs from {args.ref}'s {ref_volume.shape}")
                    detections[organ] = attention_detection(np.asarray(heat.data) > 0, pred[organ], ref[organ])
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
