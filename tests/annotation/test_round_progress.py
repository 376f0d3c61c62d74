"""start_round --wait's bar: one monotone bar over the round's steps (training, inferring, ranking), computed from
the round's status and its jobs as the command polls them."""

from __future__ import annotations

import re

import pytest

from annotation.management.progress import round_fraction, round_progress

T, INF, A, R = "train", "infer", "attend", "rank"
Q, RUN, OK = "queued", "running", "succeeded"

# What the command sees polling a round of 3 architectures and 2 cases (a GPU worker: each infer job adds its case's
# attend job as it ends), step by step.
POLLS = [
    ("training", [(T, RUN, 0.0), (T, Q, 0.0), (T, Q, 0.0)]),
    ("training", [(T, OK, 1.0), (T, RUN, 0.5), (T, Q, 0.0)]),
    ("training", [(T, OK, 1.0), (T, OK, 1.0), (T, RUN, 0.9)]),
    ("inferring", [(T, OK, 1.0)] * 3 + [(INF, Q, 0.0), (INF, Q, 0.0)]),  # jobs so far: 96% -> 60%
    ("inferring", [(T, OK, 1.0)] * 3 + [(INF, RUN, 0.8), (INF, Q, 0.0)]),
    ("inferring", [(T, OK, 1.0)] * 3 + [(INF, OK, 1.0), (INF, RUN, 0.2), (A, RUN, 0.0)]),  # an attend job joins
    ("inferring", [(T, OK, 1.0)] * 3 + [(INF, OK, 1.0), (INF, OK, 1.0), (A, OK, 1.0), (A, RUN, 0.5)]),
    ("ranking", [(T, OK, 1.0)] * 3 + [(INF, OK, 1.0)] * 2 + [(A, OK, 1.0)] * 2 + [(R, Q, 0.0)]),
    ("annotating", [(T, OK, 1.0)] * 3 + [(INF, OK, 1.0)] * 2 + [(A, OK, 1.0)] * 2 + [(R, OK, 1.0)]),
]


def test_each_step_is_a_third_of_the_bar():
    fractions = [round_fraction(status, jobs) for status, jobs in POLLS]
    assert fractions[0] == 0.0
    assert fractions[2] == pytest.approx((2 + 0.9) / 3 / 3)
    assert fractions[3] == pytest.approx(1 / 3)  # training done, no infer job started
    assert fractions[6] == pytest.approx(1 / 3 + 3.5 / 4 / 3)
    assert fractions[7] == pytest.approx(2 / 3) and fractions[8] == 1.0
    # from one step to the next the bar only goes forward; the old count of jobs so far went back
    for before, after in zip([0, 1, 2, 6], [1, 2, 3, 7], strict=True):
        assert fractions[after] >= fractions[before]


def test_a_round_with_no_training_starts_its_inference_at_a_third():
    assert round_fraction("inferring", [(INF, Q, 0.0)]) == pytest.approx(1 / 3)
    assert round_fraction("training", []) == 0.0


def test_a_failed_or_cancelled_round_leaves_the_bar_where_it_was():
    assert round_fraction("failed", [(T, OK, 1.0)]) is None
    assert round_fraction("cancelled", []) is None
    assert round_fraction("closed", []) == 1.0


def test_the_bar_never_goes_back(capsys):
    with round_progress("round 0", verbosity=1) as progress:
        for status, jobs in POLLS:
            progress(status, jobs)
    shown = [int(p) for p in re.findall(r"round 0:\s+(\d+)%", capsys.readouterr().err)]
    assert shown[0] == 0 and shown[-1] == 100
    assert shown == sorted(shown), shown
    assert 66 in shown or 67 in shown  # the ranking step starts at two thirds


def test_verbosity_0_shows_nothing(capsys):
    with round_progress("round 0", verbosity=0) as progress:
        progress("training", [(T, RUN, 0.5)])
    assert capsys.readouterr().err == ""
