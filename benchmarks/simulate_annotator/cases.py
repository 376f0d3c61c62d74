"""The cases: the injected set (the phantom's truth with one error of a known kind) and the pseudo-label set (the
shipped ensemble's real pseudo-labels of the demo phantoms), stored as one annotating round."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from bench_viewer import PASSWORD

LIVER = 5
SHAPE = (96, 96, 64)
KINDS = ("missed", "spill", "island", "hole", "boundary")
DEMO_SEED = 2024  # seed_demo's: phantom i is make_phantom(DEMO_SEED * 1000 + i)


def inject(truth: np.ndarray, kind: str, spacing: np.ndarray) -> tuple[np.ndarray, int, dict | None]:
    """The starting label (truth with one error), the organ value the error is about, and for the boundary kind the
    members' liver probabilities (uint8 p x 255)."""
    from scipy import ndimage

    label = truth.copy()
    liver = truth == LIVER
    zs = np.argwhere(liver)[:, 2]
    zc = int(np.median(zs))
    if kind in ("missed", "boundary"):
        part = liver.copy()
        half = 4 if kind == "missed" else 3
        part[:, :, : zc - half] = False
        part[:, :, zc + half + 1:] = False
        xs = np.argwhere(part)[:, 0]
        part[: int(np.percentile(xs, 65))] = False
        members = None
        if kind == "boundary":  # only the edge: liver voxels within 3 voxels of the outside, in the slice
            inner = np.stack([ndimage.binary_erosion(liver[:, :, z], iterations=3) for z in range(liver.shape[2])],
                             axis=2)
            part &= ~inner
            grown = np.stack([ndimage.binary_dilation(liver[:, :, z], iterations=2)
                              for z in range(liver.shape[2])], axis=2)
            label[part] = 0
            members = {"nnunet": liver, "swin_unetr": label == LIVER, "unet": grown}
            members = {n: np.where(m, 230, 20).astype(np.uint8) for n, m in members.items()}
        else:
            label[part] = 0
        return label, LIVER, members
    if kind == "spill":
        grown = np.zeros_like(liver)
        for z in range(zc - 3, zc + 4):
            grown[:, :, z] = ndimage.binary_dilation(liver[:, :, z], iterations=4)
        touched = truth[grown & ~liver]
        values, counts = np.unique(touched[touched > 0], return_counts=True)
        neighbour = int(values[np.argmax(counts)])
        label[grown & (truth == neighbour)] = LIVER
        return label, neighbour, None
    grid = np.indices(truth.shape).reshape(3, -1).T
    if kind == "hole":
        depth = ndimage.distance_transform_edt(liver, sampling=spacing)
        centre = np.unravel_index(np.argmax(depth), truth.shape)
    else:  # island: background inside the body, far from every organ
        far = ndimage.distance_transform_edt(truth == 0, sampling=spacing)
        far[:, :, : zc - 6] = 0
        far[:, :, zc + 7:] = 0
        centre = np.unravel_index(np.argmax(np.where(far < 40, far, 0)), truth.shape)
    ball = (((grid - np.array(centre)) * spacing) ** 2).sum(axis=1) <= 8.0 ** 2
    ball = ball.reshape(truth.shape)
    if kind == "hole":
        label[ball & liver] = 0
    else:
        label[ball & (truth == 0)] = LIVER
    return label, LIVER, None


