"""Running a model on an engine: photos at the model's input size in, its outputs out.

A runner returns the model's outputs as a list of arrays, in the order of the Keras
model's flattened outputs (a dict of outputs: sorted by key), whatever the engine.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from baghunter.engines import KERAS

if TYPE_CHECKING:
    import keras


class Runner(Protocol):
    engine: str

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Outputs for ``(n, s, s, 3)`` uint8 photos."""
        ...


class KerasRunner:
    engine = KERAS

    def __init__(self, model: keras.Model) -> None:
        self.model = model

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        import keras

        # predict_on_batch, not predict: no per-call dataset and step loop (~100 ms).
        outputs = self.model.predict_on_batch(batch)
        return [np.asarray(o) for o in keras.tree.flatten(outputs)]


class OnnxRunner:
    """An ONNX Runtime session over one exported file."""

    def __init__(self, path: Path, engine: str) -> None:
        import onnxruntime as ort

        self.engine = engine
        self.path = path
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=providers())
        self._input = self.session.get_inputs()[0].name

    @property
    def provider(self) -> str:
        return str(self.session.get_providers()[0])

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(o) for o in self.session.run(None, {self._input: batch})]


def providers() -> list[str]:
    """The GPU's execution provider first when this onnxruntime build has it."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return [p for p in wanted if p in available] or ["CPUExecutionProvider"]


def run_all(runner: Runner, photos: np.ndarray, batch_size: int = 8) -> list[np.ndarray]:
    """``runner`` over ``photos`` a batch at a time, outputs concatenated."""
    chunks = [runner.run(photos[i : i + batch_size]) for i in range(0, len(photos), batch_size)]
    return [np.concatenate(parts) for parts in zip(*chunks, strict=True)]


def throughput(runner: Runner, photos: np.ndarray, batch_size: int = 8) -> float:
    """Images per second of ``runner`` over ``photos`` after one warm-up batch."""
    runner.run(photos[:batch_size])
    start = time.perf_counter()
    run_all(runner, photos, batch_size)
    return len(photos) / max(time.perf_counter() - start, 1e-9)
