"""Deciding whether a listing's photo disagrees with what its seller wrote.

One pure function, shared by the catalog-wide audit (:mod:`baghunter.audit.run`) and the
``POST /v1/audit`` endpoint, so a listing is judged the same way wherever it is judged.

A field is flagged only when the model is both sure of its own answer
(``confidence >= min_confidence``) *and* finds the claim itself implausible
(``P(claimed) <= max_claimed_probability``). The second condition matters on fields
whose values overlap (a "Navy Blue" bag the model calls "Blue" at 0.85 may still give
"Navy Blue" 0.14): such a claim is a judgement call, not a mismatch worth a reviewer's
time. A claim the model has no class for cannot be judged at all: it is reported as
unscorable, never as a finding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from baghunter.config import Settings

# field -> (class names, probability row over those classes)
Predictions = Mapping[str, tuple[Sequence[str], np.ndarray]]


@dataclass(frozen=True)
class AuditThresholds:
    min_confidence: float = 0.8  # the model's probability of its own answer, at least
    max_claimed_probability: float = 0.05  # the model's probability of the claim, at most

    def __post_init__(self) -> None:
        if not 0 < self.min_confidence <= 1:
            raise ValueError(f"min_confidence must be in (0, 1], not {self.min_confidence}")
        if not 0 <= self.max_claimed_probability < 1:
            raise ValueError(
                f"max_claimed_probability must be in [0, 1), not {self.max_claimed_probability}"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> AuditThresholds:
        return cls(
            min_confidence=settings.audit_min_confidence,
            max_claimed_probability=settings.audit_max_claimed_probability,
        )


@dataclass(frozen=True)
class Finding:
    """One field whose photo says something else than the listing."""

    field: str
    claimed: str  # as the listing wrote it
    predicted: str  # the model's class name
    confidence: float  # P(predicted)
    claimed_probability: float  # P(claimed)


@dataclass
class Assessment:
    """The verdict on one listing: findings, and which fields could be judged at all."""

    findings: list[Finding] = field(default_factory=list)
    scored: list[str] = field(default_factory=list)  # fields judged (flagged or not)
    unscorable: list[str] = field(default_factory=list)  # claims the model has no class for


def _normalized(value: str) -> str:
    return " ".join(value.split()).casefold()


def match_class(claimed: str, classes: Sequence[str]) -> int | None:
    """Index of the class a claim names, or None if the model has no such class.

    An exact match wins; otherwise the match ignores case and runs of whitespace, since a
    seller's "black " and the catalog's "Black" are one claim (brand names especially are
    written every which way). A claim that matches several classes that way is ambiguous
    and matches none.
    """
    try:
        return list(classes).index(claimed)
    except ValueError:
        pass
    wanted = _normalized(claimed)
    hits = [i for i, name in enumerate(classes) if _normalized(name) == wanted]
    return hits[0] if len(hits) == 1 else None


def assess(
    claimed: Mapping[str, str | None], predictions: Predictions, thresholds: AuditThresholds
) -> Assessment:
    """Judge every claimed field the predictions cover, in the order of ``claimed``.

    Fields without a prediction, and empty claims, are not judged (and not reported).
    A probability row whose length differs from its class list is a ValueError: it means
    the caller paired a model's output with another model's classes.
    """
    result = Assessment()
    for name, value in claimed.items():
        if name not in predictions or value is None or not value.strip():
            continue
        classes, row = predictions[name]
        probs = np.asarray(row, dtype=np.float64).reshape(-1)
        if len(probs) != len(classes):
            raise ValueError(f"{name}: {len(probs)} probabilities for {len(classes)} classes")
        index = match_class(value, classes)
        if index is None:
            result.unscorable.append(name)
            continue
        result.scored.append(name)
        top = int(np.argmax(probs))
        confidence, claimed_probability = float(probs[top]), float(probs[index])
        if (
            top != index
            and confidence >= thresholds.min_confidence
            and claimed_probability <= thresholds.max_claimed_probability
        ):
            result.findings.append(
                Finding(
                    field=name,
                    claimed=value,
                    predicted=classes[top],
                    confidence=confidence,
                    claimed_probability=claimed_probability,
                )
            )
    return result


def findings_for(
    claimed: Mapping[str, str | None], predictions: Predictions, thresholds: AuditThresholds
) -> list[Finding]:
    """The mismatches of one listing: ``assess(...).findings``."""
    return assess(claimed, predictions, thresholds).findings
