"""Fixtures for the brand service: a real MLflow registry, real models, a real server.

The models are tiny Keras classifiers with hand-set weights that score the mean colour of
a raw uint8 photo of any size, so the right answer is known by construction: a red photo
is "Red Brand", and so on. They are registered with ``baghunter.registry`` in a SQLite
MLflow store in a temporary directory, and the service loads them from
there exactly as in production. The service runs in a real uvicorn server on 127.0.0.1
(an OS-chosen free port) and is spoken to over real sockets with httpx.
"""

from __future__ import annotations

import io
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw

from baghunter import registry
from baghunter.config import Settings
from baghunter.inference import OPEN_SET_ARTIFACT, OPEN_SET_METADATA
from baghunter.serving.app import create_app
from baghunter.serving.holder import ModelHolder
from baghunter.training.model import FEATURES_LAYER
from baghunter.training.open_set import OpenSetGate

keras = pytest.importorskip("keras")
mlflow = pytest.importorskip("mlflow")
uvicorn = pytest.importorskip("uvicorn")

CLASSES = ["Red Brand", "Green Brand", "Blue Brand"]
STUDIO_BACKGROUND = (236, 238, 244)
GREY = (128, 128, 128)  # none of the brands' colours: answered "none of our brands"
COLOURS: dict[str, tuple[int, int, int]] = {
    "Red Brand": (220, 30, 30),
    "Green Brand": (30, 200, 40),
    "Blue Brand": (30, 40, 220),
}
DATASET_VERSION = "colours-ds-1"
TEST_METRICS = {"test_accuracy": 0.97, "test_macro_f1": 0.96}
# Limits of the shared service: small, so the size tests need no large payloads.
MAX_UPLOAD_BYTES = 200_000
READY_TIMEOUT_S = 60.0
ENV_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


# --- images --------------------------------------------------------------------------


def photo(
    colour: tuple[int, int, int], fmt: str = "PNG", size: tuple[int, int] = (48, 36)
) -> bytes:
    """A solid-colour photo encoded as ``fmt`` (PNG, JPEG, WEBP, GIF)."""
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, fmt)
    return buffer.getvalue()


def product_photo(colour: tuple[int, int, int], size: int = 480) -> bytes:
    """A bag-like shape on a pale studio background, as a PNG (for the upload page)."""
    image = Image.new("RGB", (size, size), STUDIO_BACKGROUND)
    draw = ImageDraw.Draw(image)
    s = size / 10
    draw.rounded_rectangle((2 * s, 3.6 * s, 8 * s, 8.4 * s), radius=int(0.6 * s), fill=colour)
    draw.arc((3.4 * s, 1.6 * s, 6.6 * s, 5.4 * s), 180, 360, fill=colour, width=int(0.45 * s))
    darker = tuple(int(c * 0.7) for c in colour)
    draw.rectangle((4.5 * s, 5.2 * s, 5.5 * s, 5.8 * s), fill=darker)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


# --- models and the registry ---------------------------------------------------------


def colour_classifier(sharpness: float = 5.0) -> keras.Model:
    """Mean colour -> softmax over CLASSES; ``sharpness`` scales the logits."""
    # Functional, like the real classifier, with its layer names: "resize" (prediction
    # reads the input size from it) and the features layer (the open-set gate reads it).
    images = keras.Input((None, None, 3), dtype="uint8")
    pixels = keras.layers.Rescaling(1 / 255)(keras.layers.Resizing(8, 8, name="resize")(images))
    features = keras.layers.GlobalAveragePooling2D(name=FEATURES_LAYER)(pixels)
    probs = keras.layers.Dense(len(CLASSES), activation="softmax")(features)
    model = keras.Model(images, probs)
    kernel = np.eye(3, dtype="float32") * sharpness  # red channel -> "Red Brand", ...
    model.layers[-1].set_weights([kernel, np.zeros(len(CLASSES), "float32")])
    return model


