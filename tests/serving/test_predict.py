"""Predictions through the real service: single uploads, batches and the model endpoint."""

from __future__ import annotations

import math

import pytest

from baghunter import registry
from tests.serving.conftest import (
    CLASSES,
    COLOURS,
    DATASET_VERSION,
    GREY,
    TEST_METRICS,
    Service,
    assert_error,
    photo,
)

FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


def _assert_ranked(predictions: list[dict], brand: str, k: int) -> None:
    assert len(predictions) == k
    assert predictions[0]["brand"] == brand
    probabilities = [p["probability"] for p in predictions]
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(0.0 <= p <= 1.0 for p in probabilities)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("brand", CLASSES)
def test_multipart_upload_names_the_brand(
    service: Service, champion: registry.ModelRef, brand: str, fmt: str
) -> None:
    data = photo(COLOURS[brand], fmt)
    response = service.client.post(
        "/v1/predict", files={"file": (f"bag.{fmt.lower()}", data, FORMATS[fmt])}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    # top_k (5) exceeds the number of classes: every class comes back, so they sum to 1.
    _assert_ranked(body["predictions"], brand, k=len(CLASSES))
    assert math.isclose(sum(p["probability"] for p in body["predictions"]), 1.0, abs_tol=1e-4)
    assert body["model"] == {
        "name": champion.name,
        "version": str(champion.version),
        "alias": registry.CHAMPION_ALIAS,
    }
    assert body["latency_ms"] > 0


@pytest.mark.parametrize("content_type", ["image/jpeg", "image/jpg"])
def test_raw_body_upload(service: Service, content_type: str) -> None:
    data = photo(COLOURS["Blue Brand"], "JPEG", size=(90, 30))  # not square, not 8x8
    response = service.client.post(
        "/v1/predict", content=data, headers={"Content-Type": content_type}
    )

    assert response.status_code == 200, response.text
    _assert_ranked(response.json()["predictions"], "Blue Brand", k=len(CLASSES))


@pytest.mark.parametrize("k", [1, 2])
def test_k_limits_the_predictions(service: Service, k: int) -> None:
    response = service.client.post(
        "/v1/predict",
        params={"k": k},
        files={"file": ("bag.png", photo(COLOURS["Green Brand"]), "image/png")},
    )

    assert response.status_code == 200, response.text
    _assert_ranked(response.json()["predictions"], "Green Brand", k=k)


def test_batch_scores_each_file_and_isolates_failures(service: Service) -> None:
    files = [
        ("files", ("red.jpg", photo(COLOURS["Red Brand"], "JPEG"), "image/jpeg")),
        ("files", ("notes.txt", b"not a photo", "text/plain")),
        ("files", ("blue.webp", photo(COLOURS["Blue Brand"], "WEBP"), "image/webp")),
        ("files", ("green.png", photo(COLOURS["Green Brand"]), "image/png")),
    ]
    response = service.client.post("/v1/predict/batch", params={"k": 2}, files=files)

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["filename"] for r in results] == ["red.jpg", "notes.txt", "blue.webp", "green.png"]
    assert results[1]["predictions"] is None
    assert results[1]["error"]["error"] == "unsupported_media_type"
    for result, brand in zip(
        (results[0], results[2], results[3]),
        ("Red Brand", "Blue Brand", "Green Brand"),
        strict=True,
    ):
        assert result["error"] is None
        _assert_ranked(result["predictions"], brand, k=2)


def test_batch_without_files_is_refused(service: Service) -> None:
    assert_error(
        service.client.post("/v1/predict/batch", data={"note": "no files"}), 422, "missing_file"
    )
    assert_error(
        service.client.post(
            "/v1/predict/batch", content=photo((1, 2, 3)), headers={"Content-Type": "image/png"}
        ),
        415,
        "unsupported_media_type",
    )


def test_model_endpoint_describes_the_served_version(
    service: Service, champion: registry.ModelRef
) -> None:
    response = service.client.get("/v1/model")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == champion.name
    assert body["version"] == str(champion.version)
    assert body["alias"] == registry.CHAMPION_ALIAS
    assert body["run_id"] == champion.run_id
    assert body["classes"] == CLASSES
    assert body["dataset_version"] == DATASET_VERSION
    assert body["metrics"] == pytest.approx(TEST_METRICS)


def test_health_endpoints(service: Service, champion: registry.ModelRef) -> None:
    assert service.client.get("/healthz").json() == {"status": "ok", "model_version": None}
    ready = service.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["model_version"] == str(champion.version)


def test_every_predict_route_says_whether_the_photo_shows_one_of_the_brands(
    service: Service,
) -> None:
    known = service.client.post(
        "/v1/predict", files={"file": ("red.png", photo(COLOURS["Red Brand"]), "image/png")}
    )
    assert known.status_code == 200, known.text
    body = known.json()
    assert body["brand"] == "Red Brand"
    gate = body["open_set"]
    assert gate["known"] is True and 0 <= gate["threshold"] <= gate["score"] <= 1

    unknown = service.client.post(
        "/v1/predict", files={"file": ("grey.png", photo(GREY), "image/png")}
    )
    assert unknown.status_code == 200, unknown.text
    body = unknown.json()
    assert body["brand"] is None  # none of our brands...
    assert body["open_set"]["known"] is False
    assert body["open_set"]["score"] < body["open_set"]["threshold"]
    assert len(body["predictions"]) == len(CLASSES)  # ...the ranking is still there

    batch = service.client.post(
        "/v1/predict/batch",
        files=[
            ("files", ("blue.png", photo(COLOURS["Blue Brand"]), "image/png")),
            ("files", ("grey.png", photo(GREY), "image/png")),
        ],
    )
    assert batch.status_code == 200, batch.text
    blue, grey = batch.json()["results"]
    assert blue["brand"] == "Blue Brand" and blue["open_set"]["known"] is True
    assert grey["brand"] is None and grey["open_set"]["known"] is False
    details = service.client.get("/v1/model").json()
    assert details["open_set_threshold"] == pytest.approx(gate["threshold"])
