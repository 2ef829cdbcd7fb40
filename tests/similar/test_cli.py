"""``baghunter similar build/query`` on an ingested, embedded catalog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from baghunter.cli import app
from baghunter.config import Settings
from baghunter.embeddings.model import Embedder
from baghunter.embeddings.pipeline import embed_catalog
from baghunter.local.sample.catalog import BRANDS, render_bag
from baghunter.similar.index import SimilarIndex, build_index, default_index_dir
from baghunter.store import open_store

runner = CliRunner()


def _ingest_catalog(root: Path, per_brand: int = 5) -> None:
    for look in BRANDS[:3]:
        folder = root / look.name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_brand):
            (folder / f"{i}.jpg").write_bytes(render_bag(look, seed=i, size=64))
    result = runner.invoke(app, ["ingest", "folder", str(root), "--json"])
    assert result.exit_code == 0, result.output


@pytest.fixture
def catalog(scratch_settings: Settings, tmp_path: Path, embedder: Embedder) -> Settings:
    _ingest_catalog(tmp_path / "catalog")
    with open_store(scratch_settings) as store:
        embed_catalog(store, scratch_settings, embedder=embedder)
    return scratch_settings


def test_every_catalog_photo_finds_its_own_product_first(
    catalog: Settings, embedder: Embedder
) -> None:
    built = runner.invoke(app, ["similar", "build", "--json"])
    assert built.exit_code == 0, built.output
    report = json.loads(built.stdout)
    assert (report["vectors"], report["engine"], report["space"]) == (15, "exact", embedder.space)
    assert Path(report["path"]) == default_index_dir(catalog, embedder.space)

    with open_store(catalog) as store:
        rows = list(store.iter_catalog_images())
    files = [str(catalog.images_dir / row.path) for row in rows]
    index = SimilarIndex.load(report["path"])
    results = index.query_many(embedder.embed_files(files), k=3)
    for row, matches in zip(rows, results, strict=True):
        assert (matches[0].source_id, matches[0].brand) == (row.source_id, row.brand)
        assert matches[0].score == pytest.approx(1.0, abs=1e-4)

    asked = runner.invoke(app, ["similar", "query", "--image", files[4], "-k", "2", "--json"])
    assert asked.exit_code == 0, asked.output
    answer = json.loads(asked.stdout)
    assert answer["matches"][0]["source_id"] == rows[4].source_id
    assert answer["matches"][0]["image_url"] == rows[4].url and len(answer["matches"]) == 2
    others = runner.invoke(
        app, ["similar", "query", "--image", files[4], "--exclude-self", "--json"]
    )
    assert rows[4].source_id not in [m["source_id"] for m in json.loads(others.stdout)["matches"]]


def test_hnsw_build_through_the_api(catalog: Settings, embedder: Embedder) -> None:
    with open_store(catalog) as store:
        report = build_index(store, catalog, space=embedder.space, engine="hnsw")
    assert report["engine"] == "hnsw" and report["products"] == 15
    assert SimilarIndex.load(report["path"]).engine == "hnsw"


def test_query_bad_input(catalog: Settings, tmp_path: Path) -> None:
    missing = runner.invoke(app, ["similar", "query", "--image", str(_a_photo(tmp_path))])
    assert missing.exit_code == 2 and "baghunter similar build" in _said(missing.output)

    assert runner.invoke(app, ["similar", "build"]).exit_code == 0
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    broken = runner.invoke(app, ["similar", "query", "--image", str(text)])
    assert broken.exit_code == 2 and "not a readable image" in _said(broken.output)
    zero = runner.invoke(app, ["similar", "query", "--image", str(_a_photo(tmp_path)), "-k", "0"])
    assert zero.exit_code == 2 and "k must be between" in _said(zero.output)


def test_build_with_nothing_embedded_says_what_to_do(
    scratch_settings: Settings, tmp_path: Path
) -> None:
    _ingest_catalog(tmp_path / "catalog", per_brand=1)
    result = runner.invoke(app, ["similar", "build"])
    assert result.exit_code == 2 and "baghunter embed" in _said(result.output)


def _said(output: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(output.split())


def _a_photo(tmp_path: Path) -> Path:
    path = tmp_path / "query.jpg"
    path.write_bytes(render_bag(BRANDS[5], seed=99, size=64))
    return path
