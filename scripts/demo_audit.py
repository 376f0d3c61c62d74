"""The README's "How good is my dataset?" on the demo: an auto-accept rule and an audit sample on the annotating round,
the audit read by scripted annotators, and an export whose dataset card states the quality of what nobody revised.

    .venv/bin/python scripts/demo_audit.py OUT [--auto-accept-ml 40] [--audit-size 8] [--audit-double 1]
                                           [--audit-worked 4] [--audit-stop 0.5] [--audit-ml 5] [--seed 0]

Run it after `make demo` (or `manage.py seed_demo` and `manage.py start_round --steps 20 --wait`). Jobs run in this
process (no worker needed). The scripted annotators submit each audit case's true label (the demo's phantoms are
regenerated from their seeds, as annotation.services.demo made them) with a boundary that wanders (a smooth random
displacement of sd `--rater-mm`, a fresh one per read, ml_engine.attention.simulate; 0: the truth itself), so that the
card shows an inter-annotator agreement and the audit's correction for it. The lead adjudicates each double read
taking read 1.
Prints DATASET.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas.settings")
os.environ["ATLAS_JOB_ENQUEUE"] = "__main__.run_here"


def run_here(job) -> None:
    from annotation.services import jobs

    jobs.run_job(job.pk)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--auto-accept-ml", type=float, default=40.0)
    parser.add_argument("--audit-size", type=int, default=8)
    parser.add_argument("--audit-double", type=float, default=1.0)
    parser.add_argument("--audit-worked", type=int, default=4)
    parser.add_argument("--audit-stop", type=float, default=0.5)
    parser.add_argument("--audit-ml", type=float, default=5.0, help="a correction of more than this many mL counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rater-mm", type=float, default=1.0, help="the readers' boundary noise (sd, mm)")
    args = parser.parse_args()

    import django

    django.setup()
    import numpy as np
    from django.contrib.auth.models import User
    from django.db import transaction

    from annotation.models import Audit, DoubleRead, Task
    from annotation.selectors.audit import audit_board
    from annotation.selectors.rounds import current_round
    from annotation.services import audit, double_reads, queue, revisions
    from annotation.services.demo import DEMO_DATASET
    from annotation.services.export import export_dataset
    from annotation.services.metrics import update_round_metrics
    from ml_engine.attention.simulate import simulate_organ
    from ml_engine.io import write_nifti
    from ml_engine.phantoms import make_phantom

    round = current_round(annotating=True)
    if round is None:
        print("no round is annotating: run `make demo` (or start_round --wait) first", file=sys.stderr)
        return 1
    if not Audit.objects.filter(round=round).exists():
        with transaction.atomic():
            audit.set_plan(round=round, auto_accept={"max_attention_ml": args.auto_accept_ml, "no_qc_flag": True},
                           audit={"size": args.audit_size, "seed": args.seed, "double_reads": args.audit_double,
                                  "worked": args.audit_worked, "thresholds": {"ml": args.audit_ml}},
                           audit_stop=args.audit_stop)
    drawn = Audit.objects.get(round=round)
    print(f"round {round.number}: {drawn.size} audit cases drawn; "
          f"{round.auto_accepted.count()} cases auto-accepted")

    def truth(case) -> np.ndarray:
        index = int(case.name.rsplit("_", 1)[1])
        return make_phantom(2024 * 1000 + index, shape=tuple(case.shape), name=case.name).labels

    def noisy(labels: np.ndarray, spacing, seed: int) -> np.ndarray:
        out = np.zeros_like(labels)
        for value in range(1, int(labels.max()) + 1):
            maps, _ = simulate_organ(labels == value, spacing=spacing, models=1, seed=seed * 100 + value,
                                     jitter_mm=args.rater_mm, edge_mm=0.05)
            out[(maps[0] > 127) & (out == 0)] = value
        return out

    audit_tasks = set(drawn.cases.values_list("task_id", flat=True))
    audit_tasks |= set(DoubleRead.objects.filter(first_id__in=audit_tasks).values_list("second_id", flat=True))
    with tempfile.TemporaryDirectory() as tmp:
        for user in User.objects.filter(groups__name="annotator").order_by("username"):
            while Task.objects.filter(pk__in=audit_tasks, assignee=user, status__in=Task.OPEN).exists():
                task = queue.lease_next(user=user)
                assert task.pk in audit_tasks, task
                label = truth(task.case)
                if args.rater_mm > 0:
                    label = noisy(label, [float(s) for s in task.case.spacing], task.pk)
                upload = write_nifti(Path(tmp) / f"{task.pk}.nii.gz", label, np.asarray(task.case.affine),
                                     dtype=np.uint8)
                revisions.submit_revision(task_id=task.pk, user=user, upload=upload, base_revision=None,
                                          seconds_spent=300)
        lead = User.objects.get(username="lead")
        for pair in DoubleRead.objects.filter(round=round, adjudicated__isnull=True, first_id__in=audit_tasks):
            first, _ = audit.read_agreement.latest_reads(pair)
            double_reads.adjudicate(revision_id=first.pk, reviewer=lead, take=1, comment="demo: reads agree")
    update_round_metrics(round_id=round.pk)  # which member is right where, against the reads
    board = audit_board(round)
    print(f"stopped by: {board['stopping']['stopped_by'] or 'not stopped'}")
    export_dataset(args.out, format="abdomenatlas", datasets=[DEMO_DATASET])
    print((Path(args.out) / "DATASET.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
