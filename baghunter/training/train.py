"""Two-phase transfer-learning training of the brand classifier.

Phase 1 ("frozen") trains only the dense head on top of the frozen backbone; by default on
cached backbone features (:mod:`baghunter.training.features`), which turns the expensive
part of every epoch into a one-off, at the price of no augmentation in this phase. Phase 2
("finetune") unfreezes the backbone's last block and trains the full model on augmented
images at a much lower learning rate, so the pretrained filters adapt without being
destroyed by the large gradients of a randomly initialised head (the reason for two
phases at all). Both phases stop early on validation loss and keep their best epoch.

MLflow logging is not done here: callers get the history, timings and an ``on_epoch``
hook, so this module stays usable from tests, benchmarks and notebooks.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import keras
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from baghunter.dataset.manifest import Manifest, ManifestEntry
from baghunter.training.backbones import finetune_layers, validate_weights
from baghunter.training.data import image_dataset, label_indices
from baghunter.training.features import FeatureCache, backbone_id
from baghunter.training.model import ClassifierParts, build_classifier

logger = logging.getLogger(__name__)

EpochHook = Callable[[str, int, dict[str, float]], None]


class TrainConfig(BaseModel):
    """Hyper-parameters of one training run (logged as MLflow params by the registry).

    The defaults are for VGG16 transfer learning. A ``scratch`` model has no pretrained
    filters to protect, and learns almost nothing while its random backbone is frozen, so
    it wants few frozen epochs and a ``finetune_learning_rate`` around 1e-3.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    backbone: Literal["vgg16", "scratch"] = "vgg16"
    weights: str = Field(
        default="imagenet", description="'imagenet', 'none', or a local .weights.h5 file."
    )
    image_size: int = Field(default=224, ge=32, description="VGG16 needs at least 32 px.")
    batch_size: int = Field(default=32, ge=1)
    epochs_frozen: int = Field(default=15, ge=0)
    epochs_finetune: int = Field(default=5, ge=0, description="0 skips fine-tuning.")
    learning_rate: float = Field(default=1e-3, gt=0)
    finetune_learning_rate: float = Field(default=1e-5, gt=0)
    patience: int = Field(default=3, ge=1, description="Early-stopping patience, in epochs.")
    augment: bool = True
    cache_features: bool = True
    class_weights: bool = True
    seed: int = 42
    mixed_precision: bool | Literal["auto"] = Field(
        default="auto", description="'auto' turns float16 compute on only when a GPU is present."
    )

    @model_validator(mode="after")
    def _check_weights(self) -> TrainConfig:
        validate_weights(self.backbone, self.weights)
        return self


@dataclass
class TrainOutcome:
    """A trained model and the record of how it got there (for MLflow and benchmarks)."""

    model: keras.Model
    history: dict[str, list[float]]  # phase-prefixed: frozen_loss, finetune_val_accuracy...
    classes: list[str]
    timings: dict[str, float]  # seconds and images/s per phase, feature extraction seconds
    feature_cache: dict[str, int] = field(default_factory=lambda: {"computed": 0, "reused": 0})


