"""Folders in an object store (fsspec's in-memory filesystem stands in for a bucket)."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from baghunter import storage
from baghunter.embeddings.vectors import VectorStore


@pytest.fixture
def bucket() -> str:
    return f"memory://bucket-{uuid.uuid4().hex}"


def test_a_local_location_stays_a_path_and_a_url_stays_a_url(tmp_path: Path) -> None:
    assert storage.join(tmp_path, "index", "s") == tmp_path / "index" / "s"
    assert storage.join("s3://b/features/", "index", "s") == "s3://b/features/index/s"


def test_staged_fetches_what_exists_and_publishes_what_the_block_adds(bucket: str) -> None:
    fs, base = storage.filesystem(bucket)
    fs.pipe_file(f"{base}/kept.txt", b"old")
    with storage.staged(bucket, ["kept.txt", "data.bin", "marker.json"]) as local:
        assert (local / "kept.txt").read_bytes() == b"old"
        (local / "marker.json").write_text("{}")
        (local / "data.bin").write_bytes(b"\x00" * 10)
        assert not fs.exists(f"{base}/marker.json")  # nothing is published mid-block
    assert fs.cat_file(f"{base}/data.bin") == b"\x00" * 10
    assert fs.cat_file(f"{base}/marker.json") == b"{}"
    assert fs.cat_file(f"{base}/kept.txt") == b"old"


def test_a_failed_block_publishes_nothing(bucket: str) -> None:
    fs, base = storage.filesystem(bucket)
    with pytest.raises(RuntimeError), storage.staged(bucket, ["marker.json"]) as local:
        (local / "marker.json").write_text("{}")
        raise RuntimeError("interrupted")
    assert not fs.exists(f"{base}/marker.json")


def test_vectors_in_a_bucket_add_load_and_compact(bucket: str) -> None:
    store = VectorStore(bucket, "space-a")
    rng = np.random.default_rng(0)
    first, second = rng.normal(size=(3, 4)), rng.normal(size=(2, 4))
    assert store.add(["a", "b", "c"], first) == 3
    assert store.add(["c", "d", "e"], np.vstack([first[2:], second])) == 2  # c is kept
    again = VectorStore(bucket, "space-a")  # another process, reading the bucket
    assert again.shard_count == 2 and len(again) == 5 and again.dim == 4
    shas, vectors = again.load(["e", "a"])
    assert shas == ["e", "a"]
    np.testing.assert_allclose(vectors, np.vstack([second[1], first[0]]).astype("float32"))
    assert again.compact() == 2
    assert VectorStore(bucket, "space-a").shard_count == 1
    assert VectorStore(bucket, "space-a").missing(["a", "z"]) == ["z"]


def test_markers_are_found_with_their_write_time(bucket: str) -> None:
    fs, base = storage.filesystem(bucket)
    fs.pipe_file(f"{base}/index/one/index.json", b"{}")
    fs.pipe_file(f"{base}/index/two/vectors.npy", b"")  # no marker: not an index
    found = storage.glob(storage.join(bucket, "index"), "*/index.json")
    assert found == [f"{bucket}/index/one/index.json"]
    assert storage.modified(found[0]) > 0
    assert storage.exists(found[0]) and not storage.exists(f"{bucket}/index/two/index.json")
