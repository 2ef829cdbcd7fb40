"""The service follows the registry alias: no model yet, hot swaps, and broken versions.

Each test follows its own registered model name in the tests' MLflow store, so the
alias moves made here cannot disturb the shared service.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx

from baghunter.config import Settings
from tests.serving.conftest import (
    COLOURS,
    Registry,
    assert_error,
    photo,
    running_service,
    series,
)

RED_PHOTO = photo(COLOURS["Red Brand"])
LOAD_FAILURES = series("baghunter_model_load_failures_total")


def _predict(client: httpx.Client) -> httpx.Response:
    return client.post("/v1/predict", files={"file": ("red.png", RED_PHOTO, "image/png")})


def _following(settings: Settings, name: str) -> Settings:
    return settings.model_copy(update={"model_name": name, "poll_interval_s": 0.2})


def test_no_model_yet_answers_503_then_serves_once_one_is_promoted(
    registry_settings: Settings, model_registry: Registry
) -> None:
    with running_service(_following(registry_settings, "late-colours")) as service:
        assert service.client.get("/healthz").status_code == 200
        assert_error(service.client.get("/readyz"), 503, "no_model")
        assert_error(_predict(service.client), 503, "no_model")
        assert_error(service.client.get("/v1/model"), 503, "no_model")

        ref = model_registry.register("late-colours")
        service.wait_ready(str(ref.version))

        response = _predict(service.client)
        assert response.status_code == 200, response.text
        assert response.json()["model"]["version"] == str(ref.version)
        assert response.json()["predictions"][0]["brand"] == "Red Brand"


def test_hot_swap_under_load_drops_no_request(
    registry_settings: Settings, model_registry: Registry
) -> None:
    old = model_registry.register("swap-colours")
    with running_service(_following(registry_settings, "swap-colours")) as service:
        service.wait_ready(str(old.version))
        stop = threading.Event()
        outcomes: list[tuple[int, str | None]] = []  # (status, version) per request
        errors: list[BaseException] = []
        lock = threading.Lock()

        def client_loop() -> None:
            with httpx.Client(base_url=service.url, timeout=30) as client:
                while not stop.is_set():
                    try:
                        response = _predict(client)
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
            time.sleep(1.0)  # a steady stream on the old version first
            new = model_registry.register("swap-colours", sharpness=8.0)  # promoted mid-stream
            service.wait_ready(str(new.version), timeout_s=30)
            served_new_at = len(outcomes)
            # Keep the stream going a while on the new version.
            service.wait_until(
                lambda: len(outcomes) > served_new_at + 20, timeout_s=30, what="more requests"
            )
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)

    assert errors == []
    statuses = Counter(status for status, _ in outcomes)
    assert statuses == {200: len(outcomes)}
    versions = [version for _, version in outcomes]
    assert versions[0] == str(old.version)
    assert versions[-1] == str(new.version)
    assert set(versions) == {str(old.version), str(new.version)}


def test_broken_new_version_keeps_the_old_one_serving(
    registry_settings: Settings, model_registry: Registry
) -> None:
    good = model_registry.register("flaky-colours")
    with running_service(_following(registry_settings, "flaky-colours")) as service:
        service.wait_ready(str(good.version))
        failures_before = service.scrape()[LOAD_FAILURES]

        broken = model_registry.register("flaky-colours", promote=False)
        model_registry.break_weights(broken)
        model_registry.promote(broken)
        # Two failed attempts: the poller tried, kept the old model, and tried again.
        service.wait_until(
            lambda: service.scrape()[LOAD_FAILURES] >= failures_before + 2,
            timeout_s=30,
            what="the broken version to fail loading",
        )

        response = _predict(service.client)
        assert response.status_code == 200, response.text
        assert response.json()["model"]["version"] == str(good.version)
        assert service.client.get("/readyz").json()["model_version"] == str(good.version)
        assert service.client.get("/v1/model").json()["version"] == str(good.version)

        fixed = model_registry.register("flaky-colours")  # the poller keeps going
        service.wait_ready(str(fixed.version), timeout_s=30)
        assert _predict(service.client).json()["model"]["version"] == str(fixed.version)
