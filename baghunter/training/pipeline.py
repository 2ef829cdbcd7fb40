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

import numpy as np

from baghunter import registry
from baghunter.config import Settings
from baghunter.dataset.manifest import Manifest
from baghunter.engines.checks import check_engines, check_photos
from baghunter.inference import (
    OPEN_SET_ARTIFACT,
    OPEN_SET_METADATA,
    BrandPrediction,
    BrandPredictor,
    load_gate,
    load_model,
    with_features,
)
from baghunter.training import stages
from baghunter.training.metrics import EvalReport, evaluate_probabilities

if TYPE_CHECKING:
    from baghunter.training.train import TrainConfig

log = logging.getLogger(__name__)

EXPERIMENT = "brand-classifier"
REPORT = "eval/test_report.json"
TAG_FINETUNE = "baghunter.finetune"  # "kept" or "dropped"
TAG_OPEN_SET = "baghunter.open_set"  # how the open-set gate compares features


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
    """Train on the manifest's train/val splits inside a new MLflow run; returns its id.

    Each sweep trial is a nested run of it (MLflow tags it with the parent's id), so the
    choices can be compared in the MLflow UI; the chosen model, its open-set gate and the
    fine-tuning verdict are logged to the parent run.
    """
    import mlflow

    from baghunter.training.plots import plot_history
    from baghunter.training.train import Trial, train_classifier

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

        def log_trial(trial: Trial) -> None:
            with mlflow.start_run(
                experiment_id=experiment_id,
                run_name=f"{run_name}-trial-{trial.number:02d}",
                nested=True,
            ):
                registry.log_params_flat({**trial.params, "space": trial.space})
                mlflow.log_metrics(
                    {
                        "val_accuracy": trial.val_accuracy,
                        "val_loss": trial.val_loss,
                        "epochs": float(trial.epochs),
                        "seconds": trial.seconds,
                    }
                )

        # train_classifier logs each trial and epoch itself (what operators see in logs)
        outcome = train_classifier(manifest, config, settings, on_trial=log_trial)
        chosen = outcome.chosen
        registry.log_params_flat(
            {**chosen.params, "space": outcome.space, "trial": chosen.number}, prefix="chosen."
        )
        mlflow.set_tag(TAG_FINETUNE, "kept" if outcome.finetune_kept else "dropped")
        mlflow.log_metrics({f"val_accuracy_{k}": v for k, v in outcome.val_accuracy.items()})
        mlflow.log_metric("open_set_threshold", outcome.gate.threshold)
        mlflow.set_tag(TAG_OPEN_SET, outcome.gate.variant.name())
        if outcome.gate.val_auroc is not None:
            mlflow.log_metric("val_open_set_auroc", outcome.gate.val_auroc)
        registry.log_history(outcome.history)
        mlflow.log_metrics({f"timing_{k}": float(v) for k, v in outcome.timings.items()})
        mlflow.log_metrics({"embedded_photos": float(sum(outcome.embedded.values()))})
        registry.log_figure(plot_history(outcome.history), "plots/training_curves.png")
        with tempfile.TemporaryDirectory() as tmp:
            gate_path = outcome.gate.save(Path(tmp) / Path(OPEN_SET_ARTIFACT).name)
            mlflow.log_artifact(str(gate_path), artifact_path=str(Path(OPEN_SET_ARTIFACT).parent))
        stages.log_checkpoint(outcome.model)
        return str(run.info.run_id)


def evaluate(run_id: str, settings: Settings) -> EvalReport:
    """Score the run's model on its test split; log metrics, report and plots to the run.

    The open-set answer is scored too: AUROC of known test photos against the dataset's
    photos of other brands and of other categories, and the share of each answered with
    a brand at the stored threshold.
    """
    import mlflow

    from baghunter.training.plots import plot_confusion_matrix, plot_misclassified

    registry.tracking(settings)
    manifest = _run_manifest(run_id)
    predictor = _run_predictor(run_id)
    test = manifest.split("test")
    answers = predictor.predict_files([e.path for e in test])
    probs = np.stack([a.probs for a in answers]) if answers else np.zeros((0, 0))
    report = evaluate_probabilities(
        [manifest.label_index(e.label) for e in test], probs, manifest.classes
    )
    report.extra.update(open_set_metrics(predictor, answers, manifest))
    with mlflow.start_run(run_id=run_id):
        registry.log_eval_report(report)
        registry.log_figure(plot_confusion_matrix(report), "plots/confusion_matrix.png")
        registry.log_figure(
            plot_misclassified(test, probs, manifest.classes), "plots/misclassified.png"
        )
    log.info(
        "run %s: test accuracy %.3f, macro-F1 %.3f, top-3 %.3f on %d images; open set %s",
        run_id,
        report.accuracy,
        report.macro_f1,
        report.top3_accuracy,
        report.n,
        {k: round(v, 3) for k, v in report.extra.items()},
    )
    return report


