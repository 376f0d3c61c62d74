"""Which round is current (selectors.rounds.current_round) and a round named by its number (round_by_number): one
home, asked by the views, the commands, the queue and Slicer's door."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.errors import NotFound
from annotation.models import LabelSet, Round
from annotation.selectors.rounds import annotating_round, current_round, round_by_number, shown_round
from annotation.services import monailabel

pytestmark = pytest.mark.django_db


def test_no_round_yet():
    assert current_round() is None and current_round(annotating=True) is None and shown_round() is None
    with pytest.raises(NotFound, match="round 0 does not exist") as refused:
        round_by_number(0)
    assert refused.value.field == "round" and refused.value.status_code == 404
    with pytest.raises(NotFound, match="no round yet"):
        annotating_round()


def test_the_current_round_by_state_and_label_set():
    atlas, word = LabelSet.objects.get(name="abdomenatlas"), LabelSet.objects.get(name="word")
    closed = Round.objects.create(number=0, label_set=atlas, status=Round.Status.CLOSED)
    annotating = Round.objects.create(number=1, label_set=atlas, status=Round.Status.ANNOTATING)
    training = Round.objects.create(number=2, label_set=word, status=Round.Status.TRAINING)
    assert current_round() == training  # the latest, whatever its state
    assert current_round(annotating=True) == annotating == shown_round()
    assert current_round(label_set=atlas) == annotating and current_round(label_set=word.pk) == training
    assert round_by_number(0) == closed
    assert monailabel._label_set() == atlas  # Slicer sees the annotating round's label set
    with pytest.raises(NotFound, match="round 7 does not exist") as refused:
        round_by_number(7, field=None)
    assert refused.value.field is None
    for command in ("round_status", "resume_round"):
        with pytest.raises(CommandError, match="^round 7 does not exist$"):
            call_command(command, "7")
