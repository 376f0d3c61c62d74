"""What the upload intake costs a normal label upload: a 512 x 512 x 300 label map sent the way clients send it,
timed as whole requests through Django's full stack (middleware, authentication, the intake, the service, the revision
landing), against a baseline measured in the same run: the same requests to another checkout of the project (today's
code before the intake, e.g. a git worktree of an earlier commit), in a process of its own.

    .venv/bin/python benchmarks/bench_intake.py [--shape 512 512 300] [--repeat 5] [--baseline-tree DIR]

The doors: `POST /api/tasks/{id}/revisions/` with a gzip NIfTI (the browser's upload) and `PUT
/monailabel/datastore/label` with a gzip NRRD as ITK (so 3D Slicer) writes it, with Slicer's label_info. Each
checkout runs in a throw-away ATLAS_VAR_DIR (SQLite, its own media), with one imported case of the shape given
(a real CT's size), its pseudo-label, a round and a task that the annotator holds; between uploads the task is leased
to them again. The label: nine ellipsoid organs. Never asserts; prints medians and the differences.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent.parent


def organs(shape: tuple[int, int, int]) -> np.ndarray:
    """Nine ellipsoids side by side, values 1..9 (x, y, z), uint8."""
    x, y, z = np.ogrid[: shape[0], : shape[1], : shape[2]]
    label = np.zeros(shape, dtype=np.uint8)
    for value in range(1, 10):
        cx, cy, cz = shape[0] * (value + 0.5) / 10.5, shape[1] * (0.35 + 0.05 * (value % 4)), shape[2] / 2
        rx, ry, rz = shape[0] / 24, shape[1] / 8, shape[2] / 4
        label[((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + ((z - cz) / rz) ** 2 <= 1] = value
    return label


def run_one(root: Path, shape: tuple[int, int, int], repeat: int) -> dict[str, list[float]]:
    """Time both doors against the project at root (imported from there), in this process."""
    sys.path.insert(0, str(root))
    var = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    os.environ.update({"ATLAS_VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "atlas.settings"})
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    import nibabel as nib
    import SimpleITK as sitk
    from django.core.management import call_command
    from django.test import Client
    from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
    from django.utils import timezone
    from knox.models import AuthToken

    from annotation.ml_adapter import OrganAttentionInput
    from annotation.models import Case, LabelSet, Revision, Round, Task
    from annotation.services.imports import import_cases
    from annotation.services.predictions import record_prediction
    from annotation.services.queue import lease_duration, rebuild_tasks
    from annotation.services.users import create_user

    call_command("migrate", verbosity=0)
    affine = np.diag([0.8, 0.8, 1.5, 1.0])
    ct = np.full(shape, -100, dtype=np.int16)
    label = organs(shape)
    ct[label > 0] = 60
    (var / "in").mkdir()
    nib.save(nib.Nifti1Image(ct, affine), var / "in" / "case.nii.gz")
    assert import_cases(var / "in", dataset="bench").ok
    round0 = Round.objects.create(number=0, status=Round.Status.ANNOTATING,
                                  label_set=LabelSet.objects.get(name="abdomenatlas"))
    pseudo = var / "pseudo.nii.gz"
    nib.save(nib.Nifti1Image(label, affine), pseudo)
    case = Case.objects.get()
    record_prediction(case=case, round=round0, pseudo_label=pseudo, heatmap=pseudo, attention={},
                      organs=[OrganAttentionInput("liver", 10.0, 1000)])
    rebuild_tasks(round=round0)
    user = create_user(username="a1", role="annotator", password="bench-password-1")
    task = Task.objects.get()
    _, token = AuthToken.objects.create(user=user)

    edited = label.copy()
    edited[edited == 1] = 0  # the annotator erased the spleen
    nifti = io.BytesIO()
    image = nib.Nifti1Image(edited, affine)
    nifti.write(gzip.compress(image.to_bytes(), compresslevel=6))
    lps = np.diag([-1.0, -1.0, 1.0])
    itk = sitk.GetImageFromArray(np.ascontiguousarray(edited.transpose(2, 1, 0)))
    itk.SetSpacing([0.8, 0.8, 1.5])
    itk.SetDirection((lps @ np.eye(3)).ravel().tolist())
    itk.SetOrigin((lps @ affine[:3, 3]).tolist())
    nrrd_path = var / "label.nrrd"
    sitk.WriteImage(itk, str(nrrd_path), useCompression=True)
    nrrd = nrrd_path.read_bytes()
    label_info = json.dumps({"label_info": [{"name": name, "idx": value} for value, name in
                                            enumerate(["spleen", "kidney_right", "kidney_left", "gallbladder", "liver",
                                                       "stomach", "aorta", "postcava", "pancreas"], start=1)]})

    def lease_again() -> None:
        Task.objects.filter(pk=task.pk).update(status=Task.Status.LEASED, lease_holder=user, leased_at=timezone.now(),
                                               lease_expires=timezone.now() + lease_duration())

    def latest() -> int | None:
        newest = Revision.objects.filter(case=case).order_by("-number").first()
        return newest.pk if newest else None

    browser = Client()
    browser.force_login(user)
    slicer = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    times: dict[str, list[float]] = {"NIfTI, POST /api/tasks/{id}/revisions/": [],
                                     "NRRD, PUT /monailabel/datastore/label": []}
    for _ in range(repeat + 1):  # the first of each is a warm-up
        lease_again()
        body = {"file": io.BytesIO(nifti.getvalue()), "seconds_spent": "30"}
        body["file"].name = "label.nii.gz"
        if (base := latest()) is not None:
            body["base_revision"] = str(base)
        t0 = time.perf_counter()
        response = browser.post(f"/api/tasks/{task.pk}/revisions/", body)
        times["NIfTI, POST /api/tasks/{id}/revisions/"].append(time.perf_counter() - t0)
        assert response.status_code == 201, response.content[:300]
        lease_again()
        sample = slicer.post("/monailabel/activelearning/attention", "{}", content_type="application/json").json()
        part = io.BytesIO(nrrd)
        part.name = "label.nrrd"
        payload = encode_multipart(BOUNDARY, {"label": part, "params": label_info})
        t0 = time.perf_counter()
        response = slicer.put(f"/monailabel/datastore/label?image={sample['id']}&tag=final", payload,
                              content_type=MULTIPART_CONTENT)
        times["NRRD, PUT /monailabel/datastore/label"].append(time.perf_counter() - t0)
        assert response.status_code == 200, response.content[:300]
    return {door: values[1:] for door, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[512, 512, 300])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline-tree", type=Path, help="another checkout, timed first as the baseline")
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)  # internal: time this checkout, print JSON
    args = parser.parse_args()
    if args.root is not None:
        print(json.dumps(run_one(args.root, tuple(args.shape), args.repeat)))
        return
    print(f"machine load before: {os.getloadavg()[0]:.1f} (1 min) on {os.cpu_count()} CPUs; "
          f"label {' x '.join(map(str, args.shape))}, {args.repeat} uploads per door, medians")
    trees = ([("baseline", args.baseline_tree.resolve())] if args.baseline_tree else []) + [("this tree", HERE)]
    results = {}
    for name, root in trees:
        out = subprocess.run([sys.executable, __file__, "--root", str(root), "--repeat", str(args.repeat),
                              "--shape", *map(str, args.shape)], check=True, capture_output=True, text=True, cwd=root)
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    for door in results["this tree"]:
        now = statistics.median(results["this tree"][door])
        line = f"{door:42s} this tree {now * 1000:7.0f} ms (min {min(results['this tree'][door]) * 1000:.0f})"
        if "baseline" in results:
            then = statistics.median(results["baseline"][door])
            line += (f"   baseline {then * 1000:7.0f} ms (min {min(results['baseline'][door]) * 1000:.0f})   "
                     f"added {(now - then) * 1000:+.0f} ms, ratio {now / then:.2f}")
        print(line)
    print(f"machine load after: {os.getloadavg()[0]:.1f} (1 min)")


if __name__ == "__main__":
    main()
