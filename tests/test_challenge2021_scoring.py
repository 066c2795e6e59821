"""The Challenge 2021 metric against its definition (tests/data/challenge2021/scoring/README.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgjepa.data.challenge2021_scoring import TABLES, ChallengeScoring
from tests.helpers import DATA

AF, SR, LBBB, CLBBB = "164889003", "426783006", "164909002", "733534002"


@pytest.fixture(scope="module")
def scoring() -> ChallengeScoring:
    return ChallengeScoring.load()


def dx_codes(header: Path) -> list[str]:
    comments = wfdb.rdheader(str(header.with_suffix(""))).comments
    line = next(c for c in comments if c.startswith("Dx:"))
    return [code.strip() for code in line.split(":", 1)[1].split(",")]


def test_the_shipped_tables_are_the_official_ones(scoring: ChallengeScoring) -> None:
    official = DATA / "challenge2021" / "scoring" / "weights.csv"
    assert (TABLES / "weights.csv").read_bytes() == official.read_bytes()
    assert len(scoring.classes) == 26 and scoring.weights.shape == (26, 26)
    assert np.array_equal(scoring.weights, scoring.weights.T) and (np.diag(scoring.weights) == 1).all()


def test_perfect_outputs_score_one_and_always_sinus_rhythm_zero(scoring: ChallengeScoring) -> None:
    headers = sorted((DATA / "challenge2021").glob("*/*.hea"))
    labels = scoring.encode(dx_codes(h) for h in headers)
    assert labels.any(axis=1).sum() >= 40  # most of the real records carry a scored diagnosis
    assert scoring.score(labels, labels) == pytest.approx(1.0)
    always_sinus = np.zeros_like(labels)
    always_sinus[:, scoring.classes.index(SR)] = True
    assert scoring.score(labels, always_sinus) == pytest.approx(0.0)
    assert scoring.score(labels, np.zeros_like(labels)) < 1.0


def test_an_equivalent_code_pair_is_one_class(scoring: ChallengeScoring) -> None:
    both, plain, complete = scoring.encode([[LBBB, CLBBB], [LBBB], [CLBBB, "0000"]])
    assert both.sum() == plain.sum() == complete.sum() == 1  # unscored codes are ignored
    assert np.array_equal(both, plain) and np.array_equal(plain, complete)


def test_a_hand_computed_case(scoring: ChallengeScoring) -> None:
    """Labels AF and SR; outputs AF for both. Observed: W[AF,AF] + W[SR,AF] / 2 (the second record has 2 classes
    in its labels or outputs); correct: W[AF,AF] + W[SR,SR]; inactive (SR for both): W[AF,SR] / 2 + W[SR,SR]."""
    af, sr = scoring.classes.index(AF), scoring.classes.index(SR)
    w = scoring.weights
    labels = scoring.encode([[AF], [SR]])
    outputs = scoring.encode([[AF], [AF]])
    observed = w[af, af] + w[sr, af] / 2
    correct = w[af, af] + w[sr, sr]
    inactive = w[af, sr] / 2 + w[sr, sr]
    assert scoring.score(labels, outputs) == pytest.approx((observed - inactive) / (correct - inactive))


def test_shapes_are_checked(scoring: ChallengeScoring) -> None:
    with pytest.raises(ValueError, match=r"must both be \(records, 26\)"):
        scoring.score(np.zeros((2, 3), dtype=bool), np.zeros((2, 3), dtype=bool))
