"""What every model kind's stages share: checkpoints in the run, and the champion gate.

The brand classifier (:mod:`baghunter.training.pipeline`) and the attribute heads
(:mod:`baghunter.attributes.pipeline`) both run as train → evaluate → register → promote,
each stage reading what it needs from the MLflow run. The run bookkeeping that does not
depend on the model kind lives here once.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from baghunter import registry
from baghunter.config import Settings

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint/model.keras"  # the trained model, inside its run


def log_checkpoint(model: keras.Model, artifact: str = CHECKPOINT) -> None:
    """Save ``model`` as the active run's checkpoint artifact."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact).name
        model.save(path)
        mlflow.log_artifact(str(path), artifact_path=str(Path(artifact).parent))


def load_checkpoint(
    run_id: str, load: Callable[[str], keras.Model], artifact: str = CHECKPOINT
) -> keras.Model:
    """The run's checkpoint, read by ``load`` (which knows the model kind's custom layers)."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=artifact, dst_path=tmp
        )
        return load(local)


def run_dict(run_id: str, artifact: str) -> dict[str, Any]:
    """A JSON artifact of the run (a report, a dataset) as a dict."""
    import mlflow

    data: dict[str, Any] = mlflow.artifacts.load_dict(f"runs:/{run_id}/{artifact}")
    return data


def promote(
    name: str,
    run_id: str,
    version: int,
    report: registry.GateReport,
    score_champion: Callable[[str], registry.GateReport],
    settings: Settings,
) -> registry.PromotionDecision:
    """Move the alias to ``name`` version ``version`` only if it beats the champion.

    ``score_champion(model_uri)`` scores the current champion on the candidate's own test
    set, so the two are compared on the same photos.
    """
    candidate = registry.ModelRef(
        name=name, version=version, uri=f"models:/{name}/{version}", run_id=run_id
    )
    decision = registry.champion_gate(
        name=name,
        candidate=candidate,
        candidate_report=report,
        score_champion=score_champion,
        alias=settings.model_alias,
    )
    log.info("promotion of %s version %s: %s", name, version, decision.reason)
    return decision
