"""`train`, `infer`, `external`: networks and ensemble members."""

from __future__ import annotations

import argparse
import sys


def cmd_train(args: argparse.Namespace) -> int:
    """Load the cases with a progress bar, train with a progress bar, write the checkpoint."""
    import math as _math

    from tqdm import tqdm

    from ml_engine.io import CheckpointError, ImageError, find_atlas_cases, load_atlas_case
    from ml_engine.labels import ORGANS
    from ml_engine.networks import defaults_for
    from ml_engine.train.cases import make_train_case
    from ml_engine.train.checkpoint import load_checkpoint, save_checkpoint
    from ml_engine.train.loop import FINE_TUNE_STEPS, TrainConfig, train

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
    from ml_engine.labels import ABDOMENATLAS
    from ml_engine.predict import Predictor
    from ml_engine.train.checkpoint import load_checkpoint

    try:
        checkpoints = [load_checkpoint(path) for path in args.models]
        for path, ckpt in zip(args.models, checkpoints, strict=True):
            if ckpt.organs != checkpoints[0].organs:
                raise CheckpointError(path, f"organs {', '.join(ckpt.organs)} differ from {args.models[0]}'s "
                                            f"{', '.join(checkpoints[0].organs)}")
            if unknown := [o for o in ckpt.organs if o not in ABDOMENATLAS.values]:
                raise CheckpointError(path, f"organs {', '.join(unknown)} are not in the abdomenatlas label set")
        ct = load_nifti(args.ct)
        predictor = Predictor(checkpoints, device=args.device, overlap=args.overlap, cpu_runtime=args.cpu_runtime)
        with tqdm(total=len(checkpoints) + len(predictor.organs), desc="infer", unit="step", file=sys.stderr) as bar:
            def progress(stage: str, done: int, total: int) -> None:
                bar.update(done - bar.n)

            result = predictor.predict(ct.data, ct.affine, progress=progress)
            for out in result.iter_organs(values=ABDOMENATLAS.values):
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
    import numpy as np

    from ml_engine.ensemble import EnsembleAverage, member_votes
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
    from ml_engine.labels import ABDOMENATLAS, LabelMap, LabelMapError, translate

    try:
        mapping = LabelMap.load(args.label_map, ABDOMENATLAS)
        if not args.name or "/" in args.name or args.name.startswith("."):
            raise ValueError(f"bad member name {args.name!r}")
        seg = load_nifti(args.seg, allow_float=False)
        if args.ct is not None:
            ct = load_nifti(args.ct)
            if ct.shape != seg.shape or not same_geometry(ct.affine, seg.affine):
                raise ImageError(args.seg, f"grid {seg.shape} differs from the CT's {ct.shape} or its affine")
        try:
            label, _ = translate(np.asarray(seg.data), ABDOMENATLAS, mapping)
        except LabelMapError as exc:
            raise ImageError(args.seg, str(exc)) from exc
        covered = [o for o in ABDOMENATLAS.organs if o in mapping.organs_covered(ABDOMENATLAS)]
        soft = member_votes(label, ABDOMENATLAS.values, covered)
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
        average = EnsembleAverage(seg.shape, ABDOMENATLAS.values)
        for organ in ABDOMENATLAS.organs:
            if maps := {member: per_organ[organ] for member, per_organ in members.items() if organ in per_organ}:
                out = average.add(organ, maps)
                write_nifti(average_mask_path(args.out, organ), out.mask, seg.affine, seg.header, np.uint8)
        write_nifti(pseudo_label_path(args.out), average.label, seg.affine, seg.header, np.uint8)
    except (ImageError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.name}: {len(soft)} organs; average over {len(members)} members ({', '.join(members)}) "
          f"in {args.out}")
    return 0
