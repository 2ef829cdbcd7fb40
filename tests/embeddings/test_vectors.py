"""The vector store: keyed by sha256, append-only shards, never mixing spaces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from baghunter.embeddings.vectors import VectorStore


def _vectors(n: int, dim: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def test_add_then_load_in_requested_order(tmp_path: Path) -> None:
    store = VectorStore(tmp_path, "space-a")
    matrix = _vectors(3)
    assert store.add(["a", "b", "c"], matrix) == 3
    shas, loaded = store.load(["c", "a"])
    assert shas == ["c", "a"]
    np.testing.assert_array_equal(loaded, matrix[[2, 0]])
    assert len(store) == 3 and "b" in store and "z" not in store


def test_existing_hashes_are_not_stored_twice(tmp_path: Path) -> None:
    store = VectorStore(tmp_path, "space-a")
    first = _vectors(2, seed=1)
    store.add(["a", "b"], first)
    # "a" again (with another value), "c" new, "c" twice within the call.
    assert store.add(["a", "c", "c"], _vectors(3, seed=2)) == 1
    assert store.shard_count == 2
    shas, _ = store.load()
    assert sorted(shas) == ["a", "b", "c"]
    np.testing.assert_array_equal(store.load(["a"])[1][0], first[0])  # first write wins
    assert store.add(["a", "b"], _vectors(2)) == 0
    assert store.shard_count == 2  # nothing new: no empty shard


def test_missing_deduplicates_and_keeps_order(tmp_path: Path) -> None:
    store = VectorStore(tmp_path, "space-a")
    store.add(["b"], _vectors(1))
    assert store.missing(["c", "b", "a", "c"]) == ["c", "a"]


def test_a_fresh_instance_sees_what_another_wrote(tmp_path: Path) -> None:
    VectorStore(tmp_path, "space-a").add(["a", "b"], _vectors(2))
    reopened = VectorStore(tmp_path, "space-a")
    assert reopened.missing(["a", "b", "c"]) == ["c"]
    assert reopened.dim == 4


def test_spaces_are_separate(tmp_path: Path) -> None:
    VectorStore(tmp_path, "space-a").add(["a"], _vectors(1))
    other = VectorStore(tmp_path, "space-b")
    assert len(other) == 0 and other.dim is None
    assert other.missing(["a"]) == ["a"]


def test_loading_unknown_hashes_names_the_problem(tmp_path: Path) -> None:
    store = VectorStore(tmp_path, "space-a")
    store.add(["a"], _vectors(1))
    with pytest.raises(KeyError, match="1 of 2 images have no space-a embedding"):
        store.load(["a", "nope"])


def test_shape_errors_are_refused(tmp_path: Path) -> None:
    store = VectorStore(tmp_path, "space-a")
    store.add(["a"], _vectors(1, dim=4))
    with pytest.raises(ValueError, match="vectors of length 3 in a space of 4"):
        store.add(["b"], _vectors(1, dim=3))
    with pytest.raises(ValueError, match="2 hashes"):
        store.add(["b", "c"], _vectors(3))
    with pytest.raises(ValueError, match="invalid backbone id"):
        VectorStore(tmp_path, "../escape")


def test_compact_keeps_every_vector(tmp_path: Path) -> None:
    store = VectorStore(tmp_path, "space-a")
    parts = [_vectors(2, seed=i) for i in range(3)]
    for i, part in enumerate(parts):
        store.add([f"{i}a", f"{i}b"], part)
    before_shas, before = store.load()
    assert store.compact() == 3
    assert store.shard_count == 1
    after_shas, after = VectorStore(tmp_path, "space-a").load(before_shas)
    assert after_shas == before_shas
    np.testing.assert_array_equal(after, before)
    assert not list(store.directory.glob("*.tmp"))
