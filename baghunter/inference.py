"""The one brand-inference path: photos in, brand probabilities and the open-set answer out.

Serving, the listing audit, evaluation, the champion gate, the demo and ``baghunter
predict`` all go through :class:`BrandPredictor`, so a photo gets the same answer
wherever it is asked about.

Images are resized to the model's input size *before* batching, with the same resize the
training pipeline used (:func:`baghunter.training.data.resize_uint8`). The model would
resize them itself, but one batch needs one shape: grouping mixed-size photos by shape
would mean a batch per photo in practice (catalog photos rarely share exact dimensions),
and resizing first feeds the model exactly what it saw in training, with its own
``Resizing`` layer reduced to an identity. Files are decoded by the training pipeline's
own reader, so an evaluation on files scores exactly what training saw.

When the model version carries an open-set gate (:mod:`baghunter.training.open_set`),
the same forward pass also yields the pooled features the gate scores, and each
prediction says whether the photo shows one of the model's brands at all.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from baghunter.dataset.manifest import ManifestEntry
from baghunter.engines import KERAS
from baghunter.training.backbones import CaffePreprocess
from baghunter.training.data import label_indices, path_dataset, resize_uint8
from baghunter.training.metrics import EvalReport, evaluate_probabilities
from baghunter.training.model import FEATURES_LAYER
from baghunter.training.open_set import GATE_FILE, OpenSetGate

if TYPE_CHECKING:
    from baghunter.engines.runners import OnnxRunner

# Model metadata key naming the gate's artifact in the model's run.
OPEN_SET_METADATA = "open_set"
OPEN_SET_ARTIFACT = f"open_set/{GATE_FILE}"


@dataclass(frozen=True)
class OpenSetAnswer:
    """Whether a photo shows one of the model's brands, and how sure that is."""

    known: bool
    score: float  # in [0, 1]; higher: more likely one of the model's brands
    threshold: float  # the score a photo must reach to be answered with a brand


@dataclass(frozen=True)
class BrandPrediction:
    """One photo's answer: the probabilities over the classes and the open-set verdict."""

    probs: np.ndarray  # (k,) in the order of the predictor's classes
    open_set: OpenSetAnswer | None  # None: the model version has no open-set gate

    @property
    def known(self) -> bool:
        return self.open_set is None or self.open_set.known


