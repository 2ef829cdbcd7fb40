"""``baghunter config`` shows every setting and no secret: the API key and URI credentials."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from baghunter.cli import app
from baghunter.config import Settings, get_settings, mask_uri

SOURCES = json.dumps(
    [{"kind": "shopify", "location": "https://feed:feedpw@shop.example.com", "incremental": True}]
)


def test_config_masks_the_api_key_and_every_uri_credential(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BAGHUNTER_API_KEY", "k3y-value-that-must-not-show")
    monkeypatch.setenv("BAGHUNTER_MONGO_URI", "mongodb://app:m0ngo-pw@db.internal:27017/catalog")
    monkeypatch.setenv("BAGHUNTER_MLFLOW_TRACKING_URI", "http://ml:tr4ck-pw@mlflow.internal:5000")
    monkeypatch.setenv("BAGHUNTER_SOURCES", SOURCES)
    get_settings.cache_clear()

    result = CliRunner().invoke(app, ["config", "--json"])
    assert result.exit_code == 0, result.output
    for secret in ("k3y-value-that-must-not-show", "m0ngo-pw", "tr4ck-pw", "feedpw", "app:"):
        assert secret not in result.stdout
    shown = json.loads(result.stdout)
    assert shown["api_key"] == "***"
    assert shown["mongo_uri"] == "mongodb://***@db.internal:27017/catalog"
    assert shown["tracking_uri"] == "http://***@mlflow.internal:5000"
    assert shown["sources"][0]["location"] == "https://***@shop.example.com"
    # Everything else is shown as set.
    assert shown["store"] == "embedded" and shown["home"] == str(settings.home)


def test_mask_uri_keeps_uris_without_credentials() -> None:
    assert mask_uri("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"
    assert mask_uri("https://shop.example.com/a@b") == "https://shop.example.com/a@b"
    assert mask_uri("mongo://u@h/db") == "mongo://***@h/db"
    assert mask_uri("not a uri: x@y") == "not a uri: x@y"
