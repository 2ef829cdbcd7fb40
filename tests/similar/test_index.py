"""The nearest-neighbour index: engines agree, results are products, bad input is refused."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from baghunter.similar.index import (
    MAX_K,
    EmptyIndexError,
    Listing,
    SimilarIndex,
    resolve_engine,
)


def _clustered(n: int, dim: int = 24, clusters: int = 40, seed: int = 0) -> np.ndarray:
    """Vectors around a few centres, like products of a few kinds (harder than uniform)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    return (centres[rng.integers(0, clusters, n)] + 0.4 * rng.normal(size=(n, dim))).astype(
        np.float32
    )


def _shas(n: int) -> list[str]:
    return [f"{i:064x}" for i in range(n)]


def _listings(n: int) -> list[list[Listing]]:
    return [[Listing("shop", f"p{i}", f"bag {i}", "Acme", f"http://img/{i}.jpg")] for i in range(n)]


def test_exact_and_hnsw_agree_on_nearest_neighbours() -> None:
    vectors = _clustered(3000)
    exact = SimilarIndex.from_arrays("s", _shas(3000), vectors, engine="exact")
    approx = SimilarIndex.from_arrays("s", _shas(3000), vectors, engine="hnsw")
    assert (exact.engine, approx.engine) == ("exact", "hnsw")
    queries = vectors[:200] + 0.2 * np.random.default_rng(1).normal(size=(200, 24)).astype(
        np.float32
    )
    exact_scores, exact_rows = exact.search(queries, 10)
    approx_scores, approx_rows = approx.search(queries, 10)
    recall = np.mean(
        [len(set(a) & set(b)) / 10 for a, b in zip(exact_rows, approx_rows, strict=True)]
    )
    assert recall >= 0.95
    # Where both found the same image they agree on its score, and scores are sorted.
    np.testing.assert_allclose(exact_scores[:, 0], approx_scores[:, 0], atol=1e-5)
    assert (np.diff(exact_scores, axis=1) <= 1e-7).all()
    # Brute force over the normalized vectors is the ground truth for "exact".
    normalized = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    truth = np.argsort(-(q @ normalized.T), axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(exact_rows, truth)


def test_query_returns_products_best_first_and_every_product_sharing_an_image() -> None:
    vectors = _clustered(50)
    listings = _listings(50)
    listings[7].append(Listing("other", "relisted-7", "same photo", None, "http://x/7.jpg"))
    index = SimilarIndex.from_arrays("s", _shas(50), vectors, listings, engine="exact")
    matches = index.query(vectors[7], k=3)
    assert [(m.source_id, m.sha256) for m in matches[:2]] == [
        ("p7", _shas(50)[7]),
        ("relisted-7", _shas(50)[7]),
    ]
    assert matches[0].score == pytest.approx(1.0) and matches[0].score >= matches[2].score
    assert len(matches) == 3 and matches[2].sha256 != _shas(50)[7]
    assert matches[0].to_dict()["image_url"] == "http://img/7.jpg"

    others = index.query(vectors[7], k=3, exclude_sha256=_shas(50)[7])
    assert len(others) == 3 and all(m.sha256 != _shas(50)[7] for m in others)
    assert others[0] == matches[2]


def test_equal_scores_keep_catalog_order() -> None:
    vectors = np.tile(np.array([[1.0, 0.0, 0.0]], np.float32), (6, 1))
    exact = SimilarIndex.from_arrays("s", _shas(6), vectors, _listings(6), engine="exact")
    assert [m.source_id for m in exact.query(vectors[0], k=4)] == ["p0", "p1", "p2", "p3"]
    # The graph search may stop at any 4 of 6 tied images, but lists them in catalog order.
    approx = SimilarIndex.from_arrays("s", _shas(6), vectors, _listings(6), engine="hnsw")
    found = [int(m.source_id[1:]) for m in approx.query(vectors[0], k=4)]
    assert len(found) == 4 and found == sorted(found)


@pytest.mark.parametrize("engine", ["exact", "hnsw"])
def test_save_and_load_round_trip(tmp_path: Path, engine: str) -> None:
    vectors = _clustered(300)
    index = SimilarIndex.from_arrays(
        "space-x", _shas(300), vectors, _listings(300), engine=engine, center=True
    )
    index.save(tmp_path / "idx")
    index.save(tmp_path / "idx")  # a rebuild replaces the old index in place
    loaded = SimilarIndex.load(tmp_path / "idx")
    assert (loaded.space, loaded.engine, len(loaded), loaded.dim) == ("space-x", engine, 300, 24)
    assert loaded.query(vectors[5], 5) == index.query(vectors[5], 5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]  # no staging left behind


def test_without_faiss_hnsw_falls_back_to_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    vectors = _clustered(100)
    SimilarIndex.from_arrays("s", _shas(100), vectors, engine="hnsw").save(tmp_path / "idx")
    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` fail
    assert resolve_engine("auto", 10, exact_max=5) == "exact"
    loaded = SimilarIndex.load(tmp_path / "idx")
    assert loaded.engine == "exact"
    assert loaded.search(vectors[:1], 1)[1][0, 0] == 0
    assert "faiss is not installed" in caplog.text


def test_auto_engine_follows_the_size_rule() -> None:
    assert resolve_engine("auto", 100, exact_max=100) == "exact"
    assert resolve_engine("auto", 101, exact_max=100) == "hnsw"
    with pytest.raises(ValueError, match="engine must be one of"):
        resolve_engine("annoy", 1, exact_max=1)


def test_bad_queries_get_clear_errors() -> None:
    index = SimilarIndex.from_arrays("s", _shas(20), _clustered(20), _listings(20))
    with pytest.raises(ValueError, match="do not fit an index of 24-d vectors"):
        index.query(np.ones(23, np.float32), 3)
    with pytest.raises(ValueError, match="expected one vector"):
        index.query(np.ones((2, 24), np.float32), 3)
    for k in (0, MAX_K + 1):
        with pytest.raises(ValueError, match="k must be between"):
            index.query(np.ones(24, np.float32), k)
    with pytest.raises(ValueError, match="NaN"):
        index.query(np.full(24, np.nan, np.float32), 3)
    with pytest.raises(ValueError, match="no direction"):
        index.query(np.zeros(24, np.float32), 3)
    # k beyond the catalog returns the whole catalog, not an error.
    assert len(index.query(np.ones(24, np.float32), 50)) == 20


def test_bad_builds_get_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(EmptyIndexError):
        SimilarIndex.from_arrays("s", [], np.zeros((0, 4), np.float32))
    with pytest.raises(ValueError, match="2 image hashes for vectors of shape"):
        SimilarIndex.from_arrays("s", _shas(2), np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match="distinct"):
        SimilarIndex.from_arrays("s", ["a", "a"], np.ones((2, 4), np.float32))
    with pytest.raises(FileNotFoundError, match="baghunter similar build"):
        SimilarIndex.load(tmp_path / "nothing")
