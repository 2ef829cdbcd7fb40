"""At registration: export a model version to each engine, check it, record the verdict.

For each exported engine the version gets tags (readable in the registry UI) and its run
gets the same figures as metrics (comparable across runs):

* ``engine.<engine>.status``: ``passed``, or why it may not serve;
* ``engine.<engine>.agreement``: share of validation photos with Keras' top-1 answer;
* ``engine.<engine>.images_per_s``: throughput over the validation photos, batches of 8;
* ``engine.<engine>.artifact``: the export, an artifact of the version's run;

and ``engine.keras.images_per_s``, the baseline measured the same way in the same process.
A failed export is recorded too: the version still registers and serves on Keras.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from baghunter.engines import EXPORTED, KERAS, MIN_AGREEMENT, ONNX, ONNX_INT8
from baghunter.engines.export import Int8Recipe, fixed_size_graph, quantize_int8, to_onnx
from baghunter.engines.runners import KerasRunner, OnnxRunner, Runner, run_all, throughput

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

PASSED = "passed"
ARTIFACT_DIR = "engines"
FILES = {ONNX: "model-fp32.onnx", ONNX_INT8: "model-int8.onnx"}
# Training photos the int8 calibration sees: a seeded sample (the activation ranges settle
# well before this; more costs registration time).
CALIBRATION_PHOTOS = 64
# Int8 recipes, tried in this order until one reaches MIN_AGREEMENT on validation: every
# operator quantized with min-max ranges (the fastest), then only the convolutions with
# ranges at the 99.999th percentile (the closest to Keras on the real-photo champion;
# bench/int8_recipes.py). A version none passes is served by fp32 or Keras.
INT8_RECIPES = (Int8Recipe(), Int8Recipe("Percentile", 99.999, ("Conv",)))
# Throughput is timed over at least this many photos (the validation photos, repeated).
TIMED_PHOTOS = 64


def tag(engine: str, field: str) -> str:
    return f"engine.{engine}.{field}"


@dataclass(frozen=True)
class EngineCheck:
    """What registration found out about one engine of one model version."""

    engine: str
    status: str  # PASSED, or the reason it may not serve
    agreement: float | None = None
    images_per_s: float | None = None
    artifact: str | None = None  # path inside the version's run
    recipe: str | None = None  # how an int8 export was quantized

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def tags(self) -> dict[str, str]:
        values = {
            "status": self.status,
            "agreement": None if self.agreement is None else f"{self.agreement:.4f}",
            "images_per_s": None if self.images_per_s is None else f"{self.images_per_s:.1f}",
            "artifact": self.artifact,
            "recipe": self.recipe,
        }
        return {tag(self.engine, k): v for k, v in values.items() if v is not None}

    @classmethod
    def from_tags(cls, engine: str, tags: Mapping[str, str]) -> EngineCheck | None:
        status = tags.get(tag(engine, "status"))
        if status is None:
            return None

        def number(field: str) -> float | None:
            value = tags.get(tag(engine, field))
            return None if value is None else float(value)

        return cls(
            engine=engine,
            status=status,
            agreement=number("agreement"),
            images_per_s=number("images_per_s"),
            artifact=tags.get(tag(engine, "artifact")),
            recipe=tags.get(tag(engine, "recipe")),
        )


def top1_agreement(
    reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray], answers: Sequence[int]
) -> float:
    """Share of photos where ``candidate`` gives ``reference``'s top class on every answer."""
    same = np.ones(len(reference[0]), dtype=bool)
    for i in answers:
        same &= reference[i].argmax(axis=-1) == candidate[i].argmax(axis=-1)
    return float(same.mean())


