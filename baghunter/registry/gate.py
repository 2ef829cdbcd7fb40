"""The champion gate: a candidate takes the alias only by beating the champion.

The current champion is re-scored on the candidate's own test set, so the two are compared
on the same photos; MLflow stages are deprecated and aliases are the only pointer moved.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mlflow import MlflowClient

from baghunter.registry.models import (
    CHAMPION_ALIAS,
    ModelRef,
    alias_version,
)

logger = logging.getLogger(__name__)

# Model-version tags recording each gate decision ("promoted"/"kept") and its reason.
TAG_DECISION = "promotion.decision"
TAG_REASON = "promotion.reason"


class GateReport(Protocol):
    """What the champion gate needs of a test-set report.

    :class:`~baghunter.training.metrics.EvalReport` (one classifier) and the attribute
    model's report (several heads) both satisfy it, so both go through the same gate.
    """

    def better_than(self, other: Any) -> bool:
        """The promotion rule: whether this report beats ``other`` (same test set)."""
        ...

    def headline_metrics(self) -> dict[str, float]:
        """Figures recorded with the decision (``candidate_<name>``, ``champion_<name>``)."""
        ...

    def label_space(self) -> tuple[str, Any]:
        """``(metadata key, value)`` the champion's model metadata must equal to be scored."""
        ...


@dataclass(frozen=True)
class PromotionDecision:
    promoted: bool
    reason: str
    candidate_version: int
    previous_champion_version: int | None
    candidate_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None  # None when the champion was not scored

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- the champion gate ---------------------------------------------------------------


def champion_gate(
    *,
    name: str,
    candidate: ModelRef,
    candidate_report: GateReport,
    score_champion: Callable[[str], GateReport],
    alias: str = CHAMPION_ALIAS,
) -> PromotionDecision:
    """Move ``alias`` to ``candidate`` only if it is better than the current holder.

    ``score_champion`` is given the champion's ``models:/<name>@<alias>`` URI and must score
    it on the same test set as ``candidate_report`` (the metrics logged when the champion
    was trained came from another test set and are not comparable). The rules:

    * no version holds the alias: promote;
    * the candidate already holds it: keep (re-running the gate is a no-op);
    * the champion's output columns mean other classes (other brands, another order, or
      none recorded): promote without scoring, since it cannot be scored on the candidate's
      labels and the catalog's current class set is the one serving must predict;
    * the champion cannot be scored (its metadata cannot be read or ``score_champion``
      raises, e.g. the model no longer loads): promote, logging why; a champion that
      cannot be loaded cannot serve either;
    * otherwise promote only if ``candidate_report.better_than(champion_report)``.

    The decision is recorded on the candidate's run (tags ``promotion.*``, metrics
    ``candidate_*``/``champion_*``) and as tags on the candidate's model version. Two gates
    running at once for the same model are not coordinated: schedule one at a time.
    """
    from mlflow import MlflowClient

    if candidate.name != name:
        raise ValueError(f"candidate {candidate.uri} is not a version of {name!r}")
    client = MlflowClient()
    champion = alias_version(client, name, alias)
    champion_report: GateReport | None = None
    if champion is None:
        promoted, reason = True, f"no {alias} yet"
    elif champion == candidate.version:
        promoted, reason = False, f"candidate already holds the {alias} alias"
    else:
        promoted, reason, champion_report = _challenge(
            name, alias, champion, candidate_report, score_champion
        )
    if promoted:
        client.set_registered_model_alias(name, alias, str(candidate.version))
    decision = PromotionDecision(
        promoted=promoted,
        reason=reason,
        candidate_version=candidate.version,
        previous_champion_version=champion,
        candidate_metrics=_headline(candidate_report),
        champion_metrics=None if champion_report is None else _headline(champion_report),
    )
    _record_decision(client, candidate, decision)
    logger.info("%s v%s: %s (%s)", name, candidate.version, _verdict(promoted), reason)
    return decision


def _challenge(
    name: str,
    alias: str,
    champion: int,
    candidate_report: GateReport,
    score_champion: Callable[[str], GateReport],
) -> tuple[bool, str, GateReport | None]:
    """Candidate against a champion that exists: (promote?, why, the champion's report)."""
    try:
        # Checked first: a champion over other classes would be scored on wrong labels.
        key, labels = candidate_report.label_space()
        if _model_metadata(f"models:/{name}/{champion}", key) != labels:
            return True, f"{alias} predicts a different class set", None
        champion_report = score_champion(f"models:/{name}@{alias}")
    except Exception as exc:  # whatever the cause, the rule is the same: see champion_gate
        logger.warning("could not score %s v%s; promoting", name, champion, exc_info=True)
        return True, f"{alias} could not be scored: {_describe(exc)}", None
    promoted = candidate_report.better_than(champion_report)
    return (
        promoted,
        _comparison(candidate_report, champion_report, promoted, alias),
        champion_report,
    )


def _model_metadata(model_uri: str, key: str) -> Any:
    import mlflow

    metadata = mlflow.models.get_model_info(model_uri).metadata or {}
    return metadata.get(key)


def _comparison(candidate: GateReport, champion: GateReport, promoted: bool, alias: str) -> str:
    relation = "beats" if promoted else "does not beat"

    def figures(report: GateReport) -> str:
        return ", ".join(f"{k} {v:.4f}" for k, v in report.headline_metrics().items())

    return (
        f"candidate ({figures(candidate)}) {relation} {alias} ({figures(champion)}) "
        "on the same test set"
    )


def _headline(report: GateReport) -> dict[str, float]:
    return report.headline_metrics()


def _describe(exc: Exception) -> str:
    """A one-line account of a failure, short enough for an MLflow tag."""
    text = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return text if len(text) <= 200 else text[:199] + "…"


def _verdict(promoted: bool) -> str:
    return "promoted" if promoted else "kept"


def _record_decision(
    client: MlflowClient, candidate: ModelRef, decision: PromotionDecision
) -> None:
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    values = {f"candidate_{k}": v for k, v in decision.candidate_metrics.items()}
    if decision.champion_metrics is not None:
        values |= {f"champion_{k}": v for k, v in decision.champion_metrics.items()}
    tags = {TAG_DECISION: _verdict(decision.promoted), TAG_REASON: decision.reason}
    client.log_batch(
        candidate.run_id,
        metrics=[Metric(key, value, now, 0) for key, value in values.items()],
        tags=[RunTag(key, value) for key, value in tags.items()],
    )
    for key, value in tags.items():
        client.set_model_version_tag(candidate.name, str(candidate.version), key, value)
