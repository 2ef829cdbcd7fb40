"""The content store names files by their bytes, writes them once and atomically."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from baghunter.images.cas import ContentStore, StoredBlob, sha256_of


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "images")


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_sha256_of_matches_the_published_test_vector() -> None:
    # FIPS 180-2, appendix B.1
    expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_of(b"abc") == expected


def test_put_files_the_bytes_under_a_two_level_fan_out(store: ContentStore) -> None:
    data = b"\x89PNG fake image bytes"
    digest = hashlib.sha256(data).hexdigest()

    blob = store.put(data, "png")

    assert blob == StoredBlob(digest, f"{digest[:2]}/{digest[2:4]}/{digest}.png")
    assert store.path(blob.relpath).read_bytes() == data
    assert files_under(store.root) == [store.root / digest[:2] / digest[2:4] / f"{digest}.png"]


def test_put_is_idempotent_and_does_not_rewrite(store: ContentStore) -> None:
    first = store.put(b"same bytes", "jpg")
    stat = store.path(first.relpath).stat()

    second = store.put(b"same bytes", "jpg")

    assert second == first
    again = store.path(second.relpath).stat()
    assert (again.st_ino, again.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    assert len(files_under(store.root)) == 1


def test_a_short_blob_left_by_a_power_loss_is_rewritten(store: ContentStore) -> None:
    data = b"\xff\xd8 a photo " * 100
    blob = store.put(data, "jpg")
    store.path(blob.relpath).write_bytes(data[:10])  # what an unsynced write can leave
    assert store.put(data, "jpg") == blob
    assert store.path(blob.relpath).read_bytes() == data


def test_different_bytes_get_different_files(store: ContentStore) -> None:
    a, b = store.put(b"one", "jpg"), store.put(b"two", "jpg")
    assert a.relpath != b.relpath
    assert len(files_under(store.root)) == 2


def test_exists_reflects_what_was_stored(store: ContentStore) -> None:
    blob = store.put(b"payload", "webp")
    assert store.exists(blob.sha256, "webp")
    assert not store.exists(blob.sha256, "jpg")
    assert not store.exists(sha256_of(b"never stored"), "webp")


def test_stored_files_are_readable_by_other_users(store: ContentStore) -> None:
    blob = store.put(b"shared with the serving stage", "jpg")
    assert store.path(blob.relpath).stat().st_mode & 0o044 == 0o044


def test_concurrent_puts_of_the_same_bytes_leave_one_complete_file(store: ContentStore) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB, so writes overlap
    results: list[StoredBlob] = []
    lock = threading.Lock()

    def put() -> None:
        blob = store.put(data, "jpg")
        with lock:
            results.append(blob)

    threads = [threading.Thread(target=put) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(results)) == 1 and len(results) == 8
    # No temporary files left behind, and the one file holds all the bytes.
    assert files_under(store.root) == [store.path(results[0].relpath)]
    assert store.path(results[0].relpath).read_bytes() == data


def test_a_failed_write_leaves_no_temporary_file(store: ContentStore) -> None:
    data = b"cannot land"
    digest = sha256_of(data)
    squatter = store.root / digest[:2] / digest[2:4] / f"{digest}.jpg"
    (squatter / "junk").mkdir(parents=True)  # a directory where the file should go

    with pytest.raises(OSError):
        store.put(data, "jpg")

    assert files_under(store.root) == []
    assert not store.exists(digest, "jpg")


@pytest.mark.parametrize("ext", ["", "../jpg", "j/pg", "waytoolongext"])
def test_unsafe_extensions_are_refused(store: ContentStore, ext: str) -> None:
    with pytest.raises(ValueError):
        store.put(b"data", ext)


@pytest.mark.parametrize(
    "relpath",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "ab/cd/" + "0" * 64 + ".jpg",  # the fan-out does not match the digest
        "ab/cd/" + "ab" * 16 + ".jpg",  # not a full digest
    ],
)
def test_path_refuses_anything_but_the_store_layout(store: ContentStore, relpath: str) -> None:
    with pytest.raises(ValueError):
        store.path(relpath)
