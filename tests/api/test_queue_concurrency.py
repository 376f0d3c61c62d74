"""20 annotators ask for their next task at the same moment: nobody gets a task someone else got.

Runs on whichever database is configured: PostgreSQL (SKIP LOCKED) in CI's second run, SQLite in the first.
"""

from __future__ import annotations

import pytest

from annotation.models import Task
from annotation.services.users import create_user
from tests.api.conftest import at_once, build_world

pytestmark = pytest.mark.django_db(transaction=True)


def test_twenty_concurrent_next_requests_get_distinct_tasks(tmp_path, settings):
    build_world(tmp_path, {f"case{i:02d}": float(100 - i) for i in range(24)})
    annotators = [create_user(username=f"ann{i:02d}", role="annotator", password="pw-123456789") for i in range(20)]
    got = at_once(annotators, "/api/tasks/next/")
    assert len(got) == 20 and len(set(got.values())) == 20
    leased = Task.objects.filter(status=Task.Status.LEASED)
    assert leased.count() == 20
    assert {t.lease_holder.username: t.pk for t in leased} == got
    # the 20 highest priorities were handed out, the 4 lowest are left
    assert set(Task.objects.filter(status=Task.Status.PENDING).values_list("case__name", flat=True)) == {
        "case20", "case21", "case22", "case23"}
