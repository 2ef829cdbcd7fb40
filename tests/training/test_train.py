"""Two-phase training end to end on the synthetic brands (real files, real Keras fits)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from baghunter.dataset.manifest import Manifest
from baghunter.training.model import build_classifier
from baghunter.training.predict import evaluate_model
from baghunter.training.train import TrainConfig, TrainOutcome, train_classifier

IMAGE_SIZE = 32

# A from-scratch CNN barely benefits from a frozen random backbone, so nearly all the
# learning is in the fine-tuning phase, at a learning rate suited to random weights.
SCRATCH = TrainConfig(
    backbone="scratch",
    weights="none",
    image_size=IMAGE_SIZE,
    batch_size=8,
    epochs_frozen=2,
    epochs_finetune=8,
    learning_rate=3e-3,
    finetune_learning_rate=2e-3,
    patience=8,
    seed=42,
)


@dataclasses.dataclass
class TrainedRun:
    outcome: TrainOutcome
    events: list[tuple[str, int, dict[str, float]]]
    cache_dir: Path


@pytest.fixture(scope="module")
def scratch_run(
    synthetic_manifest: Manifest, tmp_path_factory: pytest.TempPathFactory
) -> TrainedRun:
    events: list[tuple[str, int, dict[str, float]]] = []
    cache_dir = tmp_path_factory.mktemp("feature-cache")
    outcome = train_classifier(
        synthetic_manifest,
        SCRATCH,
        cache_dir=cache_dir,
        on_epoch=lambda phase, epoch, logs: events.append((phase, epoch, logs)),
    )
    return TrainedRun(outcome, events, cache_dir)


@pytest.mark.slow
def test_scratch_model_learns_the_synthetic_brands(
    scratch_run: TrainedRun, synthetic_manifest: Manifest
) -> None:
    report = evaluate_model(
        scratch_run.outcome.model,
        synthetic_manifest.split("test"),
        synthetic_manifest.classes,
        IMAGE_SIZE,
    )
    assert report.n == len(synthetic_manifest.split("test"))
    assert report.accuracy >= 0.8  # chance is 1/3


@pytest.mark.slow
def test_history_and_epoch_hook_cover_both_phases(scratch_run: TrainedRun) -> None:
    history = scratch_run.outcome.history
    for phase in ("frozen", "finetune"):
        phase_events = [(e, logs) for p, e, logs in scratch_run.events if p == phase]
        epochs = [e for e, _ in phase_events]
        assert epochs == list(range(1, len(epochs) + 1)) and epochs
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert history[f"{phase}_{key}"] == pytest.approx(
                [logs[key] for _, logs in phase_events]
            )

    timings = scratch_run.outcome.timings
    assert timings["frozen_epochs"] == len(history["frozen_loss"])
    for key in ("feature_extraction_s", "frozen_s", "finetune_s", "finetune_images_per_s"):
        assert timings[key] > 0
    assert scratch_run.outcome.classes == ["amber", "cobalt", "jade"]


@pytest.mark.slow
def test_retraining_reuses_cached_features(
    scratch_run: TrainedRun, synthetic_manifest: Manifest
) -> None:
    n_train_val = len(synthetic_manifest.split("train")) + len(synthetic_manifest.split("val"))
    assert scratch_run.outcome.feature_cache == {"computed": n_train_val, "reused": 0}

    # Same seed, so the same random backbone: its features are already on disk.
    config = SCRATCH.model_copy(update={"epochs_frozen": 1, "epochs_finetune": 0})
    again = train_classifier(synthetic_manifest, config, cache_dir=scratch_run.cache_dir)

    assert again.feature_cache == {"computed": 0, "reused": n_train_val}
    assert not any(key.startswith("finetune_") for key in again.history)


def test_uncached_frozen_phase_trains_only_the_head(
    synthetic_manifest: Manifest, tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}

    def snapshot(phase: str, epoch: int, logs: dict[str, float]) -> None:
        seen["epochs"] = epoch

    config = SCRATCH.model_copy(
        update={"cache_features": False, "epochs_frozen": 1, "epochs_finetune": 0}
    )
    keras.utils.set_random_seed(config.seed)
    # The same seed builds the same initial model, so its weights are the "before".
    initial, _ = build_classifier("scratch", "none", 3, IMAGE_SIZE)
    outcome = train_classifier(synthetic_manifest, config, cache_dir=tmp_path, on_epoch=snapshot)

    assert outcome.feature_cache == {"computed": 0, "reused": 0}
    assert not any(tmp_path.iterdir())  # nothing cached
    assert seen["epochs"] == 1
    before = {w.path: keras.ops.convert_to_numpy(w) for w in initial.weights}
    after = {w.path: keras.ops.convert_to_numpy(w) for w in outcome.model.weights}
    assert before.keys() == after.keys()
    changed = {path for path in before if not np.array_equal(before[path], after[path])}
    head = {w.path for w in outcome.model.get_layer("head").weights}
    assert changed == head


@pytest.mark.slow
def test_vgg16_runs_both_phases_and_finetunes_only_block5(
    synthetic_manifest: Manifest, tmp_path: Path
) -> None:
    config = TrainConfig(
        backbone="vgg16",
        weights="none",
        image_size=IMAGE_SIZE,
        batch_size=16,
        epochs_frozen=1,
        epochs_finetune=1,
    )
    keras.utils.set_random_seed(config.seed)
    _, initial = build_classifier("vgg16", "none", 3, IMAGE_SIZE)
    before = {w.path: keras.ops.convert_to_numpy(w) for w in initial.backbone.weights}

    outcome = train_classifier(synthetic_manifest, config, cache_dir=tmp_path)

    assert len(outcome.history["frozen_loss"]) == 1
    assert len(outcome.history["finetune_loss"]) == 1
    backbone = outcome.model.get_layer("vgg16")
    changed = {
        w.path
        for w in backbone.weights
        if not np.array_equal(before[w.path], keras.ops.convert_to_numpy(w))
    }
    assert changed and all("block5_conv" in path for path in changed), sorted(changed)


def without_split(manifest: Manifest, split: str) -> Manifest:
    return Manifest(entries=[e for e in manifest.entries if e.split != split])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda m: Manifest(entries=[e for e in m.entries if e.label == "amber"]), "2 classes"),
        (lambda m: without_split(m, "val"), "val split is empty"),
        (lambda m: without_split(m, "train"), "train split is empty"),
        (
            lambda m: Manifest(
                entries=[e for e in m.entries if not (e.label == "jade" and e.split == "train")]
            ),
            r"without any training image: \['jade'\]",
        ),
    ],
    ids=["one-class", "no-val", "no-train", "class-missing-from-train"],
)
def test_unusable_datasets_are_refused_before_training(
    synthetic_manifest: Manifest, tmp_path: Path, make: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        train_classifier(make(synthetic_manifest), SCRATCH, cache_dir=tmp_path)


def test_config_rejects_pretrained_weights_for_scratch() -> None:
    with pytest.raises(ValueError, match="scratch"):
        TrainConfig(backbone="scratch", weights="imagenet")


@pytest.mark.slow
def test_mixed_precision_keeps_float32_probabilities_and_restores_policy(
    synthetic_manifest: Manifest, tmp_path: Path
) -> None:
    config = SCRATCH.model_copy(
        update={"mixed_precision": True, "epochs_frozen": 1, "epochs_finetune": 1}
    )
    outcome = train_classifier(synthetic_manifest, config, cache_dir=tmp_path)

    assert outcome.model.get_layer("scratch_cnn").compute_dtype == "float16"
    assert outcome.model.output.dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"