def check_engines(
    model: keras.Model,
    *,
    image_size: int,
    answers: Sequence[int],
    validation: np.ndarray,
    calibration: np.ndarray,
    run_id: str,
    name: str,
    version: int,
) -> list[EngineCheck]:
    """Export ``model`` to each engine, check it on ``validation``, record it on the version.

    ``validation`` and ``calibration`` are photos already at ``image_size``; ``answers``
    are the indices of the model's (flattened) outputs that are class probabilities.
    """
    import mlflow

    client = mlflow.MlflowClient()
    keras_runner = KerasRunner(model)
    timed = _timed_photos(validation)
    keras_rate = throughput(keras_runner, timed) if len(timed) else None
    reference = run_all(keras_runner, validation) if len(validation) else None
    checks: list[EngineCheck] = []
    with tempfile.TemporaryDirectory(prefix="baghunter-engines-") as tmp:
        folder = Path(tmp)
        fp32 = folder / FILES[ONNX]
        # fp32 once; int8 by each recipe in turn until one agrees well enough.
        steps: list[tuple[str, str | None, Callable[[Path], Path]]] = [
            (ONNX, None, lambda path: to_onnx(fixed_size_graph(model, image_size), path)),
            *(
                (ONNX_INT8, r.name, partial(_quantized, fp32=fp32, photos=calibration, recipe=r))
                for r in INT8_RECIPES
            ),
        ]
        best: dict[str, tuple[EngineCheck, Path]] = {}
        for engine, recipe, export in steps:
            if engine in best and best[engine][0].passed:
                continue
            path = folder / (FILES[engine] if recipe is None else f"{recipe}.onnx")
            try:
                export(path)
                runner = OnnxRunner(path, engine)
            except Exception as exc:  # an op ONNX lacks, a calibration failure: recorded
                log.warning("%s v%s: no %s engine: %s", name, version, engine, exc)
                failed = EngineCheck(engine, f"export failed: {type(exc).__name__}: {exc}"[:300])
                best.setdefault(engine, (failed, path))
                continue
            check = replace(_check(runner, reference, answers, validation, timed), recipe=recipe)
            kept = best.get(engine)
            if kept is None or (check.agreement or 0) > (kept[0].agreement or 0):
                best[engine] = (check, path)
        for engine, (check, path) in best.items():
            if path.is_file():  # the export itself, kept with the run even when not served
                final = path.with_name(FILES[engine])
                if final != path:
                    path.replace(final)
                client.log_artifact(run_id, str(final), ARTIFACT_DIR)
                check = replace(check, artifact=f"{ARTIFACT_DIR}/{final.name}")
            checks.append(check)
    tags = {tag(KERAS, "images_per_s"): f"{keras_rate:.1f}"} if keras_rate else {}
    for check in checks:
        tags.update(check.tags())
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, value)
    timestamp = int(time.time() * 1000)
    metrics = [
        mlflow.entities.Metric(key, float(value), timestamp, 0)
        for key, value in tags.items()
        if key.endswith((".agreement", ".images_per_s"))
    ]
    if metrics:
        client.log_batch(run_id, metrics=metrics)
    for check in checks:
        log.info(
            "%s v%s on %s: %s (top-1 agreement %s, %s images/s; Keras %s images/s)",
            name,
            version,
            check.engine,
            check.status,
            check.agreement,
            None if check.images_per_s is None else round(check.images_per_s, 1),
            None if keras_rate is None else round(keras_rate, 1),
        )
    return checks


def _quantized(path: Path, *, fp32: Path, photos: np.ndarray, recipe: Int8Recipe) -> Path:
    return quantize_int8(fp32, path, photos, recipe)


def _check(
    runner: Runner,
    reference: list[np.ndarray] | None,
    answers: Sequence[int],
    validation: np.ndarray,
    timed: np.ndarray,
) -> EngineCheck:
    if reference is None:
        return EngineCheck(runner.engine, "not checked: no validation photos")
    outputs = run_all(runner, validation)
    if len(outputs) != len(reference):
        return EngineCheck(
            runner.engine, f"wrong outputs: {len(outputs)} instead of {len(reference)}"
        )
    agreement = top1_agreement(reference, outputs, answers)
    rate = throughput(runner, timed)
    status = (
        PASSED
        if agreement >= MIN_AGREEMENT
        else f"below {MIN_AGREEMENT:.0%} top-1 agreement with Keras"
    )
    return EngineCheck(runner.engine, status, agreement, rate)


def _timed_photos(validation: np.ndarray) -> np.ndarray:
    if len(validation) == 0 or len(validation) >= TIMED_PHOTOS:
        return validation
    return np.resize(validation, (TIMED_PHOTOS, *validation.shape[1:]))


def check_photos(
    validation_paths: Sequence[str], training_paths: Sequence[str], image_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(validation, calibration)`` photos at ``image_size``, decoded as training did.

    Calibration is a seeded sample of the training photos, so registering the same run
    twice quantizes the same way.
    """
    from baghunter.training.data import load_images

    rng = np.random.default_rng(0)
    count = min(CALIBRATION_PHOTOS, len(training_paths))
    sample = [training_paths[i] for i in sorted(rng.choice(len(training_paths), count, False))]
    return load_images(list(validation_paths), image_size), load_images(sample, image_size)


def recorded_checks(tags: Mapping[str, str]) -> dict[str, EngineCheck]:
    """The checks registration recorded on a version (none for older versions)."""
    found = {engine: EngineCheck.from_tags(engine, tags) for engine in EXPORTED}
    return {engine: check for engine, check in found.items() if check is not None}