class BrandPredictor:
    """A brand classifier, its class list, and its open-set gate when it has one."""

    def __init__(
        self,
        model: keras.Model,
        classes: Sequence[str],
        *,
        image_size: int | None = None,
        gate: OpenSetGate | None = None,
        name: str | None = None,
        version: int | None = None,
        run_id: str | None = None,
        runner: OnnxRunner | None = None,
        engine_reason: str = "",
    ) -> None:
        self.model = model
        self.classes = list(classes)
        # The model metadata's size when known; else the model's own ``resize`` layer.
        self.image_size = image_size or model_image_size(model)
        self.gate = gate
        self.name = name
        self.version = version
        self.run_id = run_id
        if model.output_shape[-1] != len(self.classes):
            raise ValueError(
                f"model output {model.output_shape} does not fit {len(classes)} classes"
            )
        # One forward pass for both: probabilities and the features the gate scores.
        self._scorer = with_features(model) if gate is not None else None
        # An exported engine runs the forward pass when given (its graph has both outputs);
        # the Keras model stays for what needs it (the heatmap's gradients).
        self._runner = runner
        self.engine_reason = engine_reason or "configured"

    @property
    def engine(self) -> str:
        return KERAS if self._runner is None else self._runner.engine

    # --- loading -----------------------------------------------------------------------
    @classmethod
    def load(cls, model_uri: str, engine: str = KERAS) -> BrandPredictor:
        """Load a registered (or logged) classifier with its gate (see ``registry``).

        ``engine`` is a :data:`baghunter.engines.EngineSetting`: an export is used only
        for a registered version whose registration checked it (see ``engines.choice``).
        """
        from baghunter import registry
        from baghunter.engines.choice import engine_for

        loaded = registry.load_classifier(model_uri)
        gate = None
        if loaded.metadata.get(OPEN_SET_METADATA) and loaded.run_id:
            gate = load_gate(loaded.run_id, str(loaded.metadata[OPEN_SET_METADATA]))
        runner, reason = None, ""
        if engine != KERAS:
            tags = {}
            if loaded.name is not None and loaded.version is not None:
                tags = registry.version_tags(loaded.name, loaded.version)
            choice, runner = engine_for(engine, tags, loaded.run_id)
            reason = choice.reason
        return cls(
            loaded.model,
            loaded.classes,
            image_size=loaded.image_size,
            gate=gate,
            name=loaded.name,
            version=loaded.version,
            run_id=loaded.run_id,
            runner=runner,
            engine_reason=reason,
        )

    # --- predicting --------------------------------------------------------------------
    def predict(
        self, images: Sequence[np.ndarray] | np.ndarray, batch_size: int = 32
    ) -> list[BrandPrediction]:
        """Answers for raw RGB ``uint8`` images of any, mixed sizes, in order."""
        return self._answers(*self._run(self._resized(images), batch_size))

    def predict_files(self, paths: Sequence[str], batch_size: int = 32) -> list[BrandPrediction]:
        """Answers for image files, decoded by the training pipeline's reader."""
        return self._answers(*self._run_files(paths, batch_size))

    def probabilities(
        self, images: Sequence[np.ndarray] | np.ndarray, batch_size: int = 32
    ) -> np.ndarray:
        """Class probabilities ``(n, k)`` alone (no open-set work)."""
        return self._run(self._resized(images), batch_size, features=False)[0]

    def file_probabilities(self, paths: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Class probabilities ``(n, k)`` of image files alone."""
        return self._run_files(paths, batch_size, features=False)[0]

    def top_k(self, probs_row: np.ndarray, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most probable brands of one prediction, best first, in [0, 1]."""
        order = np.argsort(-np.asarray(probs_row), kind="stable")[:k]
        # Clamped: a float32 softmax can overshoot 1.0 by an ulp, which is not a probability.
        return [(self.classes[i], min(1.0, max(0.0, float(probs_row[i])))) for i in order]

    def brand(self, prediction: BrandPrediction) -> str | None:
        """The answer: the top brand, or None when the photo shows none of the model's."""
        if not prediction.known:
            return None
        return self.classes[int(np.argmax(prediction.probs))]

    def evaluate(self, entries: Sequence[ManifestEntry], batch_size: int = 32) -> EvalReport:
        """Score ``entries`` (usually a test split) with the shared metrics."""
        labels = label_indices(entries, self.classes)
        probs = self.file_probabilities([e.path for e in entries], batch_size)
        return evaluate_probabilities(labels, probs, self.classes)

    # --- internals ---------------------------------------------------------------------
    def _resized(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        if isinstance(images, np.ndarray) and images.ndim == 4:
            images = list(images)
        resized = []
        for i, image in enumerate(images):
            # Strict on purpose: a float image in [0, 1] would otherwise be scored as black.
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
                raise ValueError(
                    f"image {i}: expected an (h, w, 3) uint8 RGB array, "
                    f"got {image.dtype} {image.shape}"
                )
            resized.append(np.asarray(resize_uint8(image, self.image_size)))
        if not resized:
            return np.zeros((0, self.image_size, self.image_size, 3), np.uint8)
        return np.stack(resized)

    def _run(
        self, batch: np.ndarray, batch_size: int, features: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if len(batch) == 0:
            return np.zeros((0, len(self.classes)), np.float32), None
        scorer = self._scorer if features and self._scorer is not None else None
        probs, feats = [], []
        for start in range(0, len(batch), batch_size):
            chunk = batch[start : start + batch_size]
            if self._runner is not None:
                outputs = self._runner.run(chunk)
                p = outputs[0]
                if scorer is not None:
                    feats.append(np.asarray(outputs[1], np.float32))
            # predict_on_batch, not predict: ``predict`` builds a dataset and a step loop
            # on every call, ~100 ms of overhead that dominates single-image latency.
            elif scorer is not None:
                p, f = scorer.predict_on_batch(chunk)
                feats.append(np.asarray(f, np.float32))
            else:
                p = self.model.predict_on_batch(chunk)
            probs.append(np.asarray(p, np.float32))
        return np.concatenate(probs), (np.concatenate(feats) if feats else None)

    def _run_files(
        self, paths: Sequence[str], batch_size: int, features: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`_run` over image files, decoded and resized a batch at a time."""
        if not paths:
            return self._run(np.zeros((0, 1, 1, 3), np.uint8), batch_size, features)
        runs = [
            self._run(np.asarray(batch), batch_size, features)
            for batch in path_dataset(list(paths), self.image_size).batch(batch_size)
        ]
        feats = [f for _, f in runs if f is not None]
        return np.concatenate([p for p, _ in runs]), (np.concatenate(feats) if feats else None)

    def _answers(self, probs: np.ndarray, features: np.ndarray | None) -> list[BrandPrediction]:
        if self.gate is None or features is None:
            return [BrandPrediction(row, None) for row in probs]
        scores = self.gate.score(features, probs.argmax(axis=1))
        threshold = self.gate.threshold
        return [
            BrandPrediction(row, OpenSetAnswer(bool(s >= threshold), float(s), threshold))
            for row, s in zip(probs, scores, strict=True)
        ]


def with_features(model: keras.Model) -> keras.Model:
    """``model`` with a second output: the :data:`FEATURES_LAYER` the head reads.

    This two-output graph is also what is exported to the other engines, so an export
    answers the open-set gate too.
    """
    return keras.Model(model.inputs, [model.output, model.get_layer(FEATURES_LAYER).output])


def load_model(path: Path | str) -> keras.Model:
    """Load a saved ``.keras`` classifier (its custom preprocessing layer registered)."""
    # Passed explicitly rather than relying on the registration done when ``backbones``
    # is imported, so the dependency cannot be lost to an import clean-up.
    return keras.saving.load_model(path, custom_objects={"CaffePreprocess": CaffePreprocess})


def model_image_size(model: keras.Model) -> int:
    """The square input size of a classifier (its ``resize`` layer)."""
    return int(model.get_layer("resize").height)


def load_gate(run_id: str, artifact: str = OPEN_SET_ARTIFACT) -> OpenSetGate:
    """The open-set gate logged with a training run."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="baghunter-gate-") as tmp:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=artifact, dst_path=tmp
        )
        return OpenSetGate.load(Path(local))


def prediction_dict(
    predictor: BrandPredictor, prediction: BrandPrediction, k: int
) -> dict[str, Any]:
    """One answer in the API's shape (the service's schemas and the CLI both use it)."""
    answer = prediction.open_set
    return {
        "brand": predictor.brand(prediction),
        "predictions": [
            {"brand": brand, "probability": p} for brand, p in predictor.top_k(prediction.probs, k)
        ],
        "open_set": None
        if answer is None
        else {"known": answer.known, "score": answer.score, "threshold": answer.threshold},
    }
