"""Backbones: weight sources, preprocessing layers, what fine-tuning unfreezes."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from baghunter.training.backbones import build_backbone, finetune_layers, preprocess_layer


def test_vgg16_preprocess_layer_matches_keras_reference() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(2, 5, 7, 3)).astype("float32")

    ours = keras.ops.convert_to_numpy(preprocess_layer("vgg16")(pixels))
    reference = keras.applications.vgg16.preprocess_input(pixels.copy())

    np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_scratch_preprocess_scales_to_unit_range() -> None:
    pixels = np.array([[[[0, 255, 51]]]], dtype="float32")
    out = keras.ops.convert_to_numpy(preprocess_layer("scratch")(pixels))
    np.testing.assert_allclose(out, [[[[0.0, 1.0, 0.2]]]], atol=1e-6)


def test_local_weights_file_restores_identical_backbone(tmp_path: Path) -> None:
    keras.utils.set_random_seed(1)
    original = build_backbone("vgg16", "none", 32)
    path = tmp_path / "vgg16.weights.h5"
    original.save_weights(path)

    keras.utils.set_random_seed(2)  # a different random start, overwritten by the file
    restored = build_backbone("vgg16", str(path), 32)

    assert len(restored.weights) == len(original.weights)
    for ours, theirs in zip(restored.get_weights(), original.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_missing_weights_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.weights.h5"
    with pytest.raises(FileNotFoundError, match=r"nowhere\.weights\.h5"):
        build_backbone("vgg16", str(missing), 32)


def test_scratch_backbone_refuses_pretrained_weights() -> None:
    with pytest.raises(ValueError, match="scratch"):
        build_backbone("scratch", "imagenet", 32)


def test_unknown_backbone_is_rejected() -> None:
    with pytest.raises(ValueError, match="resnet"):
        build_backbone("resnet", "none", 32)


def test_vgg16_finetunes_only_its_last_conv_block() -> None:
    backbone = build_backbone("vgg16", "none", 32)
    names = {layer.name for layer in finetune_layers("vgg16", backbone)}
    assert names == {"block5_conv1", "block5_conv2", "block5_conv3"}


def test_scratch_finetunes_everything() -> None:
    backbone = build_backbone("scratch", "none", 32)
    assert finetune_layers("scratch", backbone) == list(backbone.layers)
