"""Direct tests of two state changes that the workflow tests only cross: revisions.organ_changes and
queue.release_expired."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from annotation.models import Task
from annotation.services import queue
from annotation.services.revisions import organ_changes

ORGANS = {1: "spleen", 5: "liver", 9: "pancreas"}


def test_organ_changes_counts_voxels_per_organ_and_their_dice():
    reference = np.zeros((4, 4, 4), np.uint8)
    reference[0, :2] = 1  # 8 spleen voxels
    reference[1:3] = 5  # 32 liver voxels
    new = reference.copy()
    new[0, 0] = 0  # 4 spleen voxels erased
    new[3, 0] = 5  # 4 liver voxels added
    new[1, 0, 0] = 9  # 1 liver voxel becomes pancreas
    changed, dice = organ_changes(new, reference, ORGANS)
    assert changed == {"spleen": 4, "liver": 4 + 1, "pancreas": 1}
    assert dice["spleen"] == pytest.approx(2 * 4 / (8 + 4))
    assert dice["liver"] == pytest.approx(2 * 31 / (32 + 35), abs=1e-6)
    assert dice["pancreas"] == 0.0  # one voxel in new, none in reference


def test_organ_changes_against_nothing_and_of_empty_organs():
    new = np.zeros((3, 3, 3), np.uint8)
    new[0, 0, 0] = 5
    changed, dice = organ_changes(new, None, ORGANS)
    assert changed == {"spleen": 0, "liver": 1, "pancreas": 0}
    assert dice == {"spleen": 1.0, "liver": 0.0, "pancreas": 1.0}  # both empty: Dice 1 (FLARE)


@pytest.mark.django_db
def test_release_expired_frees_only_leases_past_their_expiry(world):
    now = timezone.now()
    a1, a2 = world.users["a1"], world.users["a2"]
    big, mid, small = world.task("big"), world.task("mid"), world.task("small")
    Task.objects.filter(pk=big.pk).update(status=Task.Status.LEASED, lease_holder=a1,
                                          lease_expires=now - timedelta(seconds=1))
    Task.objects.filter(pk=mid.pk).update(status=Task.Status.LEASED, lease_holder=a2,
                                          lease_expires=now + timedelta(minutes=5))
    Task.objects.filter(pk=small.pk).update(status=Task.Status.REVISED)
    assert queue.release_expired(now=now) == 1
    big.refresh_from_db()
    mid.refresh_from_db()
    small.refresh_from_db()
    assert (big.status, big.lease_holder, big.lease_expires) == (Task.Status.PENDING, None, None)
    assert (mid.status, mid.lease_holder_id) == (Task.Status.LEASED, a2.pk)  # still within its lease
    assert small.status == Task.Status.REVISED  # finished work is never touched
    assert queue.release_expired(now=now) == 0  # nothing left to free
    assert queue.release_expired(now=now + timedelta(minutes=6)) == 1
