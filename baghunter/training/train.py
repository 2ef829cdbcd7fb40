"""Brand training on the shared embedding space: a swept head on stored vectors, then fine-tuning.

1. **Vectors.** Every photo of the dataset gets a vector in each candidate embedding
   space (:mod:`baghunter.embeddings`: the same vectors ``image_features`` stores, keyed
   by image sha256), so only photos that have none are embedded; right after an ingest
   that is all of them, after ``image_features`` none.
2. **Sweep.** A small grid of head choices - input size (one space per size), how many
   of the last conv blocks are pooled, hidden layers, L2 - each fitted on the stored
   training vectors and scored on the validation split. Trials cost seconds: no image
   is decoded and no backbone runs. The best validation accuracy wins (then the lower
   validation loss, then the smaller head).
3. **Classifier.** The winning head on top of its embedder: one Keras model taking raw
   ``uint8`` photos (:func:`baghunter.training.model.build_classifier`).
4. **Fine-tuning.** The backbone's last block is unfrozen and the whole model trains on
   augmented raw photos at a low learning rate. It is kept only if validation accuracy
   improves; otherwise the frozen model stands. Both results are recorded.
5. **Open set.** The gate (:mod:`baghunter.training.open_set`) keeps the final model's
   features of the training photos and sets its threshold on the validation photos.

MLflow logging is not done here: callers get the trials, history, timings and hooks,
so this module stays usable from tests, benchmarks and notebooks.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import keras
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from baghunter.config import Settings
from baghunter.dataset.manifest import Manifest, ManifestEntry
from baghunter.embeddings.model import Embedder, EmbedderSpec
from baghunter.training.backbones import finetune_layers, validate_weights
from baghunter.training.data import image_dataset, label_indices
from baghunter.training.model import (
    ClassifierParts,
    build_classifier,
    classification_head,
    feature_slice,
    feature_statistics,
)
from baghunter.training.open_set import OpenSetGate

logger = logging.getLogger(__name__)

EpochHook = Callable[[str, int, dict[str, float]], None]
TrialHook = Callable[["Trial"], None]

# Input sizes chosen from the catalog's photos stay within these bounds, in steps of 16:
# below 32 px VGG16's last block has no spatial extent left, and above 224 px (its
# native size) a larger input only costs time.
MIN_AUTO_SIZE, MAX_AUTO_SIZE = 32, 224


class TrainConfig(BaseModel):
    """Hyper-parameters of one training run (logged as MLflow params by the pipeline).

    The tuple-valued fields are the sweep's grid; the chosen point is recorded with the
    run. The defaults are for VGG16 transfer learning. A ``scratch`` model has nothing
    pretrained to start from, so nearly all its learning is fine-tuning: it wants a
    ``finetune_learning_rate`` around 1e-3 and more fine-tuning epochs.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    backbone: Literal["vgg16", "scratch"] = "vgg16"
    weights: str = Field(
        default="imagenet", description="'imagenet', 'none', or a local .weights.h5 file."
    )
    image_sizes: tuple[int, ...] = Field(
        default=(),
        description="Input sizes to try; empty: the shared space's size and the catalog "
        "photos' own size (their median long side).",
    )
    pool_depths: tuple[int, ...] = Field(
        default=(1, 2, 3), description="How many of the last conv blocks the head reads."
    )
    head_units: tuple[tuple[int, ...], ...] = Field(
        default=((), (256,)), description="Hidden layers of each head tried; () is linear."
    )
    l2: tuple[float, ...] = (1e-4, 1e-3)
    dropout: float = Field(default=0.3, ge=0, lt=1)
    batch_size: int = Field(default=32, ge=1)
    epochs_frozen: int = Field(default=80, ge=1, description="Head epochs on stored vectors.")
    epochs_finetune: int = Field(default=4, ge=0, description="0 skips fine-tuning.")
    learning_rate: float = Field(default=1e-3, gt=0)
    finetune_learning_rate: float = Field(default=1e-5, gt=0)
    patience: int = Field(default=8, ge=1, description="Early-stopping patience, in epochs.")
    augment: bool = True
    class_weights: bool = True
    open_set_accept: float = Field(
        default=0.9,
        ge=0.5,
        lt=1,
        description="Share of known brands' validation photos the open-set threshold answers.",
    )
    seed: int = 42
    mixed_precision: bool | Literal["auto"] = Field(
        default="auto", description="'auto' turns float16 compute on only when a GPU is present."
    )

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        validate_weights(self.backbone, self.weights)
        for size in self.image_sizes:
            if not 32 <= size <= 512:
                raise ValueError(f"image sizes must be 32..512, not {size}")
        if not self.pool_depths or not self.head_units or not self.l2:
            raise ValueError("pool_depths, head_units and l2 need at least one value each")
        return self