def train_classifier(
    manifest: Manifest,
    config: TrainConfig,
    *,
    cache_dir: Path,
    on_epoch: EpochHook | None = None,
) -> TrainOutcome:
    """Train a classifier on the manifest's train split, validating on its val split.

    ``cache_dir`` holds the frozen-feature cache (shared across runs and datasets).
    ``on_epoch(phase, epoch, logs)`` is called after every epoch, with ``phase`` in
    ``{"frozen", "finetune"}``, a 1-based ``epoch`` and Keras' logs (loss, val_loss...).
    The test split is not used here: scoring it is ``predict.evaluate_model``'s job, so
    training cannot peek at it.
    """
    train, val = _validated_splits(manifest)
    classes = list(manifest.classes)
    y_train = label_indices(train, classes)
    class_weight = _balanced_class_weights(y_train, len(classes)) if config.class_weights else None

    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    with _precision_policy(_use_mixed_precision(config.mixed_precision)):
        model, parts = build_classifier(
            config.backbone, config.weights, len(classes), config.image_size, augment=config.augment
        )
    data = _Splits(train, val, classes, config)
    runner = _PhaseRunner(config, len(train), class_weight, on_epoch)
    cache_stats = {"computed": 0, "reused": 0}

    # --- phase 1: frozen backbone, train the head --------------------------------------
    parts.backbone.trainable = False
    if config.epochs_frozen > 0:
        if config.cache_features:
            cache_stats = _fit_head_on_cached_features(parts, data, runner, cache_dir)
        else:
            _compile(model, config.learning_rate)
            runner.fit(
                "frozen",
                model,
                config.epochs_frozen,
                x=data.train_images,
                shuffle=False,  # the pipeline reshuffles every epoch
                validation_data=data.val_images,
            )

    # --- phase 2: unfreeze the last block, fine-tune end to end ------------------------
    if config.epochs_finetune > 0:
        _unfreeze_for_finetuning(parts)
        # Recompiling is required for the new trainable set to take effect; it also gives
        # phase 2 a fresh optimizer state at the low learning rate.
        _compile(model, config.finetune_learning_rate)
        runner.fit(
            "finetune",
            model,
            config.epochs_finetune,
            x=data.train_images,
            shuffle=False,  # the pipeline reshuffles every epoch
            validation_data=data.val_images,
        )

    runner.timings["total_s"] = time.perf_counter() - started
    return TrainOutcome(
        model=model,
        history=runner.history,
        classes=classes,
        timings=runner.timings,
        feature_cache=cache_stats,
    )


def _fit_head_on_cached_features(
    parts: ClassifierParts, data: _Splits, runner: _PhaseRunner, cache_dir: Path
) -> dict[str, int]:
    """Phase 1 on pooled features from the cache; returns the cache's counters."""
    config = data.config
    cache = FeatureCache(
        cache_dir, backbone_id(config.backbone, config.weights, parts.backbone, config.image_size)
    )
    tick = time.perf_counter()
    extractor = parts.feature_extractor
    x_train = cache.features_for(data.train, extractor, config.image_size, config.batch_size)
    x_val = cache.features_for(data.val, extractor, config.image_size, config.batch_size)
    runner.timings["feature_extraction_s"] = time.perf_counter() - tick

    _compile(parts.head, config.learning_rate)
    runner.fit(
        "frozen",
        parts.head,
        config.epochs_frozen,
        x=x_train,
        y=label_indices(data.train, data.classes),
        batch_size=config.batch_size,
        shuffle=True,
        validation_data=(x_val, label_indices(data.val, data.classes)),
    )
    return {"computed": cache.computed, "reused": cache.reused}


@dataclass
class _Splits:
    """Image pipelines built on first use, then shared by both phases.

    Sharing matters: each pipeline caches its decoded images in memory, so when phase 1
    trains on images, phase 2 reuses its decoding instead of repeating it.
    """

    train: list[ManifestEntry]
    val: list[ManifestEntry]
    classes: list[str]
    config: TrainConfig

    def _dataset(self, entries: list[ManifestEntry], shuffle: bool) -> Any:
        return image_dataset(
            entries,
            self.classes,
            self.config.image_size,
            self.config.batch_size,
            shuffle=shuffle,
            seed=self.config.seed,
            cache=True,
        )

    @cached_property
    def train_images(self) -> Any:
        return self._dataset(self.train, shuffle=True)

    @cached_property
    def val_images(self) -> Any:
        return self._dataset(self.val, shuffle=False)


def _validated_splits(manifest: Manifest) -> tuple[list[ManifestEntry], list[ManifestEntry]]:
    """Refuse, before any expensive work, datasets a meaningful model cannot come from."""
    if len(manifest.classes) < 2:
        raise ValueError(f"need at least 2 classes to train, got {manifest.classes}")
    train, val = manifest.split("train"), manifest.split("val")
    for name, entries in (("train", train), ("val", val)):
        if not entries:
            raise ValueError(f"the {name} split is empty")
    absent = sorted(set(manifest.classes) - {e.label for e in train})
    if absent:
        raise ValueError(f"classes without any training image: {absent}")
    return train, val


