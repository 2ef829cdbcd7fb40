"""The embedding stage over a real ingested catalog: computed once, then reused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from baghunter.cli import app
from baghunter.config import Settings
from baghunter.embeddings.model import Embedder, EmbedderSpec
from baghunter.embeddings.pipeline import embed_catalog, vector_store
from baghunter.local.sample.catalog import BRANDS, render_bag
from baghunter.store import open_store

SPEC = EmbedderSpec(backbone="scratch", weights="none", image_size=32)
runner = CliRunner()


def _write_folder(root: Path, per_brand: int, start: int = 0) -> None:
    for look in BRANDS[:2]:
        folder = root / look.name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(start, start + per_brand):
            (folder / f"{i}.jpg").write_bytes(render_bag(look, seed=i, size=48))


def _ingest(folder: Path) -> None:
    result = runner.invoke(app, ["ingest", "folder", str(folder), "--json"])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(SPEC)


def test_second_run_embeds_nothing_and_new_images_only(
    settings: Settings, tmp_path: Path, embedder: Embedder
) -> None:
    folder = tmp_path / "catalog"
    _write_folder(folder, per_brand=4)
    _ingest(folder)
    with open_store(settings) as store:
        first = embed_catalog(store, settings, embedder=embedder)
        assert (first.images, first.computed, first.reused) == (8, 8, 0)
        shas, matrix = vector_store(settings, embedder.space).load()
        second = embed_catalog(store, settings, embedder=embedder)
    assert (second.computed, second.reused, second.vectors) == (0, 8, 8)

    _write_folder(folder, per_brand=1, start=100)  # one new photo per brand
    _ingest(folder)
    with open_store(settings) as store:
        third = embed_catalog(store, settings, embedder=embedder)
    assert (third.images, third.computed, third.reused) == (10, 2, 8)
    # Earlier vectors are untouched by later runs.
    _, again = vector_store(settings, embedder.space).load(shas)
    np.testing.assert_array_equal(again, matrix)


def test_files_and_arrays_embed_alike(tmp_path: Path, embedder: Embedder) -> None:
    from io import BytesIO

    from PIL import Image

    # PNG, because two JPEG decoders (TensorFlow's, Pillow's) may differ by a grey level.
    path = tmp_path / "bag.png"
    Image.open(BytesIO(render_bag(BRANDS[0], seed=3, size=48))).save(path)
    from_file = embedder.embed_files([str(path)])
    from_array = embedder.embed_arrays([np.asarray(Image.open(path).convert("RGB"))])
    assert from_file.shape == (1, embedder.dim) == from_array.shape
    np.testing.assert_allclose(from_file, from_array, rtol=1e-4, atol=1e-4)


def test_different_images_get_different_vectors(embedder: Embedder) -> None:
    from io import BytesIO

    from PIL import Image

    images = [
        np.asarray(Image.open(BytesIO(render_bag(look, seed=1, size=48))).convert("RGB"))
        for look in BRANDS[:3]
    ]
    vectors = embedder.embed_arrays(images)
    assert vectors.shape == (3, 64 + 128 + 256)
    assert not np.allclose(vectors[0], vectors[1])
    assert np.isfinite(vectors).all()


def test_space_names_backbone_weights_size_and_pooling(embedder: Embedder) -> None:
    assert embedder.space.startswith("scratch-none-")
    assert embedder.space.endswith("-32px-float32-v1-gap3")
    other = Embedder(EmbedderSpec(backbone="scratch", weights="none", image_size=48))
    assert other.space != embedder.space


def test_cli_embed_reports_json(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "catalog"
    _write_folder(folder, per_brand=2)
    _ingest(folder)
    args = ["embed", "--backbone", "scratch", "--image-size", "32", "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["computed"] == 4 and report["space"].startswith("scratch-none-")
    second = json.loads(runner.invoke(app, args).stdout)
    assert second["computed"] == 0 and second["reused"] == 4


def test_cli_embed_rejects_missing_weights(settings: Settings, tmp_path: Path) -> None:
    result = runner.invoke(app, ["embed", "--weights", str(tmp_path / "nope.h5")])
    assert result.exit_code == 2
    assert "nope.h5" in result.output