def train_config(options: dict[str, Any], settings: Settings) -> TrainConfig:
    """The run's TrainConfig: the options given (None or "" means not given), then the
    home's training defaults (``settings.train_defaults``), then TrainConfig's. The one
    place that says which weights a backbone gets when none are named: VGG16 the
    configured ones, a scratch CNN none.
    """
    given = {k: v for k, v in options.items() if v not in (None, "", [], ())}
    defaults = dict(settings.train_defaults)
    if given.get("backbone", defaults.get("backbone")) != defaults.get("backbone"):
        defaults = {}  # a recipe for another backbone says nothing about this one
    if "image_size" in given or "image_sizes" in given:  # the run's sizes replace the home's
        defaults = {k: v for k, v in defaults.items() if k not in ("image_size", "image_sizes")}
    given = {**defaults, **given}
    if "image_size" in given:  # a single pinned size, as the CLI and DAG spell it
        given["image_sizes"] = (int(given.pop("image_size")),)
    backbone = given.get("backbone", TrainConfig.model_fields["backbone"].default)
    given.setdefault("weights", settings.weights if backbone == "vgg16" else "none")
    return TrainConfig.model_validate(given)


@dataclass
class Trial:
    """One point of the sweep, fitted on the training vectors and scored on validation."""

    number: int
    image_size: int
    pool_depth: int
    head_units: tuple[int, ...]
    l2: float
    space: str = ""
    val_accuracy: float = 0.0
    val_loss: float = float("inf")
    epochs: int = 0
    seconds: float = 0.0
    history: dict[str, list[float]] = field(default_factory=dict)
    head: keras.Model | None = field(default=None, repr=False)

    @property
    def params(self) -> dict[str, Any]:
        return {
            "image_size": self.image_size,
            "pool_depth": self.pool_depth,
            "head_units": list(self.head_units),
            "l2": self.l2,
        }

    def rank_key(self) -> tuple[float, float, int]:
        """Smaller is better: accuracy first, then loss, then the simpler head."""
        return (-self.val_accuracy, self.val_loss, sum(self.head_units))


@dataclass
class TrainOutcome:
    """A trained model and the record of how it got there (for MLflow and benchmarks)."""

    model: keras.Model
    classes: list[str]
    image_size: int
    space: str  # the embedding space whose vectors trained the head
    trials: list[Trial]
    chosen: Trial
    finetune_kept: bool
    val_accuracy: dict[str, float]  # "frozen" and, when it ran, "finetune"
    history: dict[str, list[float]]  # phase-prefixed: frozen_loss, finetune_val_accuracy...
    timings: dict[str, float]  # seconds per stage, images/s of fine-tuning
    embedded: dict[str, int]  # photos embedded by this run, per space
    gate: OpenSetGate


