"""``baghunter config`` shows every setting and no secret: the API key and URI credentials."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from baghunter.cli import app
from baghunter.config import Settings, get_settings, mask_uri
from baghunter.training.train import train_config

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


def test_the_data_home_remembers_choices_until_the_environment_says_otherwise(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    weights = tmp_path / "vgg16_notop.weights.h5"
    weights.write_bytes(b"stand-in: only the path is remembered")
    runner = CliRunner()

    result = runner.invoke(
        app,
        [
            "config",
            "--remember",
            f"weights={weights}",
            "--remember",
            'train_defaults={"backbone": "scratch", "image_size": 32}',
            "--remember",
            "embed_image_size=32",
        ],
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["weights"] == str(weights) and shown["embed_image_size"] == 32

    # Every later process on the home (a DAG task, the service) resolves the same choices.
    fresh = Settings()
    assert fresh.weights == str(weights)
    assert fresh.train_defaults == {"backbone": "scratch", "image_size": 32}
    assert train_config({}, fresh).backbone == "scratch"
    assert train_config({}, fresh).image_sizes == (32,)
    assert train_config({}, fresh).weights == "none"  # a scratch CNN has no weights
    # A run that names another backbone gets none of the scratch recipe.
    named = train_config({"backbone": "vgg16"}, fresh)
    assert named.weights == str(weights) and named.image_sizes != (32,)

    # The environment wins over the home; forgetting restores the default.
    monkeypatch.setenv("BAGHUNTER_WEIGHTS", "none")
    assert Settings().weights == "none"
    monkeypatch.delenv("BAGHUNTER_WEIGHTS")
    assert runner.invoke(app, ["config", "--forget", "weights"]).exit_code == 0
    assert Settings().weights == "imagenet"


def test_a_bad_choice_is_refused_and_nothing_is_written(settings: Settings) -> None:
    result = CliRunner().invoke(app, ["config", "--remember", "embed_image_size=huge"])
    assert result.exit_code == 2
    assert "cannot remember" in result.stderr
    result = CliRunner().invoke(app, ["config", "--remember", "api_key=secret"])
    assert result.exit_code == 2
    assert not settings.remembered_path.exists()


def test_an_unreadable_remembered_file_is_an_error_not_silence(settings: Settings) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.remembered_path.write_text("{not json")
    with pytest.raises(ValueError, match="unreadable"):
        Settings()
