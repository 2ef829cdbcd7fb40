"""API key, Prometheus metrics and micro-batching, observed from outside the service."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from baghunter import registry
from baghunter.config import Settings
from tests.serving.conftest import (
    COLOURS,
    Service,
    assert_error,
    photo,
    running_service,
    series,
)

RED_PHOTO = photo(COLOURS["Red Brand"])
API_KEY = "s3cret-key"


def _predict(client: httpx.Client, **kwargs: object) -> httpx.Response:
    return client.post("/v1/predict", files={"file": ("red.png", RED_PHOTO, "image/png")}, **kwargs)


@pytest.fixture
def keyed_service(registry_settings: Settings, champion: registry.ModelRef) -> Iterator[Service]:
    settings = registry_settings.model_copy(update={"api_key": API_KEY})
    with running_service(settings) as service:
        service.wait_ready(str(champion.version))
        yield service


def test_api_key_guards_the_v1_endpoints_and_metrics(keyed_service: Service) -> None:
    client = keyed_service.client

    assert_error(_predict(client), 401, "unauthorized")
    assert_error(_predict(client, headers={"X-API-Key": "wrong"}), 401, "unauthorized")
    assert_error(client.get("/v1/model"), 401, "unauthorized")
    # The key is checked before anything else: a bad upload without it is still a 401.
    assert_error(
        client.post("/v1/predict", content=b"x", headers={"Content-Type": "text/plain"}),
        401,
        "unauthorized",
    )

    response = _predict(client, headers={"X-API-Key": API_KEY})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["brand"] == "Red Brand"
    assert client.get("/v1/model", headers={"X-API-Key": API_KEY}).status_code == 200

    for open_path in ("/", "/healthz", "/readyz", "/static/app.js", "/openapi.json"):
        assert client.get(open_path).status_code == 200, open_path
    # Metrics tell the model version, traffic and error rates: the scraper sends the key.
    assert_error(client.get("/metrics"), 401, "unauthorized")
    scraped = client.get("/metrics", headers={"X-API-Key": API_KEY})
    assert scraped.status_code == 200 and "baghunter_http_requests_total" in scraped.text


def test_metrics_count_requests_by_route_and_status(
    service: Service, champion: registry.ModelRef
) -> None:
    ok = series("baghunter_http_requests_total", route="/v1/predict", method="POST", status="200")
    refused = series(
        "baghunter_http_requests_total", route="/v1/predict", method="POST", status="415"
    )
    latency_count = series("baghunter_http_request_duration_seconds_count", route="/v1/predict")
    before = service.scrape()

    for _ in range(3):
        assert _predict(service.client).status_code == 200
    assert (
        service.client.post(
            "/v1/predict", content=b"x", headers={"Content-Type": "text/plain"}
        ).status_code
        == 415
    )

    response = service.client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    after = service.scrape()
    assert after[ok] - before.get(ok, 0) == 3
    assert after[refused] - before.get(refused, 0) == 1
    assert after[latency_count] - before.get(latency_count, 0) == 4
    info = series(
        "baghunter_model_info",
        name=champion.name,
        version=str(champion.version),
        alias=registry.CHAMPION_ALIAS,
    )
    assert after[info] == 1
    assert after["baghunter_model_loaded"] == 1


def test_concurrent_requests_share_model_calls(service: Service) -> None:
    calls, images = "baghunter_batch_size_count", "baghunter_batch_size_sum"
    requests = 12
    before = service.scrape()
    start = threading.Barrier(requests)
    statuses: list[int] = []

    def one_request() -> None:
        with httpx.Client(base_url=service.url, timeout=60) as client:
            start.wait()
            statuses.append(_predict(client).status_code)

    threads = [threading.Thread(target=one_request) for _ in range(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    after = service.scrape()
    assert statuses == [200] * requests
    assert after[images] - before[images] == requests
    # Each request got its own answer, yet the model ran fewer times than there were images.
    assert after[calls] - before[calls] < requests