def train_classifier(
    manifest: Manifest,
    config: TrainConfig,
    settings: Settings,
    *,
    on_epoch: EpochHook | None = None,
    on_trial: TrialHook | None = None,
) -> TrainOutcome:
    """Train a classifier on the manifest's train split, choosing on its val split.

    Vectors are read from and added to ``settings.features_root``. ``on_trial`` sees each
    sweep trial as it finishes; ``on_epoch(phase, epoch, logs)`` each fine-tuning epoch
    (``phase`` ``"finetune"``) and the chosen head's epochs (``"frozen"``). The test
    split is not used here: scoring it is the evaluation's job, so training cannot peek.
    """
    from baghunter.embeddings.pipeline import embed_missing, vector_store

    train, val = _validated_splits(manifest)
    classes = list(manifest.classes)
    y_train, y_val = label_indices(train, classes), label_indices(val, classes)
    class_weight = _balanced_class_weights(y_train, len(classes)) if config.class_weights else None
    timings: dict[str, float] = {}
    started = time.perf_counter()

    # --- 1. vectors in every candidate space ----------------------------------------------
    sizes = config.image_sizes or auto_image_sizes(train, settings)
    embedders: dict[int, Embedder] = {}
    vectors: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    embedded: dict[str, int] = {}
    photos = {e.sha256: e.path for e in [*train, *val]}
    for size in sizes:
        # The shared space, computed by the configured engine (its vectors are the
        # Keras backbone's close approximation; the classifier itself is Keras).
        spec = EmbedderSpec(config.backbone, config.weights, size, settings.embed_engine)
        embedder = Embedder(spec)
        embedded[embedder.space] = embed_missing(embedder, settings, photos)
        store = vector_store(settings, embedder.space)
        _, x_train = store.load([e.sha256 for e in train])
        _, x_val = store.load([e.sha256 for e in val])
        embedders[size], vectors[size] = embedder, (x_train, x_val)
    timings["vectors_s"] = time.perf_counter() - started

    # --- 2. the sweep -------------------------------------------------------------------
    tick = time.perf_counter()
    trials: list[Trial] = []
    grid = [
        (size, depth, units, l2)
        for size in sizes
        for depth in config.pool_depths
        if depth <= len(embedders[size].block_dims)
        for units in config.head_units
        for l2 in config.l2
    ]
    for number, (size, depth, units, l2) in enumerate(grid, start=1):
        trial = Trial(number, size, depth, tuple(units), l2, space=embedders[size].space)
        columns = feature_slice(embedders[size].block_dims, depth)
        x_train, x_val = vectors[size]
        _fit_head(
            trial,
            x_train[:, columns],
            y_train,
            x_val[:, columns],
            y_val,
            config,
            class_weight,
            len(classes),
        )
        trials.append(trial)
        logger.info(
            "trial %d/%d %s: val_accuracy=%.4f val_loss=%.4f (%d epochs, %.1f s)",
            number,
            len(grid),
            trial.params,
            trial.val_accuracy,
            trial.val_loss,
            trial.epochs,
            trial.seconds,
        )
        if on_trial is not None:
            on_trial(trial)
    chosen = min(trials, key=Trial.rank_key)
    timings["sweep_s"] = time.perf_counter() - tick
    logger.info("chosen: trial %d %s", chosen.number, chosen.params)
    history = {f"frozen_{key}": values for key, values in chosen.history.items()}
    if on_epoch is not None:
        for epoch, logs in enumerate(_epoch_logs(chosen.history), start=1):
            on_epoch("frozen", epoch, logs)

    # --- 3. the classifier: a copy of the chosen space's embedder + the chosen head -------
    space_dir = vector_store(settings, chosen.space).directory
    assert chosen.head is not None
    keras.utils.set_random_seed(config.seed)
    mixed = _use_mixed_precision(config.mixed_precision)
    with _precision_policy(mixed):
        # A copy: fine-tuning must not change the embedder that defines the space.
        base = Embedder.load(space_dir, verify=not mixed)
        model, training_model, parts = build_classifier(
            base, chosen.head, pool_depth=chosen.pool_depth, augment=config.augment
        )
    val_accuracy = {"frozen": chosen.val_accuracy}

    # --- 4. fine-tuning, kept only if validation improves ------------------------------
    finetune_kept = False
    if config.epochs_finetune > 0:
        tick = time.perf_counter()
        data = _Splits(train, val, classes, config, chosen.image_size)
        frozen_weights = model.get_weights()
        _unfreeze_for_finetuning(parts)
        _compile(training_model, config.finetune_learning_rate)
        runner = _PhaseRunner(config, len(train), class_weight, on_epoch)
        runner.fit(
            "finetune",
            training_model,
            config.epochs_finetune,
            x=data.train_images,
            shuffle=False,  # the pipeline reshuffles every epoch
            validation_data=data.val_images,
        )
        history.update(runner.history)
        timings.update(runner.timings)
        _compile(model, config.finetune_learning_rate)
        finetuned = model.evaluate(data.val_images, verbose=0, return_dict=True)
        val_accuracy["finetune"] = float(finetuned["accuracy"])
        finetune_kept = val_accuracy["finetune"] > val_accuracy["frozen"]
        if not finetune_kept:
            model.set_weights(frozen_weights)
        logger.info(
            "fine-tuning %s: validation accuracy %.4f -> %.4f",
            "kept" if finetune_kept else "dropped",
            val_accuracy["frozen"],
            val_accuracy["finetune"],
        )
        timings["finetune_total_s"] = time.perf_counter() - tick

    # --- 5. the open-set gate on the final model's features ----------------------------
    tick = time.perf_counter()
    # Validation photos of no known brand (other brands, other categories), if the
    # dataset has any: they choose how the gate compares, never the threshold.
    outside = [e for e in manifest.outside if e.split == "val"]
    columns = feature_slice(embedders[chosen.image_size].block_dims, chosen.pool_depth)
    if finetune_kept:  # the backbone changed: its features are no longer the stored ones
        f_train, f_val, f_out = (
            _extract(parts, [e.path for e in entries], chosen.image_size, config.batch_size)
            for entries in (train, val, outside)
        )
    else:
        x_train, x_val = vectors[chosen.image_size]
        f_train, f_val = x_train[:, columns], x_val[:, columns]
        embedder = embedders[chosen.image_size]
        embed_missing(embedder, settings, {e.sha256: e.path for e in outside})
        f_out = (
            vector_store(settings, embedder.space).load([e.sha256 for e in outside])[1][:, columns]
            if outside
            else np.zeros((0, f_train.shape[1]), np.float32)
        )
    gate = OpenSetGate.fit(
        f_train,
        y_train,
        f_val,
        np.asarray(parts.head.predict(f_val, verbose=0)).argmax(axis=1),
        accept=config.open_set_accept,
        unknown_features=f_out,
        unknown_predicted=np.asarray(parts.head.predict(f_out, verbose=0)).argmax(axis=1)
        if len(f_out)
        else np.zeros(0, np.int64),
        seed=config.seed,
    )
    logger.info(
        "open-set gate: %s, threshold %.4f (validation AUROC against %d unknown photos: %s)",
        gate.variant.name(),
        gate.threshold,
        len(outside),
        "n/a" if gate.val_auroc is None else f"{gate.val_auroc:.3f}",
    )
    timings["open_set_s"] = time.perf_counter() - tick
    timings["total_s"] = time.perf_counter() - started
    return TrainOutcome(
        model=model,
        classes=classes,
        image_size=chosen.image_size,
        space=chosen.space,
        trials=trials,
        chosen=chosen,
        finetune_kept=finetune_kept,
        val_accuracy=val_accuracy,
        history=history,
        timings=timings,
        embedded=embedded,
        gate=gate,
    )