def error_box(truth: np.ndarray, label: np.ndarray) -> tuple[slice, slice, slice]:
    wrong = np.argwhere(truth != label)
    lo = np.maximum(wrong.min(axis=0) - 3, 0)
    hi = np.minimum(wrong.max(axis=0) + 4, np.array(truth.shape))
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def save(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
    import nibabel as nib

    nib.save(nib.Nifti1Image(array, affine), str(path))
    return path


def build(var: Path, seeds: int, kinds: list[str], pseudo: int) -> dict:
    """The cases as one annotating round; returns case name -> its facts (truth, organ, box, members, ...)."""
    import django

    django.setup()
    from django.core.management import call_command

    from annotation.ml_adapter import OrganAttentionInput
    from annotation.models import Case, LabelSet, Round
    from annotation.services.imports import import_cases
    from annotation.services.predictions import record_prediction
    from annotation.services.queue import rebuild_tasks
    from annotation.services.users import create_user
    from ml_engine.phantoms import make_phantom

    call_command("migrate", verbosity=0)
    label_set = LabelSet.objects.get(name="abdomenatlas")
    names = {v: k for k, v in label_set.organ_values().items()}
    src = var / "in"
    src.mkdir(parents=True)
    cases: dict[str, dict] = {}
    for seed in range(seeds):
        phantom = make_phantom(seed, shape=SHAPE)
        assert np.all(np.diag(phantom.affine)[:3] > 0), "the viewer's voxel order is the file's only on a RAS+ grid"
        spacing = np.abs(np.diag(phantom.affine)[:3])
        for kind in kinds:
            name = f"s{seed}_{kind}"
            ct = phantom.ct.copy()
            ct[0, 0, 0] += 1 + kinds.index(kind)  # one voxel in a corner: the import skips identical CTs
            save(src / f"{name}.nii.gz", ct, phantom.affine)
            label, organ, members = inject(phantom.labels, kind, spacing)
            cases[name] = {"set": "injected", "kind": kind, "truth": phantom.labels, "label": label, "organ": organ,
                           "box": error_box(phantom.labels, label), "members": members, "affine": phantom.affine}
    demo = [make_phantom(DEMO_SEED * 1000 + i, shape=SHAPE, name=f"demo_{i:03d}") for i in range(pseudo)]
    for phantom in demo:
        save(src / f"{phantom.name}.nii.gz", phantom.ct, phantom.affine)
    assert import_cases(src, dataset="sim").ok
    round0 = Round.objects.create(number=0, status=Round.Status.ANNOTATING, label_set=label_set)
    for i, (name, c) in enumerate(cases.items()):
        extra: dict = {}
        if c["members"] is not None:  # the members disagree where the label is wrong: that is the hotspot
            m = c["members"]
            disagree = (m["nnunet"] > 127) != (m["swin_unetr"] > 127)
            heat = np.where(disagree, 200, 0).astype(np.uint8)
            lo = np.argwhere(disagree).min(axis=0)
            hi = np.argwhere(disagree).max(axis=0) + 1
            c["hotspot"] = {"voxels": int(disagree.sum()), "ml": float(disagree.sum() * np.prod(
                np.diag(c["affine"])[:3]) / 1000), "centroid": [int(v) for v in np.argwhere(disagree).mean(axis=0)],
                "bbox": [[int(v) for v in lo], [int(v) for v in hi]]}
            extra = {"heatmap": save(var / f"{name}_heat.nii.gz", heat, c["affine"]),
                     "attention": {"liver": var / f"{name}_heat.nii.gz"},
                     "soft_pred": {n: {"liver": save(var / f"{name}_{n}.nii.gz", p, c["affine"])}
                                   for n, p in m.items()}}
            organs = [OrganAttentionInput("liver", c["hotspot"]["ml"], c["hotspot"]["voxels"], [c["hotspot"]])]
        else:
            organs = [OrganAttentionInput(names[c["organ"]], 100.0 - i, 1000)]
        record_prediction(case=Case.objects.get(name=name), round=round0,
                          pseudo_label=save(var / f"{name}_label.nii.gz", c["label"], c["affine"]), organs=organs,
                          **extra)
    if demo:
        cases.update(predict_demo(var, demo, round0, label_set))
    rebuild_tasks(round=round0)
    create_user(username="annotator", role="annotator", password=PASSWORD)
    return cases


def predict_demo(var: Path, demo: list, round0, label_set) -> dict:
    """The shipped ensemble on the demo phantoms, stored as round 0's predictions; the target is the top hotspot."""
    from annotation.ml_adapter import SHIPPED_CHECKPOINTS, write_ensemble
    from annotation.models import Case
    from annotation.selectors.members import member_crops
    from annotation.services.predictions import record_prediction
    from ml_engine.io import load_on_grid
    from ml_engine.predict import Predictor
    from ml_engine.train import load_checkpoint

    predictor = Predictor([load_checkpoint(p) for p in sorted(SHIPPED_CHECKPOINTS.glob("*_tiny.pt"))])
    values = label_set.organ_values()
    cases = {}
    for phantom in demo:
        work = var / phantom.name
        work.mkdir()
        files = write_ensemble(predictor.predict(phantom.ct, phantom.affine).iter_members(), values=values,
                               shape=phantom.ct.shape, affine=phantom.affine, workdir=work)
        case = Case.objects.get(name=phantom.name)
        record_prediction(case=case, round=round0, pseudo_label=files.pseudo_label,
                          heatmap=files.heatmap, attention=files.attention, soft_pred=files.soft_pred,
                          organs=files.organs)
        # the workspace lists hotspots largest first (mL, then voxels); the annotator starts at the first
        spots = [(h["ml"], h["voxels"], o.organ, h) for o in files.organs for h in o.hotspots]
        if not spots:
            continue
        _, _, organ, hotspot = max(spots, key=lambda s: (s[0], s[1]))
        members = {m: load_on_grid(per[organ], phantom.ct.shape, phantom.affine).astype(np.uint8)
                   for m, per in files.soft_pred.items() if organ in per}
        # the attention region the workspace's members, threshold and snap tools use: the server's, for the crop
        # useMembers asks for (the hotspot's box padded by 3 voxels)
        lo = [v - 3 for v in hotspot["bbox"][0]]
        hi = [v + 3 for v in hotspot["bbox"][1]]
        crops = member_crops(case, organ=organ, box=",".join(str(int(v)) for v in lo + hi),
                             seed=[math.floor(c + 0.5) for c in hotspot["centroid"]])  # Math.round
        region = np.zeros(phantom.ct.shape, dtype=bool)
        region[tuple(slice(a, b + 1) for a, b in zip(crops.box[0], crops.box[1], strict=True))] = crops.region
        where = np.argwhere(region)
        box = tuple(slice(int(a), int(b) + 1) for a, b in zip(where.min(axis=0), where.max(axis=0), strict=True))
        cases[phantom.name] = {"set": "pseudo", "kind": f"pseudo ({organ})", "truth": phantom.labels,
                               "organ": values[organ], "box": box, "region": region[box],
                               "members": members, "hotspot": hotspot, "affine": phantom.affine}
    return cases

