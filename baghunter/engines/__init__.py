"""Inference engines: the Keras model itself, or ONNX Runtime running its exports.

Every registered model version gets two ONNX exports (:mod:`.export`): fp32, and int8
with static quantization calibrated on that model's own training photos. Each is checked
against the Keras model on the validation split when the version is registered
(:mod:`.checks`): its top-1 agreement and throughput are recorded as version tags, and
an export below :data:`MIN_AGREEMENT` is kept for inspection but never served.
:mod:`.runners` runs a model on the engine chosen (:mod:`.choice`) for a version.

This module holds only names, so settings can import them without loading a runtime.
"""

from typing import Literal

KERAS = "keras"
ONNX = "onnx"
ONNX_INT8 = "onnx-int8"
AUTO = "auto"
EXPORTED: tuple[str, ...] = (ONNX, ONNX_INT8)  # engines that run an exported artifact
EngineSetting = Literal["keras", "onnx", "onnx-int8", "auto"]

# Share of validation photos on which an export must give the Keras model's top answer
# (for a multi-output model: on every output) before it may serve.
MIN_AGREEMENT = 0.99
