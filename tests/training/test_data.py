"""The tf.data input pipeline over manifest entries."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from PIL import Image

from baghunter.dataset.manifest import Manifest
from baghunter.training.data import (
    RESIZE_ANTIALIAS,
    RESIZE_INTERPOLATION,
    image_dataset,
    load_images,
    resize_uint8,
)


def test_batches_are_uint8_images_with_labels_in_class_order(
    synthetic_manifest: Manifest,
) -> None:
    entries = synthetic_manifest.split("train")
    dataset = image_dataset(
        entries, synthetic_manifest.classes, 40, batch_size=16, shuffle=False, cache=False
    )

    images, labels = [], []
    for image_batch, label_batch in dataset:
        assert image_batch.dtype == "uint8"
        assert tuple(image_batch.shape[1:]) == (40, 40, 3)
        assert len(image_batch) <= 16
        images.append(image_batch.numpy())
        labels.extend(label_batch.numpy().tolist())

    expected = [synthetic_manifest.classes.index(e.label) for e in entries]
    assert labels == expected
    # The pixels are those of the files, in entry order (decoded independently with PIL).
    first = np.asarray(Image.open(entries[0].path).convert("RGB"))
    np.testing.assert_array_equal(images[0][0], resize_uint8(first, 40).numpy())


def test_shuffle_is_seeded_and_keeps_every_example(synthetic_manifest: Manifest) -> None:
    entries = synthetic_manifest.split("train")

    def label_order(seed: int) -> list[int]:
        dataset = image_dataset(
            entries, synthetic_manifest.classes, 32, 8, shuffle=True, seed=seed, cache=True
        )
        return [int(y) for _, batch in dataset for y in batch.numpy()]

    first, again, other = label_order(3), label_order(3), label_order(4)
    assert first == again
    assert first != other
    assert sorted(first) == sorted(synthetic_manifest.classes.index(e.label) for e in entries)


def test_unknown_label_is_rejected(synthetic_manifest: Manifest) -> None:
    with pytest.raises(ValueError, match="not in the class list"):
        image_dataset(synthetic_manifest.entries, ["amber"], 32, 8, shuffle=False, cache=False)


def test_load_images_stacks_resized_files(synthetic_manifest: Manifest) -> None:
    paths = [e.path for e in synthetic_manifest.split("test")[:5]]
    images = load_images(paths, 48)
    assert images.shape == (5, 48, 48, 3)
    assert images.dtype == np.uint8


def test_pipeline_resize_agrees_with_the_models_resizing_layer() -> None:
    """Pre-resized training images must look like what the model makes of a raw photo."""
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(1, 53, 37, 3), dtype=np.uint8)
    layer = keras.layers.Resizing(
        32, 32, interpolation=RESIZE_INTERPOLATION, antialias=RESIZE_ANTIALIAS
    )
    inside_model = keras.ops.convert_to_numpy(layer(raw.astype("float32")))[0]
    pipeline = resize_uint8(raw[0], 32).numpy().astype("float32")

    # Only the rounding to uint8 differs.
    assert np.abs(inside_model - pipeline).max() <= 0.5 + 1e-4
    # And the layer leaves an image that already has the right size untouched.
    again = keras.ops.convert_to_numpy(layer(pipeline[None]))[0]
    np.testing.assert_allclose(again, pipeline, atol=1e-3)
