"""Inference engines: exports checked at registration, and each engine served for real.

The colour classifiers of the serving tests are exported to ONNX fp32 and int8 by the
same registration step the training pipelines run, checked against Keras on validation
photos, and served by the real app under each ``serving_engine`` setting.
"""

from __future__ import annotations

import io
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pytest
from PIL import Image

from baghunter import registry
from baghunter.config import Settings
from baghunter.engines import ONNX, ONNX_INT8
from baghunter.engines.checks import (
    INT8_RECIPES,
    PASSED,
    EngineCheck,
    check_engines,
    recorded_checks,
)
from baghunter.engines.choice import choose
from baghunter.engines.runners import OnnxRunner
from baghunter.inference import BrandPredictor, with_features
from baghunter.training.data import resize_uint8
from baghunter.training.model import FEATURES_LAYER
from tests.serving.conftest import (
    CLASSES,
    COLOURS,
    Registry,
    colour_classifier,
    product_photo,
    running_service,
)

keras = pytest.importorskip("keras")
pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

SIZE = 8  # the colour classifiers' input size


def shop_photos(count: int, seed: int) -> list[bytes]:
    """Product shots of every brand's colour, a little off each time (as photos are)."""
    rng = np.random.default_rng(seed)
    photos = []
    for i in range(count):
        base = np.array(COLOURS[CLASSES[i % len(CLASSES)]])
        colour = tuple(int(c) for c in np.clip(base + rng.integers(-25, 26, 3), 0, 255))
        photos.append(product_photo(colour, size=int(rng.integers(96, 200))))
    return photos


def decode_rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def at_size(photos: list[bytes]) -> np.ndarray:
    return np.stack([np.asarray(resize_uint8(decode_rgb(p), SIZE)) for p in photos])


def register_checked(model_registry: Registry, name: str, model: keras.Model) -> registry.ModelRef:
    """Register ``model``, check its engines, then promote it: the pipelines' order."""
    ref = model_registry.register(name, model=model, promote=False)
    check_engines(
        with_features(model),
        image_size=SIZE,
        answers=[0],
        validation=at_size(shop_photos(30, seed=1)),
        calibration=at_size(shop_photos(24, seed=2)),
        run_id=ref.run_id,
        name=ref.name,
        version=ref.version,
    )
    model_registry.promote(ref)
    return ref


def unexportable_classifier() -> keras.Model:
    """A colour classifier with an op ONNX has no equivalent of (an antialiased resize)."""
    images = keras.Input((None, None, 3), dtype="uint8")
    pixels = keras.layers.Resizing(SIZE, SIZE, name="resize")(images)
    pixels = keras.layers.Resizing(4, 4, antialias=True, name="downsample")(pixels)
    features = keras.layers.GlobalAveragePooling2D(name=FEATURES_LAYER)(
        keras.layers.Rescaling(1 / 255)(pixels)
    )
    probs = keras.layers.Dense(len(CLASSES), activation="softmax")(features)
    model = keras.Model(images, probs)
    model.layers[-1].set_weights([np.eye(3, dtype="float32") * 5, np.zeros(3, "float32")])
    return model


@pytest.fixture(scope="module")
def checked(model_registry: Registry) -> registry.ModelRef:
    return register_checked(model_registry, "engine-colours", colour_classifier())


def _following(settings: Settings, name: str, engine: str) -> Settings:
    return settings.model_copy(
        update={"model_name": name, "poll_interval_s": 0.2, "serving_engine": engine}
    )


def test_registration_exports_checks_and_records_each_engine(
    checked: registry.ModelRef,
) -> None:
    tags = registry.version_tags(checked.name, checked.version)
    checks = recorded_checks(tags)

    assert set(checks) == {ONNX, ONNX_INT8}
    for engine, check in checks.items():
        assert check.status == PASSED, (engine, check)
        assert check.agreement is not None and check.agreement >= 0.99
        assert check.images_per_s is not None and check.images_per_s > 0
        # The export is an artifact of the version's run, and runs.
        local = mlflow.artifacts.download_artifacts(
            run_id=checked.run_id, artifact_path=str(check.artifact)
        )
        probs, features = OnnxRunner(Path(local), engine).run(at_size(shop_photos(3, seed=3)))
        assert probs.shape == (3, len(CLASSES)) and features.shape == (3, 3)
    assert checks[ONNX_INT8].recipe in {recipe.name for recipe in INT8_RECIPES}
    assert float(tags["engine.keras.images_per_s"]) > 0
    # The same figures as run metrics, to compare across runs in MLflow.
    metrics = mlflow.get_run(checked.run_id).data.metrics
    assert metrics["engine.onnx-int8.agreement"] == pytest.approx(checks[ONNX_INT8].agreement)