def open_set_metrics(
    predictor: BrandPredictor, known: list[BrandPrediction], manifest: Manifest
) -> dict[str, float]:
    """AUROC and answer rates of the open-set gate: known test photos vs outside ones."""
    if predictor.gate is None or not known:
        return {}
    from baghunter.dataset.manifest import OTHER_BRAND, OTHER_CATEGORY
    from baghunter.training.open_set import auroc

    def scores(answers: list[BrandPrediction]) -> np.ndarray:
        return np.array([a.open_set.score for a in answers if a.open_set is not None])

    known_scores = scores(known)
    out = {"open_set_known_answered": float(np.mean([a.known for a in known]))}
    for label, key in ((OTHER_CATEGORY, "other_category"), (OTHER_BRAND, "other_brand")):
        paths = [e.path for e in manifest.outside if e.label == label and e.split == "test"]
        if not paths:
            continue
        outside = predictor.predict_files(paths)
        out[f"open_set_auroc_{key}"] = auroc(known_scores, scores(outside))
        out[f"open_set_{key}_rejected"] = float(np.mean([not a.known for a in outside]))
        out[f"open_set_{key}_count"] = float(len(outside))
    return out


def register(run_id: str, settings: Settings) -> registry.ModelRef:
    """Register the run's model as a new version of ``settings.model_name``."""
    import mlflow

    registry.tracking(settings)
    manifest = _run_manifest(run_id)
    model = stages.load_checkpoint(run_id, load_model)
    image_size = int(mlflow.get_run(run_id).data.params["chosen.image_size"])
    example = np.zeros((1, image_size, image_size, 3), dtype=np.uint8)
    ref = registry.register_model(
        model,
        run_id=run_id,
        name=settings.model_name,
        classes=manifest.classes,
        dataset_version=manifest.version,
        image_size=image_size,
        input_example=example,
        extra_metadata={OPEN_SET_METADATA: OPEN_SET_ARTIFACT},
    )
    validation, calibration = check_photos(
        [e.path for e in manifest.split("val")],
        [e.path for e in manifest.split("train")],
        image_size,
    )
    # The exported graph answers the open-set gate too; top-1 is read from the first output.
    check_engines(
        with_features(model),
        image_size=image_size,
        answers=[0],
        validation=validation,
        calibration=calibration,
        run_id=run_id,
        name=ref.name,
        version=ref.version,
    )
    return ref


def promote(run_id: str, version: int, settings: Settings) -> registry.PromotionDecision:
    """Move ``champion`` to the new version only if it beats the champion on this test set."""
    registry.tracking(settings)
    manifest = _run_manifest(run_id)
    report = EvalReport.from_dict(stages.run_dict(run_id, REPORT))
    test = manifest.split("test")

    def score_champion(model_uri: str) -> EvalReport:
        return BrandPredictor.load(model_uri).evaluate(test)

    return stages.promote(settings.model_name, run_id, version, report, score_champion, settings)


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


def _run_predictor(run_id: str) -> BrandPredictor:
    """The run's checkpoint with its open-set gate, as serving would use it."""
    return BrandPredictor(
        stages.load_checkpoint(run_id, load_model),
        _run_manifest(run_id).classes,
        gate=load_gate(run_id),
        run_id=run_id,
    )


def _run_manifest(run_id: str) -> Manifest:
    """The manifest the run trained on, as logged with the run (not re-read from disk)."""

    data = stages.run_dict(run_id, "dataset/manifest.json")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "manifest.json"
        path.write_text(json.dumps(data))
        return Manifest.load(path)