def _extract(
    parts: ClassifierParts, paths: list[str], image_size: int, batch_size: int
) -> np.ndarray:
    """The classifier's pooled features of image files (no augmentation)."""
    from baghunter.training.data import path_dataset

    if not paths:
        return np.zeros((0, int(parts.feature_extractor.output_shape[-1])), np.float32)
    batches = path_dataset(paths, image_size).batch(batch_size)
    return np.asarray(parts.feature_extractor.predict(batches, verbose=0), np.float32)


def auto_image_sizes(entries: list[ManifestEntry], settings: Settings) -> tuple[int, ...]:
    """The shared space's size, the photos' own size (median long side) and 1.5 times it.

    The shared space's vectors usually exist already (``image_features``), so trying it
    costs nothing; the photos' own size avoids upsampling small catalog photos to a
    large input at many times the cost, with nothing gained.
    """
    from PIL import Image

    from baghunter.images.locations import open_binary

    sides = []
    for entry in entries[:200]:  # a sample: catalogs serve photos at a few fixed sizes
        try:
            with open_binary(entry.path) as stream, Image.open(stream) as image:
                sides.append(max(image.size))
        except OSError:
            continue
    sizes = [settings.embed_image_size]
    if sides:
        own = statistics.median(sides)
        # The photos' own size, and half as large again: upsampling a little gives the
        # last conv block a few more positions to place a logo or a clasp on.
        for size in (own, own * 1.5):
            rounded = min(MAX_AUTO_SIZE, max(MIN_AUTO_SIZE, int(round(size / 16) * 16)))
            if rounded not in sizes:
                sizes.append(rounded)
    return tuple(sizes)


