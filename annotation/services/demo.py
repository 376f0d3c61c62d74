"""The demo: users in each role and a dataset of synthetic phantoms, some labelled, most not."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.contrib.auth.models import User

from annotation.services.imports import ImportReport, import_cases
from annotation.services.users import create_user
from ml_engine.phantoms import ORGANS, make_phantom, write_phantom_case

DEMO_USERS = (("admin", "admin"), ("lead", "lead"), ("annotator1", "annotator"), ("annotator2", "annotator"))
DEMO_DATASET = "demo"

# Which organs each labelled case comes with: the rest of the cases are unlabelled.
PARTIAL = (("liver", "spleen"), ("kidney_right", "kidney_left"), ("pancreas",), ("aorta", "postcava", "stomach"))


@dataclass
class DemoReport:
    created_users: dict[str, str] = field(default_factory=dict)  # username -> password, new users only
    existing_users: list[str] = field(default_factory=list)
    imported: ImportReport | None = None


def labelled_organs(index: int, *, n_full: int) -> tuple[str, ...]:
    """The organs case `index` is labelled with: all for the first n_full, then partial, then none."""
    if index < n_full:
        return ORGANS
    if index < n_full + len(PARTIAL):
        return PARTIAL[index - n_full]
    return ()


def seed_demo(*, n_cases: int = 16, n_full: int = 3, seed: int = 2024, shape: tuple[int, int, int] = (96, 96, 64),
              progress: Callable[[int, int, str], None] | None = None) -> DemoReport:
    """Create the demo users (random passwords, reported once) and import n_cases phantoms. Idempotent."""
    report = DemoReport()
    for username, role in DEMO_USERS:
        if User.objects.filter(username=username).exists():
            report.existing_users.append(username)
            continue
        password = secrets.token_urlsafe(9)
        create_user(username=username, role=role, password=password)
        report.created_users[username] = password
    with tempfile.TemporaryDirectory(prefix="atlas-demo-") as tmp:
        root = Path(tmp)
        for i in range(n_cases):
            phantom = make_phantom(seed * 1000 + i, shape=shape, name=f"demo_{i:03d}")
            write_phantom_case(phantom, root, organs=labelled_organs(i, n_full=n_full))
        report.imported = import_cases(root, dataset=DEMO_DATASET, label_set="abdomenatlas", progress=progress)
    return report
