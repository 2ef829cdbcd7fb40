"""The full classifier: raw images of any size in, probabilities out; parts share weights."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from baghunter.training.model import ClassifierParts, build_classifier
from baghunter.training.predict import load_model, predict_proba

NUM_CLASSES = 3


@pytest.fixture(scope="module")
def vgg_classifier() -> tuple[keras.Model, ClassifierParts]:
    """An untrained VGG16 classifier: enough to test wiring, preprocessing and saving."""
    keras.utils.set_random_seed(0)
    return build_classifier("vgg16", "none", NUM_CLASSES, 32)


def odd_images() -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [
        rng.integers(0, 256, size=shape, dtype=np.uint8)
        for shape in [(37, 53, 3), (300, 120, 3), (1, 1, 3), (32, 32, 3)]
    ]


def test_full_model_takes_raw_images_of_any_size(
    vgg_classifier: tuple[keras.Model, ClassifierParts],
) -> None:
    model, _ = vgg_classifier
    for image in odd_images():
        probs = keras.ops.convert_to_numpy(model(image[None], training=False))
        assert probs.shape == (1, NUM_CLASSES)
        assert probs.dtype == np.float32
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        assert (probs >= 0).all()


def test_predict_proba_handles_a_mixed_size_list(
    vgg_classifier: tuple[keras.Model, ClassifierParts],
) -> None:
    model, _ = vgg_classifier
    images = odd_images()
    probs = predict_proba(model, images, batch_size=3)
    assert probs.shape == (len(images), NUM_CLASSES)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # Batched scoring agrees with scoring each photo on its own through the raw model.
    for image, row in zip(images, probs, strict=True):
        alone = keras.ops.convert_to_numpy(model(image[None], training=False))[0]
        np.testing.assert_allclose(row, alone, atol=1e-3)


def test_augmentation_only_acts_in_training(
    vgg_classifier: tuple[keras.Model, ClassifierParts],
) -> None:
    model, parts = vgg_classifier
    batch = np.stack([img for img in odd_images() if img.shape == (32, 32, 3)] * 4)

    first = keras.ops.convert_to_numpy(model(batch, training=False))
    second = keras.ops.convert_to_numpy(model(batch, training=False))
    np.testing.assert_array_equal(first, second)

    # At inference the full model is exactly head(feature_extractor(x)): what phase 1
    # trains the head on is what the deployed model computes.
    features = parts.feature_extractor(batch, training=False)
    via_parts = keras.ops.convert_to_numpy(parts.head(features, training=False))
    np.testing.assert_allclose(first, via_parts, atol=1e-5)

    # In training mode the augmentation layers do change the pixels that reach the backbone.
    augmentation = model.get_layer("augmentation")
    pixels = batch.astype("float32")
    jittered = keras.ops.convert_to_numpy(augmentation(pixels, training=True))
    assert not np.allclose(jittered, pixels)


def test_saved_model_reloads_with_identical_predictions(
    vgg_classifier: tuple[keras.Model, ClassifierParts], tmp_path: Path
) -> None:
    model, _ = vgg_classifier
    path = tmp_path / "classifier.keras"
    model.save(path)

    reloaded = load_model(path)

    images = odd_images()
    np.testing.assert_allclose(
        predict_proba(reloaded, images), predict_proba(model, images), atol=1e-6
    )


def test_head_is_the_original_three_dense_layers(
    vgg_classifier: tuple[keras.Model, ClassifierParts],
) -> None:
    _, parts = vgg_classifier
    dense = [layer for layer in parts.head.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [256, 128, NUM_CLASSES]
    assert dense[-1].dtype_policy.compute_dtype == "float32"


def test_single_class_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2 classes"):
        build_classifier("scratch", "none", 1, 32)