@pytest.mark.parametrize("engine", ["keras", "onnx", "onnx-int8", "auto"])
def test_each_engine_serves_the_keras_answers(
    registry_settings: Settings, checked: registry.ModelRef, engine: str
) -> None:
    photos = shop_photos(12, seed=4)
    keras_answers = BrandPredictor.load(checked.uri).predict([decode_rgb(p) for p in photos])
    expected = [CLASSES[int(np.argmax(a.probs))] for a in keras_answers]
    recorded = recorded_checks(registry.version_tags(checked.name, checked.version))

    with running_service(_following(registry_settings, checked.name, engine)) as service:
        service.wait_ready(str(checked.version))
        model = service.client.get("/v1/model").json()
        brands = []
        for i, data in enumerate(photos):
            response = service.client.post(
                "/v1/predict", files={"file": (f"{i}.png", data, "image/png")}
            )
            assert response.status_code == 200, response.text
            brands.append(response.json()["predictions"][0]["brand"])

    if engine == "auto":  # the fastest of the checked exports
        fastest = max(recorded.values(), key=lambda c: c.images_per_s or 0)
        assert model["engine"] == fastest.engine
    else:
        assert model["engine"] == engine
    assert brands == expected


def test_auto_serves_keras_when_no_export_passed(
    registry_settings: Settings, model_registry: Registry
) -> None:
    ref = register_checked(model_registry, "unexportable-colours", unexportable_classifier())
    checks = recorded_checks(registry.version_tags(ref.name, ref.version))
    assert {e: c.status.split(":")[0] for e, c in checks.items()} == {
        ONNX: "export failed",
        ONNX_INT8: "export failed",
    }

    for engine in ("auto", "onnx-int8"):
        with running_service(_following(registry_settings, ref.name, engine)) as service:
            service.wait_ready(str(ref.version))
            model = service.client.get("/v1/model").json()
            red = product_photo(COLOURS["Red Brand"])
            response = service.client.post(
                "/v1/predict", files={"file": ("red.png", red, "image/png")}
            )
        assert model["engine"] == "keras", model
        assert "export failed" in model["engine_reason"]
        assert response.json()["predictions"][0]["brand"] == "Red Brand"


def test_a_failed_check_is_never_served() -> None:
    """An export below the agreement bar is recorded, and no setting serves it."""
    below = EngineCheck(ONNX_INT8, "below 99% top-1 agreement with Keras", 0.9, 900.0, "x")
    fine = EngineCheck(ONNX, PASSED, 1.0, 100.0, "y")
    assert choose("onnx-int8", {ONNX_INT8: below, ONNX: fine}).engine == "keras"
    assert choose("auto", {ONNX_INT8: below, ONNX: fine}).engine == ONNX
    assert choose("auto", {ONNX_INT8: below}).engine == "keras"
    # And the recorded tags read back to the same verdict.
    assert EngineCheck.from_tags(ONNX_INT8, below.tags()) == below


def test_hot_swap_on_the_onnx_engine_drops_no_request(
    registry_settings: Settings, model_registry: Registry
) -> None:
    old = register_checked(model_registry, "swap-engine-colours", colour_classifier())
    red = product_photo(COLOURS["Red Brand"])
    settings = _following(registry_settings, old.name, ONNX_INT8)
    with running_service(settings) as service:
        service.wait_ready(str(old.version))
        assert service.client.get("/v1/model").json()["engine"] == ONNX_INT8
        stop = threading.Event()
        outcomes: list[tuple[int, str | None]] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def client_loop() -> None:
            with httpx.Client(base_url=service.url, timeout=30) as client:
                while not stop.is_set():
                    try:
                        response = client.post(
                            "/v1/predict", files={"file": ("red.png", red, "image/png")}
                        )
                        version = (
                            response.json()["model"]["version"] if response.is_success else None
                        )
                    except Exception as exc:  # any failure must be reported, not lost
                        with lock:
                            errors.append(exc)
                        continue
                    with lock:
                        outcomes.append((response.status_code, version))

        threads = [threading.Thread(target=client_loop) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.0)
            new = register_checked(model_registry, old.name, colour_classifier(sharpness=8.0))
            service.wait_ready(str(new.version), timeout_s=60)
            served_new_at = len(outcomes)
            service.wait_until(
                lambda: len(outcomes) > served_new_at + 20, timeout_s=30, what="more requests"
            )
            engine = service.client.get("/v1/model").json()["engine"]
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)

    assert errors == []
    assert Counter(status for status, _ in outcomes) == {200: len(outcomes)}
    versions = [version for _, version in outcomes]
    assert versions[0] == str(old.version) and versions[-1] == str(new.version)
    assert engine == ONNX_INT8
