"""Prediction helpers: entries vs in-memory images, scoring, top-k."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from PIL import Image

from baghunter.dataset.manifest import Manifest
from baghunter.training.data import load_images
from baghunter.training.model import build_classifier
from baghunter.training.predict import (
    evaluate_model,
    model_image_size,
    predict_entries,
    predict_proba,
    top_k,
)

IMAGE_SIZE = 32


@pytest.fixture(scope="module")
def model() -> keras.Model:
    keras.utils.set_random_seed(0)
    model, _ = build_classifier("scratch", "none", 3, IMAGE_SIZE)
    return model


def test_entries_and_in_memory_photos_get_the_same_scores(
    model: keras.Model, synthetic_manifest: Manifest
) -> None:
    # PNG only: PIL and TensorFlow decode JPEG with different IDCTs (pixels differ by 1-2
    # levels), while PNG is lossless, so any difference would be the pipelines' own.
    entries = [e for e in synthetic_manifest.split("test") if e.path.endswith(".png")][:7]
    from_files = predict_entries(model, entries, IMAGE_SIZE, batch_size=4)
    photos = [np.asarray(Image.open(e.path).convert("RGB")) for e in entries]
    in_memory = predict_proba(model, photos, batch_size=4)

    assert from_files.shape == (len(entries), 3) and len(entries) >= 4
    np.testing.assert_allclose(from_files, in_memory, atol=1e-5)
    # A 4-d batch of already-resized images is accepted as well.
    stacked = predict_proba(model, load_images([e.path for e in entries], IMAGE_SIZE))
    np.testing.assert_allclose(stacked, in_memory, atol=1e-5)


def test_evaluate_model_scores_against_the_entry_labels(
    model: keras.Model, synthetic_manifest: Manifest
) -> None:
    entries = synthetic_manifest.split("test")
    probs = predict_entries(model, entries, IMAGE_SIZE)
    report = evaluate_model(model, entries, synthetic_manifest.classes, IMAGE_SIZE)

    labels = np.array([synthetic_manifest.classes.index(e.label) for e in entries])
    assert report.n == len(entries)
    assert report.accuracy == pytest.approx(float(np.mean(probs.argmax(axis=1) == labels)))
    assert np.sum(report.confusion_matrix) == len(entries)


def test_model_image_size_is_read_from_the_model(model: keras.Model) -> None:
    assert model_image_size(model) == IMAGE_SIZE


def test_non_uint8_or_non_rgb_images_are_refused(model: keras.Model) -> None:
    with pytest.raises(ValueError, match="uint8"):
        predict_proba(model, [np.zeros((10, 10, 3), dtype=np.float32)])
    with pytest.raises(ValueError, match=r"\(10, 10\)"):
        predict_proba(model, [np.zeros((10, 10), dtype=np.uint8)])


def test_no_images_give_an_empty_result(model: keras.Model) -> None:
    assert predict_proba(model, []).shape == (0, 3)
    assert predict_entries(model, [], IMAGE_SIZE).shape == (0, 3)


def test_top_k_orders_classes_by_probability() -> None:
    row = np.array([0.1, 0.6, 0.05, 0.25])
    assert top_k(row, ["a", "b", "c", "d"], 3) == [("b", 0.6), ("d", 0.25), ("a", 0.1)]
    assert top_k(row, ["a", "b", "c", "d"], 10)[-1] == ("c", 0.05)