def colour_gate(seed: int = 0) -> OpenSetGate:
    """The open-set gate of a colour classifier.

    Its features are a photo's mean colour, so its references are each brand's colour
    mixed with a studio background in any share (a product shot is mostly background),
    jittered; a photo whose colour is none of the brands' (grey) is "none of our brands".
    """
    rng = np.random.default_rng(seed)
    background = np.array(STUDIO_BACKGROUND, np.float32)

    def references(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(n) % len(CLASSES)
        colour = np.array([COLOURS[CLASSES[i]] for i in labels], np.float32)
        share = rng.uniform(0.25, 1.0, size=(n, 1))
        mixed = share * colour + (1 - share) * background + rng.normal(0, 8, colour.shape)
        return np.clip(mixed, 0, 255) / 255, labels

    train, train_labels = references(90)
    val, val_labels = references(45)
    return OpenSetGate.fit(train, train_labels, val, val_labels, accept=0.95)


class Registry:
    """Registers colour classifiers in the tests' MLflow store and moves aliases."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.experiment_id = registry.get_or_create_experiment("serving-tests", settings)
        self.client = mlflow.MlflowClient()

    def register(
        self,
        name: str,
        *,
        sharpness: float = 5.0,
        promote: bool = True,
        model: keras.Model | None = None,
    ) -> registry.ModelRef:
        with mlflow.start_run(experiment_id=self.experiment_id) as run:
            mlflow.log_metrics(TEST_METRICS)
            with tempfile.TemporaryDirectory() as tmp:
                gate = colour_gate().save(Path(tmp) / Path(OPEN_SET_ARTIFACT).name)
                mlflow.log_artifact(str(gate), str(Path(OPEN_SET_ARTIFACT).parent))
            ref = registry.register_model(
                model if model is not None else colour_classifier(sharpness),
                run_id=run.info.run_id,
                name=name,
                classes=CLASSES,
                dataset_version=DATASET_VERSION,
                image_size=8,
                input_example=np.zeros((1, 8, 8, 3), np.uint8),
                extra_metadata={OPEN_SET_METADATA: OPEN_SET_ARTIFACT},
            )
        if promote:
            self.promote(ref)
        return ref

    def promote(self, ref: registry.ModelRef) -> None:
        self.client.set_registered_model_alias(ref.name, registry.CHAMPION_ALIAS, str(ref.version))

    def break_weights(self, ref: registry.ModelRef) -> None:
        """Delete the stored weights of ``ref``: its metadata stays, loading it fails."""
        model_id = self.client.get_model_version(ref.name, str(ref.version)).source.rsplit("/")[-1]
        location = Path(urlparse(mlflow.get_logged_model(model_id).artifact_location).path)
        shutil.rmtree(location / "data")


@pytest.fixture(scope="package")
def registry_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings of the tests' MLflow store, with the shared service's limits.

    Built directly (not from the environment) so a developer's own ``BAGHUNTER_*`` or
    ``MLFLOW_*`` variables cannot point the tests at a real registry.
    """
    with pytest.MonkeyPatch.context() as env:
        for variable in ENV_VARS:
            env.delenv(variable, raising=False)
        yield Settings(
            _env_file=None,  # type: ignore[call-arg]
            home=tmp_path_factory.mktemp("serving-home"),
            mlflow_tracking_uri=None,
            model_name="colours",
            model_alias=registry.CHAMPION_ALIAS,
            poll_interval_s=0.2,
            api_key=None,
            max_upload_bytes=MAX_UPLOAD_BYTES,
            max_image_pixels=40_000_000,
            min_image_side=16,
            batch_max_size=16,
            batch_max_wait_ms=20.0,
            top_k=5,
        )


@pytest.fixture(scope="package")
def model_registry(registry_settings: Settings) -> Registry:
    return Registry(registry_settings)


@pytest.fixture(scope="package")
def champion(model_registry: Registry) -> registry.ModelRef:
    """Version 1 of "colours", holding the champion alias throughout these tests."""
    return model_registry.register("colours")


# --- the running service -------------------------------------------------------------


@dataclass
class Service:
    """A running service and an httpx client bound to it."""

    url: str
    client: httpx.Client
    holder: ModelHolder | None

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
            time.sleep(0.05)

    def wait_ready(self, version: str | None = None, timeout_s: float = READY_TIMEOUT_S) -> None:
        def ready() -> bool:
            response = self.client.get("/readyz")
            return response.status_code == 200 and (
                version is None or response.json()["model_version"] == version
            )

        self.wait_until(ready, timeout_s, f"the service to serve version {version or 'any'}")

    def scrape(self) -> dict[str, float]:
        """``/metrics`` as {series: value}, the series written as in the exposition."""
        return parse_metrics(self.client.get("/metrics").text)


def parse_metrics(text: str) -> dict[str, float]:
    series: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        series[name] = float(value)
    return series


def series(metric: str, /, **labels: str) -> str:
    """The exposition's spelling of one series, labels in the order given."""
    if not labels:
        return metric
    return metric + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


@contextmanager
def running_service(settings: Settings, holder: ModelHolder | None = None) -> Iterator[Service]:
    """Serve ``create_app(settings)`` with uvicorn on a free 127.0.0.1 port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # bound here, so the port is known and cannot be taken
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings, holder=holder), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=url, timeout=30.0)
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.02)
        yield Service(url=url, client=client, holder=holder)
    finally:
        client.close()
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="package")
def service(registry_settings: Settings, champion: registry.ModelRef) -> Iterator[Service]:
    """The service following "colours@champion" (version 1), shared by read-only tests."""
    with running_service(registry_settings) as running:
        running.wait_ready(str(champion.version))
        yield running


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    """The service's one error shape, with the expected status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert body["error"] == code, body
    assert isinstance(body["detail"], str) and body["detail"].strip()
