"""Exporting a Keras model to ONNX (fp32 and statically quantized int8).

The maintained tools do the work: tf2onnx converts, onnxruntime's quantization tools
quantize. What is ours is the graph that is exported: the model for photos already at its
input size. Inference resizes every photo before batching anyway (one batch needs one
shape), so the model's own ``Resizing`` layer is an identity there; it is replaced by
one, which also drops TensorFlow's antialiased resize op, which ONNX has no equivalent of.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

INPUT_NAME = "image"
OPSET = 17
CALIBRATION_BATCH = 8


def fixed_size_graph(model: keras.Model, image_size: int) -> keras.Model:
    """``model`` for ``(n, image_size, image_size, 3)`` uint8 photos, same weights.

    Every layer named ``resize`` (nested models included) becomes an identity; the rest
    is rebuilt from its config and the weights copied over, so the result computes what
    ``model`` computes on photos that are already at ``image_size``.
    """
    import keras

    def rebuild(layer: keras.Layer) -> keras.Layer:
        if layer.name == "resize":
            return keras.layers.Identity(name="resize")
        return layer.__class__.from_config(layer.get_config())

    images = keras.Input((image_size, image_size, 3), dtype="uint8", name=INPUT_NAME)
    # Keras checks that the new input has the structure of the old (a tensor or a list).
    inputs = [images] if isinstance(model.input, list) else images
    clone = keras.models.clone_model(
        model, clone_function=rebuild, input_tensors=inputs, recursive=True
    )
    clone.set_weights(model.get_weights())
    return clone


def to_onnx(graph: keras.Model, path: Path) -> Path:
    """Convert a fixed-size graph (:func:`fixed_size_graph`) to an fp32 ONNX file."""
    import tensorflow as tf
    import tf2onnx

    size = graph.inputs[0].shape[1:]
    signature = (tf.TensorSpec((None, *size), tf.uint8, name=INPUT_NAME),)
    path.parent.mkdir(parents=True, exist_ok=True)
    tf2onnx.convert.from_keras(graph, input_signature=signature, opset=OPSET, output_path=str(path))
    return path


@dataclass(frozen=True)
class Int8Recipe:
    """How activations are calibrated and which operators are quantized."""

    method: str = "MinMax"  # onnxruntime CalibrationMethod: MinMax, Percentile, Entropy
    percentile: float | None = None  # for Percentile
    op_types: tuple[str, ...] | None = None  # None: every operator onnxruntime can quantize
    keep_float: tuple[str, ...] = ()  # nodes whose name contains one of these stay fp32

    @property
    def name(self) -> str:
        ops = "all" if self.op_types is None else "+".join(self.op_types)
        level = "" if self.percentile is None else f"-{self.percentile:g}"
        kept = "".join(f"-fp32:{k}" for k in self.keep_float)
        return f"{self.method.lower()}{level}-{ops}{kept}"

    def excluded_nodes(self, model_path: Path) -> list[str]:
        if not self.keep_float:
            return []
        import onnx

        graph = onnx.load(str(model_path)).graph
        return [n.name for n in graph.node if any(k in n.name for k in self.keep_float)]


DEFAULT_RECIPE = Int8Recipe()


def quantize_int8(
    fp32: Path, path: Path, calibration: np.ndarray, recipe: Int8Recipe = DEFAULT_RECIPE
) -> Path:
    """Static int8 quantization of ``fp32``, calibrated on ``calibration`` photos.

    Weights per channel as int8, activations as uint8, in the QDQ format that ONNX
    Runtime fuses into integer kernels (VNNI on CPUs that have it).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(calibration) == 0:
        raise ValueError("int8 calibration needs at least one photo")

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches: Iterator[dict[str, np.ndarray]] = iter(
                {INPUT_NAME: calibration[i : i + CALIBRATION_BATCH]}
                for i in range(0, len(calibration), CALIBRATION_BATCH)
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    prepared = path.with_name(path.stem + "-prepared.onnx")
    # Shape inference and graph clean-up first, as onnxruntime recommends; symbolic shape
    # inference (sympy) is not needed: every shape but the batch is fixed.
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    try:
        quantize_static(
            str(prepared),
            str(path),
            Batches(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod[recipe.method],
            op_types_to_quantize=None if recipe.op_types is None else list(recipe.op_types),
            nodes_to_exclude=recipe.excluded_nodes(prepared),
            extra_options={}
            if recipe.percentile is None
            else {"CalibPercentile": recipe.percentile},
        )
    finally:
        prepared.unlink(missing_ok=True)
    return path
