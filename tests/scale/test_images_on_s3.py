"""Photos on object storage: ``BAGHUNTER_IMAGES_URI=s3://…`` against moto's S3 server.

Ingest downloads, validates and files the photos in the bucket; the near-duplicate pass,
the embedding stage, training and the service's thumbnails read them from there; the data
home holds no photo. A bucket that does not exist stops the download with the reason and
loses no image's attempts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from baghunter.cli import app
from baghunter.config import Settings, get_settings
from baghunter.local.sample.server import RouteServer
from tests.scale.conftest import FAKE_AWS

pytestmark = [pytest.mark.slow, pytest.mark.scale]

BUCKET = "catalog-photos"
runner = CliRunner()


def _cli(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{") :])


@pytest.fixture
def feed(catalog_server: RouteServer) -> str:
    return catalog_server.url("/api/listings")


@pytest.fixture
def on_s3(settings: Settings, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The test's settings with the photos in a fresh bucket; yields a boto3 client."""
    boto3 = pytest.importorskip("boto3")
    for name, value in {**FAKE_AWS, "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("BAGHUNTER_IMAGES_URI", f"s3://{BUCKET}/{settings.home.name}-photos")
    monkeypatch.setenv("BAGHUNTER_RAW_URI", f"s3://{BUCKET}/{settings.home.name}-raw")
    monkeypatch.setenv("BAGHUNTER_FEATURES_URI", f"s3://{BUCKET}/{settings.home.name}-features")
    monkeypatch.setenv("BAGHUNTER_WEIGHTS", "none")
    get_settings.cache_clear()
    return s3


def _keys(s3: Any, prefix: str) -> dict[str, int]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {item["Key"]: item["Size"] for page in pages for item in page.get("Contents", [])}


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_ingest_embed_dedupe_train_and_serve_with_photos_and_features_on_s3(
    on_s3: Any, feed: str, tmp_path: Path
) -> None:
    settings = get_settings()
    prefix = settings.images_uri.split(f"s3://{BUCKET}/", 1)[1]  # type: ignore[union-attr]

    ingested = _cli("ingest", "farfetch", feed, "--json")
    # The raw pages the upsert read back are in the bucket too.
    raw = f"s3://{BUCKET}/{settings.raw_uri.split(f's3://{BUCKET}/', 1)[1]}"  # type: ignore[union-attr]
    assert ingested["fetch"]["batch_uri"].startswith(raw + "/"), ingested["fetch"]
    raw_keys = _keys(on_s3, raw.split(f"s3://{BUCKET}/", 1)[1])
    assert any(key.endswith("/batch.json") for key in raw_keys), raw_keys
    assert any(key.endswith("/page-000001.json") for key in raw_keys), raw_keys
    assert ingested["upsert"]["inserted"] > 0, ingested
    assert ingested["images"]["ok"] >= 30, ingested
    stored = _keys(on_s3, prefix)
    for key in stored:  # the content store's layout, in the bucket
        sha, ext = key.rsplit("/", 1)[1].split(".")
        assert key == f"{prefix}/{sha[:2]}/{sha[2:4]}/{sha}.{ext}"

    # Every distinct photo is read back from the bucket by the embedding stage, which
    # keeps its vectors and the embedder that made them in the bucket too...
    embedded = _cli("embed", "--json")
    assert embedded["computed"] == embedded["images"] == len(stored), embedded
    features = settings.features_uri.split(f"s3://{BUCKET}/", 1)[1]  # type: ignore[union-attr]
    space_keys = {k.rsplit("/", 1)[1] for k in _keys(on_s3, f"{features}/{embedded['space']}/")}
    assert {"shard-000001.npz", "embedder.json", "embedder.weights.h5"} <= space_keys
    again = _cli("embed", "--json")  # read back from the bucket: nothing left to embed
    assert again["computed"] == 0 and again["vectors"] == len(stored), again
    # ...and the near-duplicate pass groups them in that space (the sample catalog
    # relists one product with the same photo). Untrained weights make every photo look
    # alike: only near-identical vectors count as copies here.
    dedupe = _cli("similar", "dedupe", "--min-cosine", "0.99999", "--json")
    assert dedupe["space"] == embedded["space"] and dedupe["images"] == len(stored), dedupe
    assert dedupe["groups"] >= 1, dedupe

    manifest = _cli("dataset", "build", "--brands", "2", "--min-images", "8", "--json")
    entries = json.loads(Path(manifest["manifest"]).read_text())["entries"]
    assert entries and all(e["path"].startswith(f"s3://{BUCKET}/{prefix}/") for e in entries)
    trained = _cli(
        "train", "--manifest", manifest["manifest"], "--backbone", "scratch",
        "--image-size", "32", "--pool-depth", "3", "--epochs-frozen", "1",
        "--epochs-finetune", "0", "--json",
    )  # fmt: skip
    assert trained["model_version"] == 1, trained

    # The similar-product index is built into the bucket and served from there.
    built = _cli("similar", "build", "--json")
    index_keys = _keys(on_s3, f"{features}/index/{embedded['space']}/")
    assert {k.rsplit("/", 1)[1] for k in index_keys} >= {"index.json", "vectors.npy"}, built

    key, size = next(iter(stored.items()))
    sha = key.rsplit("/", 1)[1].split(".")[0]
    photo = on_s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    with TestClient(create_app()) as client:
        deadline = time.monotonic() + 60  # the service loads the index in the background
        while True:
            query = {"file": ("q.jpg", photo, "image/jpeg")}
            found = client.post("/v1/similar?k=3", files=query)
            if found.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert found.status_code == 200, found.text
        assert found.json()["matches"][0]["sha256"] == sha  # the photo finds itself first
        answer = client.get(f"/catalog/images/{sha}")
        assert answer.status_code == 200, answer.text
        assert len(answer.content) == size
        assert answer.headers["content-type"].startswith("image/")
        assert client.get(f"/catalog/images/{'0' * 64}").status_code == 404

    # Not one photo, raw page, vector or index on local disk: the home holds the catalog
    # database, datasets and MLflow.
    assert not settings.images_dir.exists() and not settings.raw_dir.exists()
    assert not settings.features_dir.exists()
    photos = [p for p in _files_under(settings.home) if p.suffix.lower() in (".jpg", ".png")]
    assert [p for p in photos if "mlflow" not in p.parts] == []


def create_app() -> Any:
    from baghunter.serving.app import create_app as make

    return make(get_settings())


def test_a_missing_bucket_stops_the_download_and_keeps_every_image(
    settings: Settings, s3_endpoint: str, feed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {**FAKE_AWS, "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BAGHUNTER_IMAGES_URI", "s3://no-such-bucket/photos")
    get_settings.cache_clear()

    result = runner.invoke(app, ["ingest", "farfetch", feed, "--json"])
    assert result.exit_code != 0
    assert "s3://no-such-bucket/photos" in result.output, result.output
    # Nothing was spent: every image is still pending with all its attempts.
    from baghunter.store import open_store

    with open_store(get_settings()) as store:
        todo = store.images_to_fetch(get_settings().download_max_attempts, None)
    assert todo, "the images are lost"
