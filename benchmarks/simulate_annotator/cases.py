"""The cases: the injected set (the phantom's truth with one error of a known kind) and the pseudo-label set (the
shipped ensemble's real pseudo-labels of the demo phantoms), stored as one annotating round."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import numpy as np
from bench_viewer import PASSWORD

LIVER, SPLEEN, KIDNEY_RIGHT, KIDNEY_LEFT = 5, 1, 2, 3
SHAPE = (96, 96, 64)
KINDS = ("missed", "spill", "island", "hole", "boundary", "end", "swap")
DEMO_SEED = 2024  # seed_demo's: phantom i is make_phantom(DEMO_SEED * 1000 + i)
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
CT_EXAMPLE, MSD_SPLEEN = SHARED / "ct_example", SHARED / "msd_spleen_8"
REAL_ORGANS = 3  # the real CT with two models' segmentations: its organs where they agree least


def rater_seed(case_seed: int, k: int) -> int:
    """The rater's own seed for a case (never the phantom's, nor a member's)."""
    return 7919 * case_seed + 104729 + k


def inject(truth: np.ndarray, kind: str, spacing: np.ndarray, seed: int) -> tuple[np.ndarray, tuple[int, ...],
                                                                                    dict | None]:
    """The starting label (truth with one error), the organ values the error is about, and for the boundary kind the
    members' liver probabilities (uint8 p x 255): none is the truth or a copy of it."""
    from scipy import ndimage

    from .perception import rater_view

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
            # a member that reads the anatomy well but not perfectly: the truth warped as a second reader's would be,
            # with its own seed
            close = rater_view(truth, seed=rater_seed(seed, 99)) == LIVER
            members = {"nnunet": close, "swin_unetr": label == LIVER, "unet": grown}
            members = {n: np.where(m, 230, 20).astype(np.uint8) for n, m in members.items()}
        else:
            label[part] = 0
        return label, (LIVER,), members
    if kind == "end":  # the spleen missed on its top slices (its top third, at least 3)
        spleen = truth == SPLEEN
        zs = np.unique(np.argwhere(spleen)[:, 2])
        top = zs[-max(3, len(zs) // 3):]
        for z in top:
            label[:, :, z][spleen[:, :, z]] = 0
        return label, (SPLEEN,), None
    if kind == "swap":  # the kidneys' labels swapped, right for left, over 7 slices at their middle
        both = (truth == KIDNEY_RIGHT) | (truth == KIDNEY_LEFT)
        zk = int(np.median(np.argwhere(both)[:, 2]))
        for z in range(zk - 3, zk + 4):
            sl = truth[:, :, z]
            label[:, :, z][sl == KIDNEY_RIGHT] = KIDNEY_LEFT
            label[:, :, z][sl == KIDNEY_LEFT] = KIDNEY_RIGHT
        return label, (KIDNEY_RIGHT, KIDNEY_LEFT), None
    if kind == "spill":
        grown = np.zeros_like(liver)
        for z in range(zc - 3, zc + 4):
            grown[:, :, z] = ndimage.binary_dilation(liver[:, :, z], iterations=4)
        touched = truth[grown & ~liver]
        values, counts = np.unique(touched[touched > 0], return_counts=True)
        neighbour = int(values[np.argmax(counts)])
        label[grown & (truth == neighbour)] = LIVER
        return label, (neighbour,), None
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
    return label, (LIVER,), None


def error_box(truth: np.ndarray, label: np.ndarray, organs: tuple[int, ...] | None = None) -> tuple[slice, ...]:
    """Where the label is wrong (on the given organs only, when given), grown by 3 voxels."""
    wrong = truth != label if organs is None else np.any([(truth == o) != (label == o) for o in organs], axis=0)
    where = np.argwhere(wrong)
    lo = np.maximum(where.min(axis=0) - 3, 0)
    hi = np.minimum(where.max(axis=0) + 4, np.array(truth.shape))
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def save(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
    import nibabel as nib

    nib.save(nib.Nifti1Image(array, affine), str(path))
    return path


def build(var: Path, seeds: list[int], kinds: list[str], demo: list[int], real: bool) -> dict:
    """The cases as one annotating round; returns case name -> its facts (truth, rater's view, organs, box, members,
    ...)."""
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

    from .perception import rater_view

    call_command("migrate", verbosity=0)
    label_set = LabelSet.objects.get(name="abdomenatlas")
    names = {v: k for k, v in label_set.organ_values().items()}
    src = var / "in"
    src.mkdir(parents=True)
    cases: dict[str, dict] = {}
    for seed in seeds:
        phantom = make_phantom(seed, shape=SHAPE)
        assert np.all(np.diag(phantom.affine)[:3] > 0), "the viewer's voxel order is the file's only on a RAS+ grid"
        spacing = np.abs(np.diag(phantom.affine)[:3])
        for k, kind in enumerate(kinds):
            name = f"s{seed}_{kind}"
            ct = phantom.ct.copy()
            ct[0, 0, 0] += 1 + k  # one voxel in a corner: the import skips identical CTs
            save(src / f"{name}.nii.gz", ct, phantom.affine)
            label, organs, members = inject(phantom.labels, kind, spacing, seed)
            cases[name] = {"set": "injected", "kind": kind, "truth": phantom.labels, "label": label,
                           "organs": organs, "box": error_box(phantom.labels, label), "members": members,
                           "affine": phantom.affine, "rater": rater_view(phantom.labels, rater_seed(seed, k))}
    if real:
        cases.update(real_cases(src))
    phantoms = [make_phantom(DEMO_SEED * 1000 + i, shape=SHAPE, name=f"demo_{i:03d}") for i in demo]
    for phantom in phantoms:
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
            organs = [OrganAttentionInput(names[c["organs"][0]], 100.0 - i, 1000)]
        record_prediction(case=Case.objects.get(name=name), round=round0,
                          pseudo_label=save(var / f"{name}_label.nii.gz", c["label"], c["affine"]), organs=organs,
                          **extra)
    if phantoms:
        cases.update(predict_demo(var, phantoms, round0, label_set))
    rebuild_tasks(round=round0)
    create_user(username="annotator", role="annotator", password=PASSWORD)
    return cases


def real_cases(src: Path) -> dict:
    """The real-CT set, when ../shared/data holds it (else none):
    - ct_example: TotalSegmentator's normal model's segmentation is the truth, its `--fast` model's the case's label
      (an imported prediction, the only member the project can offer there: the shipped tiny networks learned on
      phantoms and are noise on real CT); one case per organ where the two agree least (REAL_ORGANS, by Dice);
    - msd_spleen_8: the Decathlon's expert spleen label is the truth (only the spleen); the label is the shipped tiny
      ensemble's pseudo-label (noise on real CT, said so: that is what the project can run on it); the target is the
      spleen's box grown by 3 voxels.
    The rater's view is the truth warped, as for the phantoms. Each CT is put on a RAS+ grid by permutation and flips
    (ml_engine.preprocess.to_ras: no resampling), the viewer's voxel order."""
    import nibabel as nib

    from ml_engine.labels import LabelMap, label_set, translate
    from ml_engine.preprocess import to_ras

    from .perception import rater_view

    organs = label_set("abdomenatlas")
    cases: dict[str, dict] = {}
    if (CT_EXAMPLE / "ct.nii.gz").is_file():
        ct = nib.load(CT_EXAMPLE / "ct.nii.gz")
        affine = ct.affine
        assert np.all(np.diag(affine)[:3] > 0), "ct_example is RAS"
        tmap = LabelMap.load("totalsegmentator", organs)
        truth = translate(np.asarray(nib.load(CT_EXAMPLE / "seg_model_a.nii.gz").dataobj), organs, tmap)[0]
        fast = translate(np.asarray(nib.load(CT_EXAMPLE / "seg_model_b.nii.gz").dataobj), organs, tmap)[0]
        dice = {v: 2 * int(((truth == v) & (fast == v)).sum()) / max(int((truth == v).sum() + (fast == v).sum()), 1)
                for v in organs.values.values() if (truth == v).any()}
        view = rater_view(truth, rater_seed(5000, 0))
        hu = np.asarray(ct.dataobj).astype(np.int16)
        for k, value in enumerate(sorted(dice, key=lambda v: dice[v])[:REAL_ORGANS]):
            name = f"ct_example_{organs.organ_of(value)}"
            data = hu.copy()
            data[0, 0, 0] += 1 + k
            save(src / f"{name}.nii.gz", data, affine)
            cases[name] = {"set": "real", "kind": f"real: ct_example, {organs.organ_of(value)}", "truth": truth,
                           "label": fast, "organs": (value,), "box": error_box(truth, fast, (value,)),
                           "members": None, "affine": affine, "rater": view}
    if (MSD_SPLEEN / "ct.nii.gz").is_file():
        ct, truth = (nib.load(MSD_SPLEEN / f) for f in ("ct.nii.gz", "label.nii.gz"))
        data, affine, _ = to_ras(np.asarray(ct.dataobj).astype(np.int16), ct.affine)
        truth = np.ascontiguousarray(to_ras(np.asarray(truth.dataobj).astype(np.uint8), ct.affine)[0])
        data = np.ascontiguousarray(data)
        label = tiny_ensemble(data, affine)
        name = "msd_spleen_8"
        save(src / f"{name}.nii.gz", data, affine)
        spleen_box = error_box(truth, np.zeros_like(truth), (SPLEEN,))  # the spleen's box grown by 3
        cases[name] = {"set": "real", "kind": "real: msd_spleen_8, spleen", "truth": truth, "label": label,
                       "organs": (SPLEEN,), "box": spleen_box, "members": None, "affine": affine,
                       "rater": rater_view(truth, rater_seed(5001, 0))}
    return cases


@cache
def shipped_predictor():
    """The shipped tiny ensemble (the three networks' `tiny` checkpoints), loaded once."""
    from annotation.ml_adapter import SHIPPED_CHECKPOINTS
    from ml_engine.networks import ARCHITECTURES
    from ml_engine.predict import Predictor
    from ml_engine.train import load_checkpoint

    return Predictor([load_checkpoint(SHIPPED_CHECKPOINTS / f"{arch}_tiny.pt") for arch in sorted(ARCHITECTURES)])


def tiny_ensemble(ct: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The shipped tiny ensemble's pseudo-label of a CT (label-set values)."""
    from ml_engine.labels import label_set

    values = label_set("abdomenatlas").values
    _, masks = shipped_predictor().predict_masks(ct, affine)
    label = np.zeros(ct.shape, dtype=np.uint8)
    for organ, mask in masks.items():
        label[mask] = values[organ]
    return label


def predict_demo(var: Path, demo: list, round0, label_set) -> dict:
    """The shipped ensemble on the demo phantoms, stored as round 0's predictions; the target is the top hotspot."""
    from annotation.ml_adapter import write_ensemble
    from annotation.models import Case, OrganAttention
    from annotation.selectors.members import member_crops
    from annotation.services.predictions import record_prediction
    from ml_engine.io import load_on_grid

    from .perception import rater_view

    predictor = shipped_predictor()
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
        # the workspace lists hotspots largest first (mL, then voxels), ties in its organs' order (selectors.work.
        # task_organs: attention size, then value); the annotator starts at the first
        rows = (OrganAttention.objects.filter(case=case, round=round0).select_related("organ")
                .order_by("-size_ml", "organ__value"))
        spots = [(r.organ.name, h) for r in rows for h in r.hotspots]
        if not spots:
            continue
        organ, hotspot = sorted(spots, key=lambda s: (-s[1]["ml"], -s[1]["voxels"]))[0]
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
        number = int(phantom.name.split("_")[1])
        cases[phantom.name] = {"set": "pseudo", "kind": f"pseudo ({organ})", "truth": phantom.labels,
                               "organs": (values[organ],), "box": box, "region": region[box],
                               "members": members, "hotspot": hotspot, "affine": phantom.affine,
                               "rater": rater_view(phantom.labels, rater_seed(DEMO_SEED + number, 0))}
    return cases
