"""The multi-output attribute head, trained on stored embeddings.

One shared hidden layer feeds one softmax per attribute. Labels are class indices with
``-1`` for "no label": the masked loss gives such rows zero loss *for that head only*, so
a listing without a usage value still teaches article type and colour. Each head's loss is
averaged over the rows that have its label, so a sparsely labelled attribute is not
down-weighted by its coverage.

The head starts with a normalization layer adapted to the training vectors: pooled conv
features differ in scale by orders of magnitude between blocks, and the statistics travel
inside the model, so it takes raw stored vectors (the audit) and embedder output (serving)
alike.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import layers, ops

log = logging.getLogger(__name__)

HEADS_NAME = "attribute_heads"
MAX_CLASS_WEIGHT = 10.0
VARIANCE_FLOOR = 1e-2  # relative to the mean variance of all features


@dataclass(frozen=True)
class HeadConfig:
    hidden: int = 512
    dropout: float = 0.3
    learning_rate: float = 1e-3
    batch_size: int = 128
    epochs: int = 60
    patience: int = 6  # early stopping on validation loss
    class_weight: bool = False  # inverse-frequency weights per head (favours macro-F1)
    seed: int = 42


# Registered so a model saved while compiled with them (a checkpoint, a user's own export)
# deserializes in a fresh process, as the brand model's custom layer does.
@keras.saving.register_keras_serializable(package="baghunter")
class MaskedSparseCrossentropy(keras.losses.Loss):
    """Sparse cross-entropy ignoring rows labelled ``-1``, averaged over labelled rows."""

    def __init__(
        self, class_weights: list[float] | None = None, name: str = "masked_crossentropy"
    ) -> None:
        super().__init__(name=name, reduction="sum_over_batch_size")
        self.class_weights = class_weights

    def call(self, y_true: Any, y_pred: Any) -> Any:
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        mask = ops.cast(ops.greater_equal(labels, 0), y_pred.dtype)
        safe = ops.maximum(labels, 0)
        loss = keras.losses.sparse_categorical_crossentropy(safe, y_pred)
        if self.class_weights is not None:
            weights = ops.convert_to_tensor(self.class_weights, dtype=y_pred.dtype)
            loss = loss * ops.take(weights, safe)
        # The batch mean Keras takes afterwards becomes the mean over labelled rows.
        rows = ops.cast(ops.shape(labels)[0], y_pred.dtype)
        return loss * mask * rows / ops.maximum(ops.sum(mask), 1.0)

    def get_config(self) -> dict[str, Any]:
        return {"class_weights": self.class_weights, "name": self.name}


@keras.saving.register_keras_serializable(package="baghunter")
class MaskedAccuracy(keras.metrics.Metric):
    """Accuracy over the rows that have a label (for the training curves)."""

    def __init__(self, name: str = "accuracy", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.labelled = self.add_variable(shape=(), initializer="zeros", name="labelled")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        mask = ops.cast(ops.greater_equal(labels, 0), "float32")
        hits = ops.cast(ops.equal(ops.argmax(y_pred, axis=-1), labels), "float32")
        self.correct.assign_add(ops.sum(hits * mask))
        self.labelled.assign_add(ops.sum(mask))

    def result(self) -> Any:
        return self.correct / ops.maximum(self.labelled, 1.0)

    def reset_state(self) -> None:
        self.correct.assign(0.0)
        self.labelled.assign(0.0)


def output_key(attribute: str) -> str:
    """The model's output (and head layer) name for an attribute.

    Keras names losses and metrics after the outputs and refuses spaces and most
    punctuation, which attribute names from a CSV header may hold ("base colour").
    """
    return "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in attribute)


def output_keys(attributes: Iterable[str]) -> dict[str, str]:
    """attribute -> output key, refusing two attributes that map to one key."""
    keys = {name: output_key(name) for name in attributes}
    if len(set(keys.values())) != len(keys):
        raise ValueError(f"attribute names collide as model outputs: {sorted(keys)}")
    return keys


def build_heads(
    dim: int, attributes: Mapping[str, list[str]], config: HeadConfig, train_features: np.ndarray
) -> keras.Model:
    """``features (n, dim) -> {attribute: probabilities (n, k)}``."""
    features = keras.Input(shape=(dim,), dtype="float32", name="features")
    x = _normalization(np.asarray(train_features, np.float32))(features)
    x = layers.Dropout(config.dropout / 2, name="heads_input_dropout")(x)
    x = layers.Dense(config.hidden, activation="relu", name="heads_shared")(x)
    x = layers.Dropout(config.dropout, name="heads_dropout")(x)
    keys = output_keys(attributes)
    outputs = {
        keys[name]: layers.Dense(len(vocabulary), activation="softmax", name=keys[name])(x)
        for name, vocabulary in attributes.items()
    }
    return keras.Model(features, outputs, name=HEADS_NAME)


def _normalization(train_features: np.ndarray) -> layers.Normalization:
    """Standardize each feature with the training statistics.

    The variance is floored: a unit that is (almost) constant in training (a dead ReLU
    channel) would otherwise be divided by ~0 and turn a small difference in a new photo
    into a huge input.
    """
    mean = train_features.mean(axis=0)
    variance = train_features.var(axis=0)
    floor = VARIANCE_FLOOR * float(variance.mean()) + 1e-12
    return layers.Normalization(
        mean=mean, variance=np.maximum(variance, floor), name="heads_normalize"
    )


def class_weights(labels: np.ndarray, k: int) -> list[float]:
    """Inverse-frequency weights (mean 1 over labelled rows), capped so rare classes stay sane."""
    labelled = labels[labels >= 0]
    counts = np.bincount(labelled, minlength=k).astype(np.float64)
    weights = np.where(counts > 0, len(labelled) / (k * np.maximum(counts, 1)), 1.0)
    return [float(w) for w in np.clip(weights, 1 / MAX_CLASS_WEIGHT, MAX_CLASS_WEIGHT)]


def fit_heads(
    train: tuple[np.ndarray, Mapping[str, np.ndarray]],
    val: tuple[np.ndarray, Mapping[str, np.ndarray]],
    attributes: Mapping[str, list[str]],
    config: HeadConfig,
    on_epoch: Any = None,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Train the heads; returns the model (best validation weights) and its history.

    ``train``/``val`` are ``(features, {attribute: labels})`` with ``-1`` for no label.
    ``on_epoch(epoch, logs)`` is called after each epoch (progress in logs and the CLI).
    """
    x_train, y_train = train
    x_val, y_val = val
    if len(x_train) == 0 or len(x_val) == 0:
        raise ValueError(f"need training and validation rows, got {len(x_train)} and {len(x_val)}")
    keras.utils.set_random_seed(config.seed)
    model = build_heads(x_train.shape[1], attributes, config, x_train)
    keys = output_keys(attributes)
    losses = {
        keys[name]: MaskedSparseCrossentropy(
            class_weights(np.asarray(y_train[name]), len(vocab)) if config.class_weight else None
        )
        for name, vocab in attributes.items()
    }
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=losses,
        metrics={keys[name]: [MaskedAccuracy()] for name in attributes},
    )
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.patience, restore_best_weights=True
        ),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.3, patience=max(1, config.patience // 2), min_lr=1e-6
        ),
    ]
    if on_epoch is not None:
        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=on_epoch))
    history = model.fit(
        x_train,
        {keys[name]: np.asarray(y_train[name], np.int32) for name in attributes},
        validation_data=(x_val, {keys[n]: np.asarray(y_val[n], np.int32) for n in attributes}),
        batch_size=config.batch_size,
        epochs=config.epochs,
        callbacks=callbacks,
        shuffle=True,
        verbose=0,
    )
    curves = {k: [float(v) for v in values] for k, values in history.history.items()}
    log.info("attribute heads: %d epochs, best val_loss %.4f", len(curves["loss"]),
             min(curves["val_loss"]))  # fmt: skip
    return model, curves


def predict_outputs(
    model: keras.Model,
    inputs: np.ndarray,
    attributes: Mapping[str, list[str]],
    batch_size: int = 1024,
) -> dict[str, np.ndarray]:
    """Probabilities ``(n, k)`` per attribute (rows aligned) from a dict-output model."""
    keys = output_keys(attributes)
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in attributes}
    for start in range(0, len(inputs), batch_size):
        out = model.predict_on_batch(inputs[start : start + batch_size])
        for name in attributes:
            chunks[name].append(np.asarray(out[keys[name]], np.float32))
    return {
        name: np.concatenate(chunks[name])
        if chunks[name]
        else np.zeros((0, len(vocabulary)), np.float32)
        for name, vocabulary in attributes.items()
    }


def predict_heads(
    heads: keras.Model,
    features: np.ndarray,
    attributes: Mapping[str, list[str]],
    batch_size: int = 1024,
) -> dict[str, np.ndarray]:
    """Probabilities per attribute for stored vectors ``features (n, d)``, rows aligned."""
    features = np.asarray(features, np.float32)
    if features.ndim != 2:
        raise ValueError(f"features must be (n, d), got {features.shape}")
    return predict_outputs(heads, features, attributes, batch_size)
