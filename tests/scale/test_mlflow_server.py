"""MLflow as a multi-machine deployment runs it: a tracking server on PostgreSQL, artifacts on S3.

The server (``mlflow server --backend-store-uri postgresql://… --artifacts-destination
s3://…``) is the only thing the project talks to: training, the champion gate and the
service hold no S3 credentials; the server proxies every artifact to the bucket.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from baghunter import registry
from baghunter.config import Settings
from baghunter.images.validate import decode_rgb
from baghunter.inference import BrandPredictor
from baghunter.training.metrics import evaluate_probabilities
from tests.scale import servers
from tests.scale.conftest import FAKE_AWS
from tests.serving.conftest import CLASSES, COLOURS, Registry, photo, running_service

pytestmark = [pytest.mark.slow, pytest.mark.scale]

BUCKET = "mlflow-artifacts"
MODEL = "colours-on-s3"


@pytest.fixture(scope="module")
def mlflow_server(
    postgres: servers.Postgres, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Any]]:
    """The tracking server on a fresh database and bucket; yields its URL and an S3 client."""
    boto3 = pytest.importorskip("boto3")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, **_boto_credentials())
    s3.create_bucket(Bucket=BUCKET)
    backend = postgres.create_database("mlflow")
    port = servers.free_port()
    env = {**os.environ, **FAKE_AWS, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint}
    for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(variable, None)
    args = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend,
        "--artifacts-destination", f"s3://{BUCKET}/mlflow",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    log = tmp_path_factory.mktemp("mlflow-server") / "server.log"
    url = f"http://127.0.0.1:{port}"
    with servers.process(args, port, "MLflow server", log, env=env):
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/health").status_code != 200:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        yield url, s3


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": FAKE_AWS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
        "region_name": FAKE_AWS["AWS_DEFAULT_REGION"],
    }


def _score(model_uri: str) -> Any:
    """The one inference path's answers on solid-colour photos of each brand, as a report."""
    predictor = BrandPredictor.load(model_uri)
    images = [np.asarray(decode_rgb(photo(colour))) for colour in COLOURS.values()]
    probs = predictor.probabilities(np.stack(images))
    return evaluate_probabilities(list(range(len(CLASSES))), probs, CLASSES)


def test_register_promote_and_serve_with_mlflow_on_postgres_and_s3(
    mlflow_server: tuple[str, Any],
    postgres: servers.Postgres,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, s3 = mlflow_server
    # The client side knows the server's address and nothing of S3.
    for variable in (
        "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_S3_ENDPOINT_URL",
        "AWS_ENDPOINT_URL", *FAKE_AWS,
    ):  # fmt: skip
        monkeypatch.delenv(variable, raising=False)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        home=tmp_path / "home",
        mlflow_tracking_uri=url,
        model_name=MODEL,
        poll_interval_s=0.2,
        api_key=None,
    )
    models = Registry(settings)

    first = models.register(MODEL, promote=False)
    decision = registry.champion_gate(
        name=MODEL, candidate=first, candidate_report=_score(first.uri), score_champion=_score
    )
    assert decision.promoted and decision.reason == "no champion yet"
    # A weaker challenger (its logits scaled to nothing: every photo a tie) is scored
    # against the champion loaded back from the server, and kept out.
    weaker = models.register(MODEL, sharpness=0.0, promote=False)
    decision = registry.champion_gate(
        name=MODEL, candidate=weaker, candidate_report=_score(weaker.uri), score_champion=_score
    )
    assert not decision.promoted, decision.reason
    assert decision.previous_champion_version == first.version

    with running_service(settings) as service:
        service.wait_ready(str(first.version))
        for brand, colour in COLOURS.items():
            response = service.client.post(
                "/v1/predict", files={"file": ("bag.png", photo(colour), "image/png")}
            )
            assert response.status_code == 200, response.text
            assert response.json()["brand"] == brand
        assert service.client.get("/v1/model").json()["version"] == str(first.version)

    # Where everything went: the registry rows in PostgreSQL, the weights in the bucket,
    # nothing in the data home.
    import psycopg2

    connection = psycopg2.connect(
        host=postgres.host, port=postgres.port, user=postgres.user, dbname="mlflow"
    )
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT version FROM model_versions WHERE name = %s", (MODEL,))
        assert sorted(int(row[0]) for row in cursor.fetchall()) == [first.version, weaker.version]
        cursor.execute("SELECT version FROM registered_model_aliases WHERE name = %s", (MODEL,))
        assert [int(row[0]) for row in cursor.fetchall()] == [first.version]
    connection.close()
    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for item in page.get("Contents", [])
    ]
    assert any(key.endswith(".keras") or "/data/" in key for key in keys), keys[:20]
    assert any(key.endswith("MLmodel") for key in keys)
    assert not (settings.home / "mlflow").exists()
