"""20 annotators ask for their next task at the same moment: nobody gets a task someone else got.

Runs on whichever database is configured: PostgreSQL (SKIP LOCKED) in CI's second run, SQLite in the first.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from annotation.models import Task
from annotation.services.users import create_user
from tests.api.conftest import build_world

pytestmark = pytest.mark.django_db(transaction=True)


def test_twenty_concurrent_next_requests_get_distinct_tasks(tmp_path, settings):
    build_world(tmp_path, {f"case{i:02d}": float(100 - i) for i in range(24)})
    annotators = [create_user(username=f"ann{i:02d}", role="annotator", password="pw-123456789") for i in range(20)]
    barrier = threading.Barrier(len(annotators))
    got: dict[str, int] = {}
    errors: list[BaseException] = []

    def ask(user):
        try:
            api = APIClient()
            api.force_authenticate(user)
            barrier.wait()
            response = api.post("/api/tasks/next/")
            assert response.status_code == 200, response.content
            got[user.username] = response.json()["id"]
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=ask, args=(user,)) for user in annotators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(got) == 20 and len(set(got.values())) == 20
    leased = Task.objects.filter(status=Task.Status.LEASED)
    assert leased.count() == 20
    assert {t.lease_holder.username: t.pk for t in leased} == got
    # the 20 highest priorities were handed out, the 4 lowest are left
    assert set(Task.objects.filter(status=Task.Status.PENDING).values_list("case__name", flat=True)) == {
        "case20", "case21", "case22", "case23"}
