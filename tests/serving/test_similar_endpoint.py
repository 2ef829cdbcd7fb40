"""``POST /v1/similar`` against a real index of a real ingested catalog."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from baghunter.cli import app
from baghunter.config import Settings
from baghunter.embeddings.pipeline import embed_catalog
from baghunter.local.sample.catalog import BRANDS, render_bag
from baghunter.similar.index import build_index
from baghunter.store import open_store
from tests.serving.conftest import Service, assert_error, photo, running_service

EMBED = {"embed_backbone": "scratch", "weights": "none", "embed_image_size": 32}


def _settings(registry_settings: Settings, home: Path) -> Settings:
    # The registry's store stays the shared one: a fresh MLflow database costs seconds.
    return registry_settings.model_copy(
        update={"home": home, "mlflow_tracking_uri": registry_settings.tracking_uri, **EMBED}
    )


@pytest.fixture(scope="module")
def catalog(
    tmp_path_factory: pytest.TempPathFactory, registry_settings: Settings
) -> tuple[Settings, Path]:
    """A folder catalog of 3 brands x 4 photos, ingested, embedded and indexed."""
    root = tmp_path_factory.mktemp("similar")
    settings = _settings(registry_settings, root / "home")
    folder = root / "catalog"
    for look in BRANDS[:3]:
        (folder / look.name).mkdir(parents=True)
        for i in range(4):
            (folder / look.name / f"{i}.jpg").write_bytes(render_bag(look, seed=i, size=64))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BAGHUNTER_HOME", str(settings.home))
        env.setenv("BAGHUNTER_STORE", "embedded")
        from baghunter.config import get_settings

        get_settings.cache_clear()
        result = CliRunner().invoke(app, ["ingest", "folder", str(folder), "--json"])
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    with open_store(settings.model_copy(update={"store": "embedded"})) as store:
        assert embed_catalog(store, settings).computed == 12
        build_index(store, settings)
    return settings, folder


@pytest.fixture(scope="module")
def search_service(catalog: tuple[Settings, Path]) -> Iterator[Service]:
    settings, _ = catalog
    # The service is configured for another embedder (VGG16 with ImageNet weights, which
    # cannot be downloaded here), as after a no-weights demo: it must serve the index with
    # the embedder stored in the index's own space, and never try a download.
    served = settings.model_copy(update={"embed_backbone": "vgg16", "weights": "imagenet"})
    with running_service(served) as running:
        running.wait_until(
            lambda: (
                running.client.post(
                    "/v1/similar", content=photo((9, 9, 9)), headers={"content-type": "image/png"}
                ).status_code
                == 200
            ),
            60,
            "the similar index",
        )
        yield running


def test_a_catalog_photo_finds_its_own_product_first(
    search_service: Service, catalog: tuple[Settings, Path]
) -> None:
    _, folder = catalog
    query = folder / BRANDS[1].name / "2.jpg"
    response = search_service.client.post(
        "/v1/similar?k=5", files={"file": ("q.jpg", query.read_bytes(), "image/jpeg")}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["index_size"] == 12 and body["engine"] == "exact"
    matches = body["matches"]
    assert len(matches) == 5
    assert matches[0]["brand"] == BRANDS[1].name
    assert matches[0]["image_url"] == query.resolve().as_uri()
    assert matches[0]["score"] > 0.99
    scores = [m["score"] for m in matches]
    assert scores == sorted(scores, reverse=True)
    # The thumbnail is served from the image store, byte for byte the catalog's photo.
    thumbnail = search_service.client.get(matches[0]["thumbnail_url"])
    assert thumbnail.status_code == 200
    assert thumbnail.content == query.read_bytes()


def test_an_unseen_photo_of_a_brand_ranks_that_brand_high(search_service: Service) -> None:
    look = BRANDS[2]
    unseen = render_bag(look, seed=99, size=64)
    response = search_service.client.post(
        "/v1/similar?k=3", files={"file": ("u.jpg", unseen, "image/jpeg")}
    )
    assert response.status_code == 200
    brands = [m["brand"] for m in response.json()["matches"]]
    assert brands.count(look.name) >= 2, brands


def test_bad_input(search_service: Service) -> None:
    client = search_service.client
    assert_error(client.post("/v1/similar"), 422, "missing_file")
    assert_error(
        client.post("/v1/similar", files={"file": ("x.jpg", b"not an image", "image/jpeg")}),
        400,
        "undecodable_image",
    )
    assert_error(
        client.post("/v1/similar", content=b"{}", headers={"content-type": "application/json"}),
        415,
        "unsupported_media_type",
    )
    tiny = io.BytesIO()
    Image.new("RGB", (4, 4)).save(tiny, "PNG")
    assert_error(
        client.post("/v1/similar", files={"file": ("t.png", tiny.getvalue(), "image/png")}),
        400,
        "image_too_small",
    )
    response = client.post(
        "/v1/similar?k=0", files={"file": ("p.png", photo((1, 2, 3)), "image/png")}
    )
    assert response.status_code == 422
    assert client.get("/catalog/images/" + "0" * 64).status_code == 404
    assert client.get("/catalog/images/..%2F..%2Fetc%2Fpasswd").status_code == 404


def test_without_an_index_the_endpoint_says_why(
    registry_settings: Settings, tmp_path: Path
) -> None:
    # No brand or attribute model either: nothing to load, so the service stops at once.
    settings = _settings(registry_settings, tmp_path / "empty").model_copy(
        update={"model_name": "none-such", "attribute_model_name": "none-such"}
    )
    with running_service(settings) as running:
        response = running.client.post(
            "/v1/similar", files={"file": ("p.png", photo((1, 2, 3)), "image/png")}
        )
    assert_error(response, 503, "no_index")
    assert "image_features" in response.json()["detail"]
