"""The brand-training stages around one MLflow run: train → evaluate → register → promote.

Each stage takes the run id and reads what it needs from the run itself (the manifest
path is a run param, the trained model a ``checkpoint/model.keras`` artifact, the test
report ``eval/test_report.json``), so the stages can run as separate Airflow tasks, on
different workers, or back to back from ``baghunter train``.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from baghunter import registry
from baghunter.config import Settings
from baghunter.dataset.manifest import Manifest
from baghunter.training.metrics import EvalReport, evaluate_probabilities

if TYPE_CHECKING:
    import keras

    from baghunter.training.train import TrainConfig

log = logging.getLogger(__name__)

EXPERIMENT = "brand-classifier"
CHECKPOINT = "checkpoint/model.keras"
REPORT = "eval/test_report.json"


@dataclass
class TrainingSummary:
    run_id: str
    dataset_version: str
    model_version: int | None
    test_metrics: dict[str, float]
    promoted: bool | None
    decision: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train(manifest_path: Path, config: TrainConfig, settings: Settings) -> str:
    """Train on the manifest's train/val splits inside a new MLflow run; returns its id."""
    import mlflow

    from baghunter.training.plots import plot_history
    from baghunter.training.train import train_classifier

    manifest = Manifest.load(manifest_path)
    experiment_id = registry.get_or_create_experiment(EXPERIMENT, settings)
    run_name = f"{config.backbone}-{manifest.version}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        registry.log_params_flat(config.model_dump(mode="json"))
        registry.log_params_flat(
            {
                "manifest_path": str(Path(manifest_path).resolve()),
                "classes": manifest.classes,
                "counts": manifest.counts(),
            },
            prefix="dataset.",
        )
        registry.log_manifest_input(manifest, source=manifest_path)
        # train_classifier logs each epoch itself (the progress operators see in task logs)
        outcome = train_classifier(manifest, config, cache_dir=settings.home / "features")
        registry.log_history(outcome.history)
        mlflow.log_metrics({f"timing_{k}": float(v) for k, v in outcome.timings.items()})
        mlflow.log_metrics(
            {f"feature_cache_{k}": float(v) for k, v in outcome.feature_cache.items()}
        )
        registry.log_figure(plot_history(outcome.history), "plots/training_curves.png")
        _log_checkpoint(outcome.model)
        return str(run.info.run_id)


def evaluate(run_id: str, settings: Settings) -> EvalReport:
    """Score the run's model on its test split; log metrics, report and plots to the run."""
    import mlflow

    from baghunter.training.plots import plot_confusion_matrix, plot_misclassified
    from baghunter.training.predict import predict_entries

    registry.tracking(settings)
    manifest = _run_manifest(run_id)
    model = _load_checkpoint(run_id)
    test = manifest.split("test")
    image_size = int(mlflow.get_run(run_id).data.params["image_size"])
    probs = predict_entries(model, test, image_size)
    report = evaluate_probabilities(
        [manifest.label_index(e.label) for e in test], probs, manifest.classes
    )
    with mlflow.start_run(run_id=run_id):
        registry.log_eval_report(report)
        registry.log_figure(plot_confusion_matrix(report), "plots/confusion_matrix.png")
        registry.log_figure(
            plot_misclassified(test, probs, manifest.classes), "plots/misclassified.png"
        )
    log.info(
        "run %s: test accuracy %.3f, macro-F1 %.3f, top-3 %.3f on %d images",
        run_id,
        report.accuracy,
        report.macro_f1,
        report.top3_accuracy,
        report.n,
    )
    return report


def register(run_id: str, settings: Settings) -> registry.ModelRef:
    """Register the run's model as a new version of ``settings.model_name``."""
    import mlflow
    import numpy as np

    registry.tracking(settings)
    manifest = _run_manifest(run_id)
    model = _load_checkpoint(run_id)
    image_size = int(mlflow.get_run(run_id).data.params["image_size"])
    example = np.zeros((1, image_size, image_size, 3), dtype=np.uint8)
    return registry.register_model(
        model,
        run_id=run_id,
        name=settings.model_name,
        classes=manifest.classes,
        dataset_version=manifest.version,
        image_size=image_size,
        input_example=example,
    )


def promote(run_id: str, version: int, settings: Settings) -> registry.PromotionDecision:
    """Move ``champion`` to the new version only if it beats the champion on this test set."""
    import mlflow

    from baghunter.training.predict import evaluate_model

    registry.tracking(settings)
    manifest = _run_manifest(run_id)
    report = EvalReport.from_dict(mlflow.artifacts.load_dict(f"runs:/{run_id}/{REPORT}"))
    test = manifest.split("test")

    def score_champion(model_uri: str) -> EvalReport:
        champion = registry.load_classifier(model_uri)
        return evaluate_model(champion.model, test, champion.classes, champion.image_size)

    candidate = registry.ModelRef(
        name=settings.model_name,
        version=version,
        uri=f"models:/{settings.model_name}/{version}",
        run_id=run_id,
    )
    decision = registry.champion_gate(
        name=settings.model_name,
        candidate=candidate,
        candidate_report=report,
        score_champion=score_champion,
        alias=settings.model_alias,
    )
    log.info("promotion of version %s: %s", version, decision.reason)
    return decision


def run_all(manifest_path: Path, config: TrainConfig, settings: Settings) -> TrainingSummary:
    """All four stages in this process (the CLI's ``baghunter train``)."""
    run_id = train(manifest_path, config, settings)
    report = evaluate(run_id, settings)
    ref = register(run_id, settings)
    decision = promote(run_id, ref.version, settings)
    return TrainingSummary(
        run_id=run_id,
        dataset_version=Manifest.load(manifest_path).version,
        model_version=ref.version,
        test_metrics={
            "accuracy": report.accuracy,
            "macro_f1": report.macro_f1,
            "top3_accuracy": report.top3_accuracy,
        },
        promoted=decision.promoted,
        decision=decision.reason,
    )


def _log_checkpoint(model: keras.Model) -> None:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(CHECKPOINT).name
        model.save(path)
        mlflow.log_artifact(str(path), artifact_path=str(Path(CHECKPOINT).parent))


def _load_checkpoint(run_id: str) -> keras.Model:
    import mlflow

    from baghunter.training.predict import load_model

    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=CHECKPOINT, dst_path=tmp
        )
        return load_model(local)


def _run_manifest(run_id: str) -> Manifest:
    """The manifest the run trained on, as logged with the run (not re-read from disk)."""
    import mlflow

    data = mlflow.artifacts.load_dict(f"runs:/{run_id}/dataset/manifest.json")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "manifest.json"
        path.write_text(json.dumps(data))
        return Manifest.load(path)
