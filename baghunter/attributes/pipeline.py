"""The attribute-model stages around one MLflow run: train → evaluate → register → promote.

Like brand training, each stage takes the run id and reads what it needs from the run
(the dataset is a run artifact, the heads a ``checkpoint/heads.keras`` artifact, the
embedder its params), so the stages can run as separate Airflow tasks or back to back
from ``baghunter attributes train``.

Training reads the shared embeddings (:mod:`baghunter.embeddings`) rather than images:
the backbone runs once per image for every consumer, and the heads train in seconds.
Images of the dataset that have no vector yet are embedded first.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from baghunter import registry
from baghunter.attributes.dataset import AttributeDataset, AttributeRow
from baghunter.attributes.heads import HeadConfig
from baghunter.attributes.report import AttributeReport, score_all
from baghunter.config import Settings
from baghunter.embeddings.model import EmbedderSpec
from baghunter.engines.checks import check_engines, check_photos
from baghunter.training import stages

if TYPE_CHECKING:
    import keras

    from baghunter.embeddings.model import Embedder

log = logging.getLogger(__name__)

EXPERIMENT = "product-attributes"
CHECKPOINT = "checkpoint/heads.keras"
DATASET = "dataset/attributes.json"
REPORT = "eval/test_report.json"


@dataclass(frozen=True)
class AttributeTrainConfig:
    embedder: EmbedderSpec = field(default_factory=EmbedderSpec)
    head: HeadConfig = field(default_factory=HeadConfig)


@dataclass
class AttributeSummary:
    run_id: str
    dataset_version: str
    model_version: int | None
    test_metrics: dict[str, Any]
    promoted: bool | None
    decision: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- vectors --------------------------------------------------------------------------


def ensure_vectors(
    rows: list[AttributeRow],
    embedder: Embedder,
    settings: Settings,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Embed the rows' images that have no vector in the embedder's space; returns how many."""
    from baghunter.embeddings.pipeline import embed_missing

    return embed_missing(embedder, settings, {r.sha256: str(r.path) for r in rows}, progress)


def load_vectors(rows: list[AttributeRow], space: str, settings: Settings) -> np.ndarray:
    from baghunter.embeddings.pipeline import vector_store

    return vector_store(settings, space).load([r.sha256 for r in rows])[1]


def _labels(dataset: AttributeDataset, rows: list[AttributeRow]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, np.int32) for k, v in dataset.label_matrix(rows).items()}


# --- stages ---------------------------------------------------------------------------


def train(
    dataset_path: Path,
    config: AttributeTrainConfig,
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> str:
    """Train the heads on the dataset's train/val rows in a new MLflow run; returns its id."""
    import mlflow

    from baghunter.attributes.heads import fit_heads
    from baghunter.attributes.plots import plot_attribute_history
    from baghunter.embeddings.model import Embedder

    dataset = AttributeDataset.load(dataset_path)
    embedder = embedder or Embedder(config.embedder)
    if embedder.spec != config.embedder:
        raise ValueError(f"embedder {embedder.spec} is not the configured {config.embedder}")
    ensure_vectors(dataset.rows, embedder, settings, progress)
    train_rows, val_rows = dataset.split("train"), dataset.split("val")
    x_train = load_vectors(train_rows, embedder.space, settings)
    x_val = load_vectors(val_rows, embedder.space, settings)

    experiment_id = registry.get_or_create_experiment(EXPERIMENT, settings)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"attributes-{dataset.version}"):
        run_id = registry.active_run_id()
        registry.log_params_flat(
            {
                "backbone": config.embedder.backbone,
                "weights": config.embedder.weights,
                "engine": config.embedder.engine,
            }
        )
        registry.log_params_flat(
            {"image_size": config.embedder.image_size, "space": embedder.space, "dim": embedder.dim}
        )
        registry.log_params_flat(asdict(config.head), prefix="head.")
        registry.log_params_flat(
            {
                "path": str(Path(dataset_path).resolve()),
                "version": dataset.version,
                "attributes": {k: len(v) for k, v in dataset.attributes.items()},
                "rows": {s: len(dataset.split(s)) for s in ("train", "val", "test")},
            },
            prefix="dataset.",
        )
        _log_dataset_input(dataset, dataset_path)

        def on_epoch(epoch: int, logs: dict[str, float] | None) -> None:
            logs = logs or {}
            log.info("epoch %d: loss %.4f, val_loss %.4f", epoch + 1, logs.get("loss", 0),
                     logs.get("val_loss", 0))  # fmt: skip

        heads, history = fit_heads(
            (x_train, _labels(dataset, train_rows)),
            (x_val, _labels(dataset, val_rows)),
            dataset.attributes,
            config.head,
            on_epoch,
        )
        registry.log_history(history)
        registry.log_figure(
            plot_attribute_history(history, dataset.attributes), "plots/training_curves.png"
        )
        stages.log_checkpoint(heads, CHECKPOINT)
        return run_id


def evaluate(run_id: str, settings: Settings) -> AttributeReport:
    """Score the run's heads on its test split; log metrics, the report and plots."""
    import mlflow

    from baghunter.attributes.heads import predict_heads
    from baghunter.training.plots import plot_confusion_matrix

    registry.tracking(settings)
    dataset = _run_dataset(run_id)
    heads = stages.load_checkpoint(run_id, _load_heads, CHECKPOINT)
    space = mlflow.get_run(run_id).data.params["space"]
    test = dataset.split("test")
    probs = predict_heads(heads, load_vectors(test, space, settings), dataset.attributes)
    report = score_test_rows(dataset, test, probs)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics(report.flat_metrics("test_"))
        mlflow.log_dict(report.to_dict(), REPORT)
        for name, scores in report.attributes.items():
            safe = "".join(ch if ch.isalnum() else "_" for ch in name)
            figure = plot_confusion_matrix(scores.report)
            figure.suptitle(name)
            registry.log_figure(figure, f"plots/confusion_{safe}.png")
    log.info(
        "run %s: %s",
        run_id,
        ", ".join(
            f"{k} {s.report.accuracy:.3f} (baseline {s.majority_baseline:.3f})"
            for k, s in report.attributes.items()
        ),
    )
    return report


