"""Brand training end to end on the synthetic brands: stored vectors, sweep, fine-tuning, gate."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from PIL import Image

from baghunter.config import Settings
from baghunter.dataset.manifest import OTHER_CATEGORY, Manifest, ManifestEntry
from baghunter.embeddings.model import EMBEDDER_META, Embedder, EmbedderSpec
from baghunter.embeddings.pipeline import vector_store
from baghunter.inference import BrandPredictor
from baghunter.training.train import (
    TrainConfig,
    TrainOutcome,
    Trial,
    auto_image_sizes,
    train_classifier,
    train_config,
)

IMAGE_SIZE = 32

# A from-scratch CNN's frozen features are a random projection. One head epoch leaves the
# frozen model undertrained on purpose, so fine-tuning the whole CNN at a rate suited to
# random weights has something to win (the "kept" case).
SCRATCH = TrainConfig(
    backbone="scratch",
    weights="none",
    image_sizes=(IMAGE_SIZE,),
    pool_depths=(1, 3),
    head_units=((),),
    l2=(1e-4, 1e-2),
    batch_size=8,
    epochs_frozen=1,
    epochs_finetune=8,
    finetune_learning_rate=2e-3,
    patience=6,
    seed=42,
)


def _settings(home: Path) -> Settings:
    return Settings(_env_file=None, home=home, embed_image_size=IMAGE_SIZE)  # type: ignore[call-arg]


@dataclasses.dataclass
class TrainedRun:
    outcome: TrainOutcome
    trials: list[Trial]
    events: list[tuple[str, int, dict[str, float]]]
    settings: Settings


def unknown_photos(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """Photos of nothing the brands look like: noise, and dark empty frames."""
    photos = [rng.integers(0, 256, size=(60, 60, 3), dtype=np.uint8) for _ in range(n - n // 3)]
    photos += [np.full((60, 60, 3), rng.integers(10, 60), np.uint8) for _ in range(n // 3)]
    return photos


def with_outside(manifest: Manifest, folder: Path) -> Manifest:
    """The manifest plus validation photos of no brand, to choose the gate's comparison."""
    folder.mkdir(parents=True, exist_ok=True)
    outside = []
    for i, pixels in enumerate(unknown_photos(np.random.default_rng(11), 9)):
        path = folder / f"outside-{i}.png"
        Image.fromarray(pixels).save(path)
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        outside.append(ManifestEntry(str(path), OTHER_CATEGORY, "val", sha, sha))
    return dataclasses.replace(manifest, outside=outside)


@pytest.fixture(scope="module")
def scratch_run(
    synthetic_manifest: Manifest, tmp_path_factory: pytest.TempPathFactory
) -> TrainedRun:
    settings = _settings(tmp_path_factory.mktemp("train-home"))
    events: list[tuple[str, int, dict[str, float]]] = []
    trials: list[Trial] = []
    outcome = train_classifier(
        with_outside(synthetic_manifest, tmp_path_factory.mktemp("outside")),
        SCRATCH,
        settings,
        on_epoch=lambda phase, epoch, logs: events.append((phase, epoch, logs)),
        on_trial=trials.append,
    )
    return TrainedRun(outcome, trials, events, settings)


@pytest.mark.slow
def test_the_model_learns_the_synthetic_brands(
    scratch_run: TrainedRun, synthetic_manifest: Manifest
) -> None:
    predictor = BrandPredictor(scratch_run.outcome.model, scratch_run.outcome.classes)
    report = predictor.evaluate(synthetic_manifest.split("test"))
    assert report.n == len(synthetic_manifest.split("test"))
    assert report.accuracy >= 0.8  # chance is 1/3
    assert scratch_run.outcome.classes == ["amber", "cobalt", "jade"]


@pytest.mark.slow
def test_the_sweep_tries_every_point_and_keeps_the_best_on_validation(
    scratch_run: TrainedRun,
) -> None:
    outcome = scratch_run.outcome
    assert scratch_run.trials == outcome.trials
    points = {(t.image_size, t.pool_depth, t.head_units, t.l2) for t in outcome.trials}
    assert points == {(IMAGE_SIZE, d, (), l2) for d in (1, 3) for l2 in (1e-4, 1e-2)}
    assert outcome.chosen is min(outcome.trials, key=Trial.rank_key)
    assert all(0 <= t.val_accuracy <= 1 and t.epochs >= 1 for t in outcome.trials)
    assert outcome.val_accuracy["frozen"] == outcome.chosen.val_accuracy
    # The chosen head's epochs are reported as the frozen phase.
    frozen = [e for p, e, _ in scratch_run.events if p == "frozen"]
    assert frozen == list(range(1, outcome.chosen.epochs + 1))


@pytest.mark.slow
def test_the_head_trained_on_vectors_stored_in_the_shared_space(scratch_run: TrainedRun) -> None:
    outcome = scratch_run.outcome
    store = vector_store(scratch_run.settings, outcome.space)
    # Every training and validation photo, once (the gate may add validation unknowns).
    assert outcome.embedded == {outcome.space: 3 * (14 + 4)} and len(store) >= 3 * (14 + 4)
    assert (store.directory / EMBEDDER_META).is_file()
    # The space is the one the embedding stage computes with the same settings.
    assert outcome.space == Embedder(EmbedderSpec("scratch", "none", IMAGE_SIZE)).space


