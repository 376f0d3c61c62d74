"""A stateful property test of the lease (annotation.services.queue): random interleavings of next / heartbeat / skip /
confirm / assign by 2-4 annotators, with a clock that jumps (to the exact expiry too), against a model of the rules
written from the docstrings:

- lease_next: expired leases (expires < now) go back to the pool first; a task the user holds comes back renewed
  (highest priority, then id, first); else the first open task (pending or skipped) by (-priority, id) assigned to
  them, else the first unassigned one, never one they skipped; None when nothing is left;
- heartbeat, skip, confirm need a live lease (held by the user, expires >= now): QueueError when the task is not
  leased to them, LeaseExpired when it ran out; skip and confirm end the lease; confirming their own confirmed task
  again is a RevisionConflict;
- after every step: the database holds what the model says; a LEASED task has a holder and an expiry and no other task
  does; nobody holds two leases; lease_next never hands out a task someone else holds live.

Real threads racing for tasks are tests/api/test_queue_concurrency.py; this is about the order of operations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from annotation.models import Skip, Task
from annotation.services import queue, revisions
from annotation.services.users import create_user
from tests.api.conftest import PASSWORD, build_world

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=30)
USERS = ("a1", "a2", "a3", "a4")


@dataclass
class Row:
    """The model of one task."""

    priority: float
    status: str = "pending"
    holder: str | None = None
    expires: datetime | None = None
    assignee: str | None = None
    confirmed_by: str | None = None


def lease_machine(world):
    users = {name: world.users.get(name) or create_user(username=name, role="annotator", password=PASSWORD)
             for name in USERS}
    task_ids = sorted(Task.objects.filter(round=world.round).values_list("pk", flat=True))
    indices = st.integers(0, len(task_ids) - 1)
    targets = st.integers(-3, len(task_ids) - 1)  # below 0 (most often): a task someone holds

    class Lease(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self._atomic = transaction.atomic()  # each example runs in a savepoint that teardown rolls back
            self._atomic.__enter__()
            self.now = T0
            self.rows = {t.pk: Row(priority=t.priority) for t in Task.objects.filter(pk__in=task_ids)}
            self.skips: set[tuple[int, str]] = set()
            self.names = list(USERS[:2])
            self.last: dict[str, int] = {}  # the task each user was given last

        def teardown(self):
            transaction.set_rollback(True)
            self._atomic.__exit__(None, None, None)

        @initialize(n=st.integers(2, 4))
        def annotators(self, n):
            self.names = list(USERS[:n])

        # --- the model ---------------------------------------------------------------------------------------
        def live(self, row: Row) -> bool:
            return row.status == "leased" and row.expires >= self.now

        def expected_next(self, name: str) -> int | None:
            for row in self.rows.values():
                if row.status == "leased" and row.expires < self.now:
                    row.status, row.holder, row.expires = "pending", None, None
            order = sorted(self.rows, key=lambda pk: (-self.rows[pk].priority, pk))
            held = [pk for pk in order if self.rows[pk].status == "leased" and self.rows[pk].holder == name]
            if held:
                return held[0]
            open_ = [pk for pk in order
                     if self.rows[pk].status in ("pending", "skipped") and (pk, name) not in self.skips]
            mine = [pk for pk in open_ if self.rows[pk].assignee == name]
            free = [pk for pk in open_ if self.rows[pk].assignee is None]
            return (mine + free + [None])[0]

        def expected_error(self, name: str, pk: int) -> type[Exception] | None:
            row = self.rows[pk]
            if row.status != "leased" or row.holder != name:
                return queue.QueueError
            if row.expires < self.now:
                return queue.LeaseExpired
            return None

        # --- the rules ---------------------------------------------------------------------------------------
        @rule(who=st.integers(0, 3))
        def lease_next(self, who):
            name = self.names[who % len(self.names)]
            before = {pk: (row.status, row.holder, row.expires) for pk, row in self.rows.items()}
            want = self.expected_next(name)
            got = queue.lease_next(user=users[name], now=self.now)
            assert (got.pk if got else None) == want
            if got is not None:
                status, holder, expires = before[got.pk]
                assert not (status == "leased" and holder != name and expires >= self.now), "a live lease was taken"
                row = self.rows[got.pk]
                row.status, row.holder, row.expires = "leased", name, self.now + LEASE
                self.last[name] = got.pk

        def target(self, who, which) -> tuple[str, int]:
            name = self.names[who % len(self.names)]
            if which < 0:  # a holder and their task (live or run out), else the task this user was given last
                held = sorted((row.holder, pk) for pk, row in self.rows.items() if row.holder)
                return held[who % len(held)] if held else (name, self.last.get(name, task_ids[0]))
            return name, task_ids[which]

        @rule(who=st.integers(0, 3))
        def lease_next_too(self, who):  # asking for the next task is the commonest operation: twice the weight
            self.lease_next(who)

        def attempt(self, name, pk, call):
            error = self.expected_error(name, pk)
            if error is None:
                call()
                return True
            with pytest.raises(error) as caught:
                call()
            assert type(caught.value) is error  # a lease that ran out is LeaseExpired, not the 403
            return False

        @rule(who=st.integers(0, 3), which=targets)
        def heartbeat(self, who, which):
            name, pk = self.target(who, which)
            if self.attempt(name, pk, lambda: queue.heartbeat(task_id=pk, user=users[name], now=self.now)):
                self.rows[pk].expires = self.now + LEASE

        @rule(who=st.integers(0, 3), which=targets)
        def skip(self, who, which):
            name, pk = self.target(who, which)
            if self.attempt(name, pk, lambda: queue.skip(task_id=pk, user=users[name], reason="unclear", now=self.now)):
                row = self.rows[pk]
                row.status, row.holder, row.expires = "skipped", None, None
                self.skips.add((pk, name))

        @rule(who=st.integers(0, 3), which=targets)
        def confirm(self, who, which):
            name, pk = self.target(who, which)
            row = self.rows[pk]

            def call():
                revisions.confirm(task_id=pk, user=users[name], base_revision=None, now=self.now)

            if row.confirmed_by == name:  # their own revision ended the lease: 409 with it, not 403
                with pytest.raises(revisions.RevisionConflict):
                    call()
                return
            if self.attempt(name, pk, call):
                row.status, row.holder, row.expires, row.confirmed_by = "confirmed", None, None, name

        @rule(who=st.integers(0, 4), which=indices)
        def assign(self, who, which):
            name = self.names[who] if who < len(self.names) else None
            pk = task_ids[which]
            assert queue.assign(annotator=users[name] if name else None, task_ids=[pk]) == 1
            self.rows[pk].assignee = name

        @rule(step=st.sampled_from([timedelta(0), timedelta(seconds=1), timedelta(minutes=10), LEASE, LEASE,
                                    LEASE + timedelta(seconds=1), timedelta(hours=2)]))  # the exact expiry, often
        def advance(self, step):
            self.now += step

        # --- after every step --------------------------------------------------------------------------------
        @invariant()
        def the_database_is_the_model(self):
            by_pk = {u.pk: name for name, u in users.items()}
            holders: dict[str, int] = {}
            for task in Task.objects.filter(pk__in=task_ids):
                row = self.rows[task.pk]
                holder = by_pk.get(task.lease_holder_id)
                assert (task.status, holder, task.lease_expires) == (row.status, row.holder, row.expires), task.pk
                assert by_pk.get(task.assignee_id) == row.assignee
                if task.status == Task.Status.LEASED:
                    assert holder is not None and task.lease_expires is not None
                    assert holder not in holders, f"{holder} holds tasks {holders.get(holder)} and {task.pk}"
                    holders[holder] = task.pk
                else:
                    assert task.lease_holder_id is None and task.lease_expires is None
            assert set(Skip.objects.filter(task__in=task_ids).values_list("task_id", "user__username")) == self.skips

    return Lease


def test_random_interleavings_keep_the_lease_rules(tmp_path, settings):
    settings.ATLAS_LEASE_MINUTES = LEASE.total_seconds() / 60
    # a tie in priority (c0, c1) so that the id breaks it; four tasks for up to four annotators
    world = build_world(tmp_path, {"c0": 30.0, "c1": 30.0, "c2": 50.0, "c3": 10.0})
    run_state_machine_as_test(lease_machine(world), settings=hsettings(
        max_examples=50, stateful_step_count=30, deadline=None, derandomize=True))
