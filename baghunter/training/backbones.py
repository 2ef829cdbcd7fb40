"""Convolutional backbones and the input preprocessing each one expects.

Two backbones are offered: ``vgg16`` (ImageNet transfer learning, the model the original
bag-brand studies settled on) and ``scratch`` (a small CNN trained from random weights, the
baseline those studies compared against). Each comes with its preprocessing *as a layer*,
so the exported model carries it and serving cannot apply a different one than training.

Keras is imported at module level on purpose: the preprocessing layer must be registered
as serializable before a saved model is loaded, and only training/serving code imports
this module (nothing light such as the CLI's help or an Airflow DAG parse does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
from keras import layers, ops

BACKBONES = ("vgg16", "scratch")

# ImageNet channel means in BGR order, as used by the original Caffe VGG weights.
_IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)

# Filters of the scratch CNN's Conv-BN-ReLU-MaxPool blocks: small enough to train on a CPU
# in minutes, deep enough to see shapes and logos rather than only colours.
_SCRATCH_FILTERS = (32, 64, 128, 256)


@keras.saving.register_keras_serializable(package="baghunter")
class CaffePreprocess(layers.Layer):
    """RGB pixels in [0, 255] -> BGR with the ImageNet mean subtracted (no scaling).

    This is what ``keras.applications.vgg16.preprocess_input`` does, written with
    ``keras.ops`` so it runs inside the model on every backend and survives saving.
    """

    def call(self, inputs: Any) -> Any:
        x = ops.cast(inputs, self.compute_dtype)
        bgr = ops.flip(x, axis=-1)
        mean = ops.convert_to_tensor(_IMAGENET_MEAN_BGR, dtype=self.compute_dtype)
        return bgr - mean

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape


class WeightsUnavailable(RuntimeError):
    """The backbone's weights cannot be had on this machine (download impossible)."""


def _reason(exc: BaseException) -> str:
    """The last, most specific part of a download error, on one line."""
    text = " ".join(str(exc).split())
    return text.rsplit(": ", 1)[-1][:160] or type(exc).__name__


def validate_weights(name: str, weights: str) -> None:
    """Reject backbone/weights combinations that cannot be built (before any work starts)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; expected one of {BACKBONES}")
    if name == "scratch" and weights != "none":
        raise ValueError("the scratch backbone has no pretrained weights; use weights='none'")
    if weights not in ("imagenet", "none") and not Path(weights).is_file():
        raise FileNotFoundError(
            f"backbone weights {weights!r} are neither 'imagenet', 'none' nor an existing file"
        )


def build_backbone(name: str, weights: str, image_size: int) -> keras.Model:
    """Build a headless backbone for square ``image_size`` inputs (preprocessed pixels).

    ``weights`` is ``"imagenet"`` (downloaded by Keras on first use), ``"none"`` (random
    initialisation) or the path of a local ``.weights.h5`` file, for machines that cannot
    download or to start from a backbone fine-tuned elsewhere.
    """
    validate_weights(name, weights)
    input_shape = (image_size, image_size, 3)
    if name == "scratch":
        return _scratch_cnn(input_shape)
    if weights == "imagenet":
        try:  # Keras downloads the file once into ~/.keras, then works offline
            return keras.applications.VGG16(
                include_top=False, weights="imagenet", input_shape=input_shape
            )
        except Exception as exc:  # no network, a proxy, a full disk: all say "not here"
            raise WeightsUnavailable(
                f"VGG16's ImageNet weights cannot be downloaded here ({_reason(exc)}). "
                "Give a local file: BAGHUNTER_WEIGHTS=/path/vgg16_notop.weights.h5, or "
                "`baghunter config --remember weights=/path/vgg16_notop.weights.h5` for "
                "every run on this data home; or weights 'none' for an untrained backbone"
            ) from exc
    backbone = keras.applications.VGG16(include_top=False, weights=None, input_shape=input_shape)
    if weights != "none":
        backbone.load_weights(weights)
    return backbone


def _scratch_cnn(input_shape: tuple[int, int, int]) -> keras.Model:
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = inputs
    for i, filters in enumerate(_SCRATCH_FILTERS, start=1):
        x = layers.Conv2D(
            filters, 3, padding="same", kernel_initializer="he_normal", name=f"block{i}_conv"
        )(x)
        x = layers.ReLU(name=f"block{i}_relu")(x)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    return keras.Model(inputs, x, name="scratch_cnn")


def preprocess_layer(name: str) -> layers.Layer:
    """The input preprocessing ``name``'s weights were trained with, as a model layer."""
    if name == "vgg16":
        return CaffePreprocess(name="preprocess")
    if name == "scratch":
        return layers.Rescaling(1.0 / 255, name="preprocess")
    raise ValueError(f"unknown backbone {name!r}; expected one of {BACKBONES}")


def finetune_layers(name: str, backbone: keras.Model) -> list[layers.Layer]:
    """Layers unfrozen in the fine-tuning phase.

    For VGG16 only the last conv block: its features are the most task-specific, and
    updating earlier blocks on a few thousand product photos mostly overfits. The scratch
    CNN has nothing pretrained to protect, so all of it trains.
    """
    if name == "vgg16":
        return [
            layer
            for layer in backbone.layers
            if layer.name.startswith("block5_") and isinstance(layer, layers.Conv2D)
        ]
    if name == "scratch":
        return list(backbone.layers)
    raise ValueError(f"unknown backbone {name!r}; expected one of {BACKBONES}")