def score_test_rows(
    dataset: AttributeDataset, rows: list[AttributeRow], probs: dict[str, np.ndarray]
) -> AttributeReport:
    values = {name: [r.labels.get(name) for r in rows] for name in dataset.attributes}
    return score_all(values, probs, dataset.attributes, dataset.majority())


def register(run_id: str, settings: Settings) -> registry.ModelRef:
    """Register embedder + heads as a new version of ``settings.attribute_model_name``."""
    import mlflow

    from baghunter.attributes.model import export_model, log_attribute_model
    from baghunter.embeddings.model import Embedder

    registry.tracking(settings)
    params = mlflow.get_run(run_id).data.params
    # Runs from before engines had Keras vectors. The registered model embeds with Keras
    # whatever made the training vectors: an engine's vectors are its close approximation.
    engine = params.get("engine", "keras")
    spec = EmbedderSpec(params["backbone"], params["weights"], int(params["image_size"]), engine)
    embedder = Embedder(spec)
    if embedder.space != params["space"]:
        raise ValueError(
            f"the embedder now builds {embedder.space}, but run {run_id} trained on "
            f"{params['space']} (weights changed?)"
        )
    dataset = _run_dataset(run_id)
    model = export_model(embedder.model, stages.load_checkpoint(run_id, _load_heads, CHECKPOINT))
    example = np.zeros((1, spec.image_size, spec.image_size, 3), dtype=np.uint8)
    ref = log_attribute_model(
        model,
        run_id=run_id,
        name=settings.attribute_model_name,
        metadata={
            "attributes": dataset.attributes,
            "majority": dataset.majority(),
            "space": embedder.space,
            "image_size": spec.image_size,
            "backbone": spec.backbone,
            "dataset_version": dataset.version,
        },
        input_example=example,
    )
    validation, calibration = check_photos(
        [r.path for r in dataset.split("val")],
        [r.path for r in dataset.split("train")],
        spec.image_size,
    )
    # Every output is one attribute's probabilities: an export must agree on all of them.
    check_engines(
        model,
        image_size=spec.image_size,
        answers=range(len(dataset.attributes)),
        validation=validation,
        calibration=calibration,
        run_id=run_id,
        name=ref.name,
        version=ref.version,
    )
    return ref


def promote(run_id: str, version: int, settings: Settings) -> registry.PromotionDecision:
    """Move ``champion`` to the version only if it beats the champion on this test set."""
    import mlflow

    from baghunter.attributes.model import load_attribute_model
    from baghunter.training.data import load_images

    registry.tracking(settings)
    dataset = _run_dataset(run_id)
    report = AttributeReport.from_dict(stages.run_dict(run_id, REPORT))
    test = dataset.split("test")

    def score_champion(model_uri: str) -> AttributeReport:
        champion = load_attribute_model(model_uri)
        if champion.space == mlflow.get_run(run_id).data.params["space"]:
            probs = champion.predict_features(load_vectors(test, champion.space, settings))
        else:  # another backbone: it embeds the test photos itself
            images = load_images([r.path for r in test], champion.image_size)
            probs = champion.predict_images(list(images))
        return score_test_rows(dataset, test, probs)

    return stages.promote(
        settings.attribute_model_name, run_id, version, report, score_champion, settings
    )


def run_all(
    dataset_path: Path,
    config: AttributeTrainConfig,
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AttributeSummary:
    """All four stages in this process (``baghunter attributes train``)."""
    run_id = train(dataset_path, config, settings, embedder=embedder, progress=progress)
    report = evaluate(run_id, settings)
    ref = register(run_id, settings)
    decision = promote(run_id, ref.version, settings)
    return AttributeSummary(
        run_id=run_id,
        dataset_version=AttributeDataset.load(dataset_path).version,
        model_version=ref.version,
        test_metrics=report.summary(),
        promoted=decision.promoted,
        decision=decision.reason,
    )


# --- run artifacts --------------------------------------------------------------------


def _log_dataset_input(dataset: AttributeDataset, source: Path) -> None:
    """The dataset as the run's input (digest = dataset version) and as an artifact."""
    import mlflow
    import pandas as pd
    from mlflow.data.pandas_dataset import from_pandas

    frame = pd.DataFrame(
        [
            {"sha256": r.sha256, "split": r.split, "group": r.group, **r.labels}
            for r in dataset.rows
        ],
        columns=["sha256", "split", "group", *dataset.attributes],
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The specified dataset source can be")
        data = from_pandas(
            frame, source=str(source), name=f"attributes-{dataset.version}", digest=dataset.version
        )
    mlflow.log_input(data, context="training")
    mlflow.log_dict(dataset.to_dict(), DATASET)
    mlflow.set_tag(registry.TAG_DATASET_VERSION, dataset.version)


def _load_heads(path: str) -> keras.Model:
    import keras

    # compile=False: the training loss is not needed to predict.
    return keras.saving.load_model(path, compile=False)


def _run_dataset(run_id: str) -> AttributeDataset:
    """The dataset the run trained on, as logged with the run (not re-read from disk)."""
    return AttributeDataset.from_dict(stages.run_dict(run_id, DATASET))