def _balanced_class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """``n / (k * count)`` per class: every class weighs the same in the loss in total.

    Catalogs are very unbalanced (a big brand lists ten times more bags than a niche one),
    and without this the model learns to favour the big brands.
    """
    counts = Counter(labels.tolist())
    total = len(labels)
    return {c: total / (num_classes * counts[c]) for c in range(num_classes)}


def _use_mixed_precision(setting: bool | Literal["auto"]) -> bool:
    if setting != "auto":
        return bool(setting)
    # float16 is a large speed-up on GPUs and a slow-down (emulated) on CPUs.
    if keras.config.backend() == "jax":
        import jax

        return any(device.platform == "gpu" for device in jax.devices())
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


@contextmanager
def _precision_policy(mixed: bool) -> Iterator[None]:
    """Build layers under ``mixed_float16`` without leaving the global policy changed.

    Layers capture the policy when they are created, so restoring it afterwards keeps the
    model mixed while later, unrelated models in the same process are not.
    """
    previous = keras.config.dtype_policy()
    if mixed:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _compile(model: keras.Model, learning_rate: float) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def _unfreeze_for_finetuning(parts: ClassifierParts) -> None:
    parts.backbone.trainable = True
    unfrozen = {id(layer) for layer in finetune_layers(parts.backbone_name, parts.backbone)}
    for layer in parts.backbone.layers:
        layer.trainable = id(layer) in unfrozen
    logger.info("fine-tuning %d of %d backbone layers", len(unfrozen), len(parts.backbone.layers))


class _EpochReporter(keras.callbacks.Callback):
    """Logs each epoch (one line, CI-friendly) and forwards it to the caller's hook."""

    def __init__(self, phase: str, epochs: int, on_epoch: EpochHook | None) -> None:
        super().__init__()
        self.phase = phase
        self.epochs = epochs
        self.on_epoch = on_epoch
        self._epoch_started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        values = {key: float(value) for key, value in (logs or {}).items()}
        logger.info(
            "%s epoch %d/%d (%.1f s): %s",
            self.phase,
            epoch + 1,
            self.epochs,
            time.perf_counter() - self._epoch_started,
            " ".join(f"{key}={value:.4g}" for key, value in sorted(values.items())),
        )
        if self.on_epoch is not None:
            self.on_epoch(self.phase, epoch + 1, values)


@dataclass
class _PhaseRunner:
    """Fits the phases with the same callbacks, collecting history and throughput."""

    config: TrainConfig
    n_train: int
    class_weight: dict[int, float] | None
    on_epoch: EpochHook | None
    history: dict[str, list[float]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def fit(self, phase: str, target: keras.Model, epochs: int, **fit_data: Any) -> None:
        """Fit one phase with early stopping (best epoch kept); record it under ``phase``."""
        patience = self.config.patience
        callbacks = [
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=patience, restore_best_weights=True
            ),
            # Reduce before early stopping gives up: a lower rate often rescues a plateau.
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=0.2, patience=max(1, patience // 2), min_lr=1e-7
            ),
            _EpochReporter(phase, epochs, self.on_epoch),
        ]
        tick = time.perf_counter()
        result = target.fit(
            epochs=epochs,
            class_weight=self.class_weight,
            callbacks=callbacks,
            verbose=0,
            **fit_data,
        )
        seconds = time.perf_counter() - tick
        epochs_run = len(result.history.get("loss", []))
        for key, values in result.history.items():
            self.history[f"{phase}_{key}"] = [float(v) for v in values]
        self.timings[f"{phase}_s"] = seconds
        self.timings[f"{phase}_epochs"] = float(epochs_run)
        self.timings[f"{phase}_images_per_s"] = self.n_train * epochs_run / seconds
