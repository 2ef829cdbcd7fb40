"""The classifier on the shared embedder: raw images in, its features are the stored vectors."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from baghunter.embeddings.model import Embedder, EmbedderSpec
from baghunter.inference import BrandPredictor, load_model
from baghunter.training.data import resize_uint8
from baghunter.training.model import (
    FEATURES_LAYER,
    ClassifierParts,
    build_classifier,
    classification_head,
    feature_slice,
)

NUM_CLASSES = 3
SPEC = EmbedderSpec("vgg16", "none", 32)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    """An untrained VGG16 embedder: enough to test wiring, preprocessing and saving."""
    return Embedder(SPEC)


def _classifier(
    embedder: Embedder, pool_depth: int = 3
) -> tuple[keras.Model, keras.Model, ClassifierParts]:
    dim = sum(embedder.block_dims[len(embedder.block_dims) - pool_depth :])
    keras.utils.set_random_seed(0)
    head = classification_head(dim, NUM_CLASSES, (16,), dropout=0.3, l2=1e-4)
    return build_classifier(embedder, head, pool_depth=pool_depth)


def odd_images() -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [
        rng.integers(0, 256, size=shape, dtype=np.uint8)
        for shape in [(37, 53, 3), (300, 120, 3), (1, 1, 3), (32, 32, 3)]
    ]


def test_full_model_takes_raw_images_of_any_size(embedder: Embedder) -> None:
    model, _, _ = _classifier(embedder)
    for image in odd_images():
        probs = keras.ops.convert_to_numpy(model(image[None], training=False))
        assert probs.shape == (1, NUM_CLASSES)
        assert probs.dtype == np.float32
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("pool_depth", [1, 2, 3])
def test_the_heads_input_is_the_stored_vector_or_its_last_blocks(
    embedder: Embedder, pool_depth: int
) -> None:
    _, _, parts = _classifier(embedder, pool_depth)
    images = [image for image in odd_images() if min(image.shape[:2]) > 1]
    stored = embedder.embed_arrays(images)  # what the embedding stage keeps per photo
    columns = feature_slice(embedder.block_dims, pool_depth)
    batch = np.stack([np.asarray(resize_uint8(image, SPEC.image_size)) for image in images])
    features = keras.ops.convert_to_numpy(parts.feature_extractor(batch))
    assert features.shape == (len(images), columns.stop - columns.start)
    np.testing.assert_allclose(features, stored[:, columns], rtol=1e-3, atol=1e-2)


def test_feature_slice_takes_the_last_blocks() -> None:
    assert feature_slice([256, 512, 512], 1) == slice(768, 1280)
    assert feature_slice([256, 512, 512], 3) == slice(0, 1280)
    with pytest.raises(ValueError, match="pool_depth"):
        feature_slice([256, 512, 512], 4)


def test_augmentation_acts_only_in_the_training_model(embedder: Embedder) -> None:
    model, training_model, parts = _classifier(embedder)
    batch = np.stack([odd_images()[3]] * 4)
    first = keras.ops.convert_to_numpy(model(batch, training=False))
    again = keras.ops.convert_to_numpy(model(batch, training=False))
    np.testing.assert_array_equal(first, again)
    # At inference the model is exactly head(feature_extractor(x)).
    via_parts = parts.head(parts.feature_extractor(batch), training=False)
    np.testing.assert_allclose(first, keras.ops.convert_to_numpy(via_parts), atol=1e-5)
    assert "augmentation" not in [layer.name for layer in model.layers]
    jittered = training_model.get_layer("augmentation")(batch.astype("float32"), training=True)
    assert not np.allclose(keras.ops.convert_to_numpy(jittered), batch)
    # The two share their weights: training one trains the served one.
    assert {id(w) for w in model.weights} <= {id(w) for w in training_model.weights}


def test_saved_model_reloads_with_identical_predictions_and_features(
    embedder: Embedder, tmp_path: Path
) -> None:
    model, _, _ = _classifier(embedder, pool_depth=2)
    path = tmp_path / "classifier.keras"
    model.save(path)
    reloaded = load_model(path)
    images = odd_images()
    before = BrandPredictor(model, ["a", "b", "c"]).probabilities(images)
    after = BrandPredictor(reloaded, ["a", "b", "c"]).probabilities(images)
    np.testing.assert_allclose(after, before, atol=1e-6)
    assert reloaded.get_layer(FEATURES_LAYER).output.shape[-1] == 1024


def test_head_shapes_and_output_dtype() -> None:
    linear = classification_head(64, NUM_CLASSES, ())
    dense = [layer for layer in linear.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [NUM_CLASSES]
    deep = classification_head(64, NUM_CLASSES, (32, 16), l2=1e-3)
    dense = [layer for layer in deep.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [32, 16, NUM_CLASSES]
    assert dense[-1].dtype_policy.compute_dtype == "float32"
    assert all(layer.kernel_regularizer is not None for layer in dense)
