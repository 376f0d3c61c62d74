"""seed_demo: users in each role, phantoms imported with full, partial and no labels; idempotent."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import call_command

from annotation.models import Case, Dataset
from annotation.services.demo import PARTIAL

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def run(*args) -> str:
    out = io.StringIO()
    call_command("seed_demo", *args, "--verbosity", "0", stdout=out)
    return out.getvalue()


def test_seed_demo(settings):
    output = run("--cases", "9", "--labelled", "2")
    logins = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2].startswith("("):
            logins[parts[0]] = (parts[1], parts[2].strip("()"))
    assert set(logins) == {"admin", "lead", "annotator1", "annotator2"}
    for username, (password, role) in logins.items():
        user = authenticate(username=username, password=password)
        assert user is not None, username
        assert list(user.groups.values_list("name", flat=True)) == [role]
    assert User.objects.get(username="admin").is_superuser
    assert not User.objects.get(username="annotator1").is_staff

    dataset = Dataset.objects.get(name="demo")
    assert dataset.label_set.name == "abdomenatlas"
    cases = list(Case.objects.filter(dataset=dataset).order_by("name"))
    assert len(cases) == 9
    covered = [sorted(o.name for s in c.source_labels.all() for o in s.organs.all()) for c in cases]
    assert all(len(c) == 9 for c in covered[:2])  # fully labelled
    assert covered[2:6] == [sorted(p) for p in PARTIAL]  # partial
    assert covered[6:] == [[], [], []]  # unlabelled

    again = run("--cases", "9", "--labelled", "2")
    assert "0 cases imported, 9 already present" in again
    assert "existing demo users kept" in again and "annotator1" in again
    assert Case.objects.count() == 9 and User.objects.count() == 4


def test_seed_demo_rejects_bad_counts():
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="--cases must be at least 1"):
        run("--cases", "0")
