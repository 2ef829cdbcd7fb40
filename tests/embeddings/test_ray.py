"""Catalog-wide embedding on Ray Data (a local Ray): the single-process stage's vectors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from baghunter.cli import app
from baghunter.config import Settings
from baghunter.embeddings.model import Embedder
from baghunter.embeddings.pipeline import vector_store

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

SCRATCH = ["--backbone", "scratch", "--image-size", "32"]


def test_ray_embeds_the_catalog_to_the_single_process_vectors(
    settings: Settings, tmp_path: Path, ingest_bags: Callable[..., None]
) -> None:
    ingest_bags(3, 4, size=56)

    first = CliRunner().invoke(app, ["embed", *SCRATCH, "--ray", "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["computed"] == report["images"] == 12

    # The same photos through the single-process path, with the space's own embedder.
    store = vector_store(settings, report["space"])
    shas, on_ray = store.load()
    files = {p.stem: str(p) for p in settings.images_dir.rglob("*.*") if p.is_file()}
    here = Embedder.load(store.directory).embed_files([files[sha] for sha in shas])
    np.testing.assert_allclose(on_ray, here, rtol=1e-5, atol=1e-6)

    # Idempotent like the single-process stage: nothing new, nothing computed (no Ray).
    again = CliRunner().invoke(app, ["embed", *SCRATCH, "--ray", "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["computed"] == 0


def test_where_the_stage_runs_follows_the_run_then_the_setting() -> None:
    from baghunter.embeddings.pipeline import ray_address

    plain = Settings(_env_file=None)  # type: ignore[call-arg]
    cluster = Settings(_env_file=None, embed_ray_address="ray://head:10001")  # type: ignore[call-arg]
    assert ray_address(plain) is None  # in this process unless asked
    assert ray_address(plain, ray=True) == "local"
    assert ray_address(cluster) == "ray://head:10001"  # the image_features task's case
    assert ray_address(cluster, ray=True) == "ray://head:10001"
    assert ray_address(cluster, ray=True, address="auto") == "auto"