def _fit_head(
    trial: Trial,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    config: TrainConfig,
    class_weight: dict[int, float] | None,
    num_classes: int,
) -> None:
    """Fit one trial's head on vectors (early stopping keeps its best epoch)."""
    tick = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    head = classification_head(
        x_train.shape[1],
        num_classes,
        trial.head_units,
        config.dropout,
        trial.l2,
        statistics=feature_statistics(x_train),
    )
    _compile(head, config.learning_rate)
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.patience, restore_best_weights=True
        ),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.2, patience=max(1, config.patience // 2), min_lr=1e-6
        ),
    ]
    result = head.fit(
        x_train,
        y_train,
        batch_size=config.batch_size,
        epochs=config.epochs_frozen,
        validation_data=(x_val, y_val),
        class_weight=class_weight,
        shuffle=True,
        callbacks=callbacks,
        verbose=0,
    )
    scores = head.evaluate(x_val, y_val, verbose=0, return_dict=True)
    trial.head = head
    trial.history = {k: [float(v) for v in values] for k, values in result.history.items()}
    trial.epochs = len(result.history.get("loss", []))
    trial.val_accuracy = float(scores["accuracy"])
    trial.val_loss = float(scores["loss"])
    trial.seconds = time.perf_counter() - tick


def _epoch_logs(history: dict[str, list[float]]) -> Iterator[dict[str, float]]:
    epochs = len(history.get("loss", []))
    for i in range(epochs):
        yield {key: values[i] for key, values in history.items() if i < len(values)}


@dataclass
class _Splits:
    """Image pipelines built on first use, each decoding its photos once (cached)."""

    train: list[ManifestEntry]
    val: list[ManifestEntry]
    classes: list[str]
    config: TrainConfig
    image_size: int

    def _dataset(self, entries: list[ManifestEntry], shuffle: bool) -> Any:
        return image_dataset(
            entries,
            self.classes,
            self.image_size,
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
    backbone = parts.backbone
    backbone.trainable = True
    unfrozen = {id(layer) for layer in finetune_layers(parts.backbone_name, backbone)}
    for layer in backbone.layers:
        layer.trainable = id(layer) in unfrozen
    logger.info("fine-tuning %d of %d backbone layers", len(unfrozen), len(backbone.layers))


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
    """Fits a phase with early stopping, collecting history and throughput."""

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
