"""The ``attribute_training`` DAG's task bodies.

Training runs in the task's own process: the heads train on stored vectors in seconds to
minutes, and the backbone is only built to embed images that have no vector yet (usually
none: the ``image_features`` DAG that schedules this one has just embedded them) and to
export the model at registration.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from baghunter.config import Settings, given
from baghunter.orchestration.failures import without_retries
from baghunter.orchestration.store import task_store

log = logging.getLogger(__name__)


def build_dataset(params: dict[str, Any], settings: Settings) -> str:
    """Build the attribute dataset from the store; returns its path."""
    from baghunter.attributes.dataset import DatasetConfig, DatasetError, build_dataset

    config = DatasetConfig(
        attributes=tuple(params.get("attributes") or settings.attributes),
        min_count=int(params.get("min_count") or settings.attribute_min_count),
        **given(seed=params.get("seed")),
    )
    with task_store(settings) as store, without_retries(DatasetError):
        return str(build_dataset(store, settings, config))


def train_config(params: dict[str, Any], settings: Settings) -> Any:
    """The run's AttributeTrainConfig; empty params fall back to settings and defaults."""
    from baghunter.attributes.heads import HeadConfig
    from baghunter.attributes.pipeline import AttributeTrainConfig
    from baghunter.embeddings.model import EmbedderSpec

    default = EmbedderSpec.from_settings(settings)
    backbone = params.get("backbone") or default.backbone
    weights = params.get("weights") or (default.weights if backbone == "vgg16" else "none")
    size = int(params.get("image_size") or default.image_size)
    spec = EmbedderSpec(backbone, weights, size, default.engine)
    head_fields = ("hidden", "epochs", "patience", "batch_size", "learning_rate", "seed")
    head = HeadConfig(
        **{k: params[k] for k in head_fields if params.get(k) not in (None, "")},
        class_weight=bool(params.get("class_weight", False)),
    )
    return AttributeTrainConfig(embedder=spec, head=head)


def train(dataset_path: str, params: dict[str, Any], settings: Settings) -> str:
    """Train in this process; returns the MLflow run id."""
    from baghunter.attributes import pipeline

    return pipeline.train(Path(dataset_path), train_config(params, settings), settings)


def evaluate(run_id: str, settings: Settings) -> dict[str, Any]:
    from baghunter.attributes import pipeline

    return pipeline.evaluate(run_id, settings).summary()


def register(run_id: str, settings: Settings) -> int:
    from baghunter.attributes import pipeline

    return pipeline.register(run_id, settings).version


def promote(run_id: str, version: int, settings: Settings) -> dict[str, Any]:
    from baghunter.attributes import pipeline

    return pipeline.promote(run_id, version, settings).to_dict()