@pytest.mark.slow
def test_finetuning_is_kept_only_when_validation_improves(
    scratch_run: TrainedRun, synthetic_manifest: Manifest
) -> None:
    outcome = scratch_run.outcome
    assert outcome.finetune_kept == (
        outcome.val_accuracy["finetune"] > outcome.val_accuracy["frozen"]
    )
    # Here it improves (one head epoch on a random backbone leaves everything to gain),
    # and the fine-tuned weights are the ones in the model.
    assert outcome.finetune_kept
    finetune = [e for p, e, _ in scratch_run.events if p == "finetune"]
    assert finetune and finetune == list(range(1, len(finetune) + 1))
    assert outcome.timings["finetune_images_per_s"] > 0
    predictor = BrandPredictor(outcome.model, outcome.classes)
    val = predictor.evaluate(synthetic_manifest.split("val"))
    assert val.accuracy == pytest.approx(outcome.val_accuracy["finetune"])


@pytest.mark.slow
def test_a_finetuning_that_hurts_is_dropped(
    scratch_run: TrainedRun, synthetic_manifest: Manifest
) -> None:
    # A learning rate that wrecks the backbone: validation accuracy falls, and the model
    # that comes out is the frozen one, whose stored-vector head scores as in the sweep.
    config = SCRATCH.model_copy(
        update={
            "pool_depths": (scratch_run.outcome.chosen.pool_depth,),
            "l2": (scratch_run.outcome.chosen.l2,),
            "finetune_learning_rate": 5.0,
            "epochs_finetune": 2,
            "patience": 1,
        }
    )
    outcome = train_classifier(synthetic_manifest, config, scratch_run.settings)
    assert outcome.embedded == {outcome.space: 0}  # every vector was already stored
    assert not outcome.finetune_kept
    assert outcome.val_accuracy["finetune"] <= outcome.val_accuracy["frozen"]
    predictor = BrandPredictor(outcome.model, outcome.classes)
    val = predictor.evaluate(synthetic_manifest.split("val"))
    assert val.accuracy == pytest.approx(outcome.val_accuracy["frozen"])


@pytest.mark.slow
def test_the_open_set_gate_accepts_known_brands_and_refuses_noise(
    scratch_run: TrainedRun, synthetic_manifest: Manifest, tmp_path: Path
) -> None:
    outcome = scratch_run.outcome
    path = tmp_path / "m.keras"
    outcome.model.save(path)
    from baghunter.inference import load_model

    predictor = BrandPredictor(load_model(path), outcome.classes, gate=outcome.gate)
    # The comparison was chosen on the validation unknowns, which it separates.
    assert outcome.gate.val_auroc is not None and outcome.gate.val_auroc > 0.9
    test = synthetic_manifest.split("test")
    answers = predictor.predict_files([e.path for e in test])
    assert np.mean([a.known for a in answers]) >= 0.6
    unknown = unknown_photos(np.random.default_rng(0), 6)  # other photos than validation's
    assert [predictor.brand(a) for a in predictor.predict(unknown)] == [None] * len(unknown)


def test_vgg16_finetunes_only_its_last_block(synthetic_manifest: Manifest, tmp_path: Path) -> None:
    config = TrainConfig(
        backbone="vgg16",
        weights="none",
        image_sizes=(IMAGE_SIZE,),
        pool_depths=(3,),
        head_units=((),),
        l2=(1e-4,),
        batch_size=16,
        epochs_frozen=2,
        epochs_finetune=1,
        finetune_learning_rate=1e-2,
    )
    settings = _settings(tmp_path)
    outcome = train_classifier(synthetic_manifest, config, settings)
    space = vector_store(settings, outcome.space).directory
    before = Embedder.load(space)
    initial = {w.path: keras.ops.convert_to_numpy(w) for w in before.backbone.weights}
    assert len(outcome.history["finetune_loss"]) == 1
    changed = {
        w.path
        for w in outcome.model.get_layer("vgg16_taps").weights
        if not np.array_equal(initial[w.path], keras.ops.convert_to_numpy(w))
    }
    if outcome.finetune_kept:
        assert changed and all("block5_conv" in path for path in changed), sorted(changed)
    else:
        assert not changed
    # Fine-tuning a copy never changes the embedder that defines the space.
    assert Embedder.load(space).space == outcome.space


def test_input_sizes_follow_the_catalog_photos(
    synthetic_manifest: Manifest, tmp_path: Path
) -> None:
    # The synthetic photos are 40-96 px: the shared space's own size, their median long
    # side and half as large again, each in steps of 16.
    sizes = auto_image_sizes(synthetic_manifest.split("train"), _settings(tmp_path))
    assert sizes[0] == IMAGE_SIZE and len(sizes) == 3
    assert 48 <= sizes[1] <= 96 and 1.25 * sizes[1] <= sizes[2] <= 1.75 * sizes[1]
    assert all(size % 16 == 0 for size in sizes) and sizes[1] < sizes[2] <= 224


def test_train_config_fills_what_was_not_given(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        home=tmp_path,
        weights="/models/vgg16.weights.h5",
    )
    with pytest.raises(FileNotFoundError):  # VGG16 gets the configured weights...
        train_config({"backbone": None}, settings)
    scratch = train_config({"backbone": "scratch", "image_size": 48, "epochs_frozen": ""}, settings)
    assert scratch.weights == "none" and scratch.image_sizes == (48,)  # ...a scratch CNN none
    assert scratch.epochs_frozen == TrainConfig.model_fields["epochs_frozen"].default


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
        train_classifier(make(synthetic_manifest), SCRATCH, _settings(tmp_path))
    assert not (tmp_path / "features").exists()  # refused before any embedding


def test_config_rejects_pretrained_weights_for_scratch() -> None:
    with pytest.raises(ValueError, match="scratch"):
        TrainConfig(backbone="scratch", weights="imagenet")
