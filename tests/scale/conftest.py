"""Fixtures of the scale-out tier: the real servers a multi-machine deployment runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from baghunter.local.sample.catalog import SampleCatalog
from tests.scale import servers

# Credentials moto accepts; set for every process the tests start, never real ones.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def sample_catalog() -> SampleCatalog:
    """The catalog ``catalog_server`` serves here: 2 brands, enough photos to train on."""
    return SampleCatalog(seed=3, brands=2, per_brand=24, image_size=48, page_size=50)


@pytest.fixture(scope="session")
def postgres() -> Iterator[servers.Postgres]:
    with servers.postgres() as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with servers.redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with servers.s3(tmp_path_factory.mktemp("moto")) as url:
        yield url
