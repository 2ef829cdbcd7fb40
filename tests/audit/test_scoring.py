"""The audit's verdict on one listing, from model probabilities (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from baghunter.audit.scoring import (
    AuditThresholds,
    Finding,
    assess,
    findings_for,
    match_class,
)
from baghunter.config import Settings

COLOURS = ["Black", "Brown", "Navy Blue", "Red"]
DEFAULT = AuditThresholds(min_confidence=0.8, max_claimed_probability=0.05)


def colour(*probs: float) -> dict[str, tuple[list[str], np.ndarray]]:
    return {"baseColour": (COLOURS, np.array(probs, dtype=np.float32))}


def test_a_sure_model_that_rules_out_the_claim_flags_it() -> None:
    [finding] = findings_for({"baseColour": "Black"}, colour(0.01, 0.0, 0.02, 0.97), DEFAULT)

    assert finding == Finding(
        field="baseColour",
        claimed="Black",
        predicted="Red",
        confidence=pytest.approx(0.97),
        claimed_probability=pytest.approx(0.01),
    )


def test_agreeing_with_the_claim_is_never_a_finding() -> None:
    result = assess({"baseColour": "Red"}, colour(0.01, 0.0, 0.02, 0.97), DEFAULT)

    assert result.findings == []
    assert result.scored == ["baseColour"]


@pytest.mark.parametrize(
    ("probs", "flagged"),
    [
        ((0.05, 0.0, 0.15, 0.80), True),  # both thresholds met exactly: inclusive
        ((0.05, 0.0, 0.16, 0.79), False),  # not sure enough of its own answer
        ((0.06, 0.0, 0.0, 0.94), False),  # the claim is still plausible to the model
    ],
)
def test_both_thresholds_must_hold(probs: tuple[float, ...], flagged: bool) -> None:
    probs64 = {"baseColour": (COLOURS, np.array(probs, dtype=np.float64))}

    findings = findings_for({"baseColour": "Black"}, probs64, DEFAULT)

    assert bool(findings) is flagged


def test_thresholds_come_from_the_settings_and_are_checked() -> None:
    settings = Settings(_env_file=None, audit_min_confidence=0.6, audit_max_claimed_probability=0.2)  # type: ignore[call-arg]

    loose = AuditThresholds.from_settings(settings)

    assert loose == AuditThresholds(min_confidence=0.6, max_claimed_probability=0.2)
    assert findings_for({"baseColour": "Black"}, colour(0.15, 0.0, 0.2, 0.65), loose)
    assert not findings_for({"baseColour": "Black"}, colour(0.15, 0.0, 0.2, 0.65), DEFAULT)
    with pytest.raises(ValueError, match="min_confidence"):
        AuditThresholds(min_confidence=0.0)
    with pytest.raises(ValueError, match="max_claimed_probability"):
        AuditThresholds(max_claimed_probability=1.0)


def test_a_claim_the_model_has_no_class_for_is_unscorable_not_a_finding() -> None:
    result = assess(
        {"baseColour": "Magenta", "gender": "Men"},
        {**colour(0.0, 0.0, 0.0, 1.0), "gender": (["Men", "Women"], np.array([0.01, 0.99]))},
        DEFAULT,
    )

    assert result.unscorable == ["baseColour"]
    assert result.scored == ["gender"]
    assert [f.field for f in result.findings] == ["gender"]


def test_claims_match_classes_ignoring_case_and_spacing() -> None:
    brands = {"brand": (["Aurelia", "Borsetti"], np.array([0.02, 0.98]))}

    [finding] = findings_for({"brand": "  aURELIA "}, brands, DEFAULT)
    navy = findings_for({"baseColour": "navy  blue"}, colour(0.0, 0.0, 0.99, 0.01), DEFAULT)

    assert (finding.claimed, finding.predicted) == ("  aURELIA ", "Borsetti")
    assert navy == []  # "navy  blue" is the class "Navy Blue", which the model agrees with


def test_an_exact_match_wins_and_an_ambiguous_one_matches_nothing() -> None:
    assert match_class("Blue", ["BLUE", "Blue"]) == 1
    assert match_class("blue", ["BLUE", "Blue"]) is None
    assert match_class("Green", ["BLUE", "Blue"]) is None


def test_fields_without_a_prediction_or_a_claim_are_not_judged() -> None:
    result = assess(
        {"baseColour": "", "season": "Summer", "gender": None},
        colour(0.0, 0.0, 0.0, 1.0),
        DEFAULT,
    )

    assert (result.findings, result.scored, result.unscorable) == ([], [], [])


def test_fields_are_judged_in_claim_order() -> None:
    predictions = {
        **colour(0.0, 0.0, 0.0, 1.0),
        "gender": (["Men", "Women"], np.array([0.0, 1.0])),
    }

    findings = findings_for({"gender": "Men", "baseColour": "Brown"}, predictions, DEFAULT)

    assert [f.field for f in findings] == ["gender", "baseColour"]


def test_probabilities_of_another_model_are_refused() -> None:
    with pytest.raises(ValueError, match="3 probabilities for 4 classes"):
        findings_for({"baseColour": "Black"}, colour(0.1, 0.2, 0.7), DEFAULT)
