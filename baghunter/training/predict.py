"""Prediction and scoring with a trained (or reloaded) classifier.

Images are resized to the model's input size *before* batching, with the same resize the
training pipeline used (:func:`baghunter.training.data.resize_uint8`). The model would
resize them itself, but one batch needs one shape: grouping mixed-size photos by shape
would mean a batch per photo in practice (catalog photos rarely share exact dimensions),
and resizing first feeds the model exactly what it saw in training, with its own
``Resizing`` layer reduced to an identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from baghunter.dataset.manifest import ManifestEntry
from baghunter.training.backbones import CaffePreprocess
from baghunter.training.data import label_indices, path_dataset, resize_uint8
from baghunter.training.metrics import EvalReport, evaluate_probabilities


def load_model(path: Path | str) -> keras.Model:
    """Load a saved ``.keras`` classifier (its custom preprocessing layer registered)."""
    # Passed explicitly rather than relying on the registration done when ``backbones``
    # is imported, so the dependency cannot be lost to an import clean-up.
    return keras.saving.load_model(path, custom_objects={"CaffePreprocess": CaffePreprocess})


def model_image_size(model: keras.Model) -> int:
    """The square input size of a classifier built by ``build_classifier``."""
    resize = model.get_layer("resize")
    return int(resize.height)


def predict_proba(
    model: keras.Model, images: Sequence[np.ndarray] | np.ndarray, batch_size: int = 32
) -> np.ndarray:
    """Class probabilities ``(n, k)`` for raw RGB ``uint8`` images of any, mixed sizes."""
    image_size = model_image_size(model)
    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    resized = []
    for i, image in enumerate(images):
        # Strict on purpose: a float image in [0, 1] would otherwise be scored as black.
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(
                f"image {i}: expected an (h, w, 3) uint8 RGB array, got {image.dtype} {image.shape}"
            )
        resized.append(resize_uint8(image, image_size).numpy())
    if not resized:
        return np.zeros((0, model.output_shape[-1]), dtype=np.float32)
    batch = np.stack(resized)
    # predict_on_batch, not predict: ``predict`` builds a dataset and a step loop on every
    # call, ~100 ms of overhead that dominates single-image serving latency on a CPU.
    chunks = [
        np.asarray(model.predict_on_batch(batch[start : start + batch_size]), dtype=np.float32)
        for start in range(0, len(batch), batch_size)
    ]
    return np.concatenate(chunks)


def predict_entries(
    model: keras.Model, entries: Sequence[ManifestEntry], image_size: int, batch_size: int = 32
) -> np.ndarray:
    """Class probabilities for manifest entries, decoded by the training pipeline."""
    if not entries:
        return np.zeros((0, model.output_shape[-1]), dtype=np.float32)
    batches = path_dataset([e.path for e in entries], image_size).batch(batch_size)
    return np.asarray(model.predict(batches, verbose=0), dtype=np.float32)


def evaluate_model(
    model: keras.Model,
    entries: Sequence[ManifestEntry],
    classes: Sequence[str],
    image_size: int,
    batch_size: int = 32,
) -> EvalReport:
    """Score the model on ``entries`` (usually the test split) with the shared metrics."""
    labels = label_indices(entries, classes)
    probs = predict_entries(model, entries, image_size, batch_size)
    return evaluate_probabilities(labels, probs, list(classes))


def top_k(probs_row: np.ndarray, classes: Sequence[str], k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` most probable classes of one prediction, most probable first."""
    order = np.argsort(-np.asarray(probs_row), kind="stable")[:k]
    return [(classes[i], float(probs_row[i])) for i in order]
