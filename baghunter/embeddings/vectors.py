"""Append-only storage of image embeddings, keyed by image sha256, one space per backbone.

Layout under the features root::

    <backbone_id>/
        shard-000001.npz   sha256s (n,) and vectors (n, d) float32, written atomically
        shard-000002.npz   ...

Each embedding run appends one or more shards holding only images that had none, so a
re-run writes nothing, an interrupted run keeps every finished shard, and readers never
see a half-written file. Loading a whole space reads a handful of files rather than one
per image, which matters at catalog scale (tens of thousands of vectors in well under a
second). :meth:`VectorStore.compact` folds many small shards into one.

The root may be an object store (``BAGHUNTER_FEATURES_URI=s3://…``): a shard is then one
object, written whole; shard numbers are taken by one writer at a time (the embedding
stage's driver), as an object store has no create-if-absent a link could stand for.

The space name is the backbone id (:func:`baghunter.training.features.backbone_id`), which
fingerprints the weights themselves: vectors from different backbones, weights or input
sizes can never be mixed.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from baghunter.storage import Location, filesystem, is_url, join

_SHARD = re.compile(r"^shard-(\d{6})\.npz$")


class VectorStore:
    """The embeddings of one backbone, in ``root / backbone_id``."""

    def __init__(self, root: Location, backbone_id: str) -> None:
        if not backbone_id or "/" in backbone_id:
            raise ValueError(f"invalid backbone id {backbone_id!r}")
        self.backbone_id = backbone_id
        self.directory = join(root, backbone_id)
        self._remote = is_url(self.directory)
        self._fs, self._path = filesystem(self.directory)
        self._lock = threading.Lock()
        self._index: dict[str, tuple[int, int]] | None = None  # sha -> (shard no, row)

    # --- reading -----------------------------------------------------------------------
    def _shards(self) -> list[tuple[int, str]]:
        try:
            names = self._fs.ls(self._path, detail=False)
        except FileNotFoundError:
            return []
        found = []
        for path in names:
            match = _SHARD.match(str(path).rsplit("/", 1)[-1])
            if match:
                found.append((int(match[1]), str(path)))
        return sorted(found)

    def _open(self, path: str) -> Any:
        """A shard's arrays (``np.load`` of the stored ``.npz``; from a store, read whole)."""
        if not self._remote:
            return np.load(path)
        return np.load(io.BytesIO(self._fs.cat_file(path)))

    def _load_index(self) -> dict[str, tuple[int, int]]:
        if self._index is None:
            index: dict[str, tuple[int, int]] = {}
            for number, path in self._shards():
                with self._open(path) as data:
                    for row, sha in enumerate(data["sha256"].tolist()):
                        index.setdefault(str(sha), (number, row))
            self._index = index
        return self._index

    @property
    def shard_count(self) -> int:
        return len(self._shards())

    def __len__(self) -> int:
        return len(self._load_index())

    def __contains__(self, sha256: object) -> bool:
        return sha256 in self._load_index()

    def missing(self, sha256s: Iterable[str]) -> list[str]:
        """The given hashes that have no vector yet, deduplicated, in first-seen order."""
        index = self._load_index()
        return [sha for sha in dict.fromkeys(sha256s) if sha not in index]

    @property
    def dim(self) -> int | None:
        """Vector length, or None while the space is empty."""
        for _, path in self._shards():
            with self._open(path) as data:
                return int(data["vectors"].shape[1])
        return None

    def load(self, sha256s: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
        """``(sha256s, vectors)``: all of the space, or the given hashes in their order.

        Asking for a hash that has no vector is a KeyError naming how many were missing,
        so a caller never silently scores a different set of images than it asked for.
        """
        shas: list[str] = []
        blocks: list[np.ndarray] = []
        seen: set[str] = set()
        for _, path in self._shards():
            with self._open(path) as data:
                shard_shas = [str(s) for s in data["sha256"].tolist()]
                vectors = data["vectors"]
                keep = [i for i, sha in enumerate(shard_shas) if sha not in seen]
                seen.update(shard_shas[i] for i in keep)
                shas.extend(shard_shas[i] for i in keep)
                blocks.append(vectors[keep] if len(keep) < len(shard_shas) else vectors)
        dim = blocks[0].shape[1] if blocks else 0
        matrix = np.concatenate(blocks) if blocks else np.zeros((0, dim), np.float32)
        if sha256s is None:
            return shas, matrix
        position = {sha: i for i, sha in enumerate(shas)}
        absent = [sha for sha in sha256s if sha not in position]
        if absent:
            raise KeyError(
                f"{len(absent)} of {len(sha256s)} images have no {self.backbone_id} "
                f"embedding (first: {absent[0]}); run the embedding step first"
            )
        rows = [position[sha] for sha in sha256s]
        return list(sha256s), matrix[rows] if rows else np.zeros((0, dim), np.float32)

    # --- writing -----------------------------------------------------------------------
    def add(self, sha256s: Sequence[str], vectors: np.ndarray) -> int:
        """Append vectors for hashes that have none yet; returns how many were stored."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(sha256s) != vectors.shape[0]:
            raise ValueError(f"{len(sha256s)} hashes for vectors of shape {vectors.shape}")
        with self._lock:
            index = self._load_index()
            dim = self.dim
            if dim is not None and vectors.shape[1] != dim:
                raise ValueError(f"vectors of length {vectors.shape[1]} in a space of {dim}")
            keep = [i for i, sha in enumerate(sha256s) if sha not in index]
            keep = list({sha256s[i]: i for i in keep}.values())  # one row per hash
            if not keep:
                return 0
            number = self._write_shard([sha256s[i] for i in keep], vectors[keep])
            for row, i in enumerate(keep):
                index[sha256s[i]] = (number, row)
            return len(keep)

    def _write_shard(self, sha256s: Sequence[str], vectors: np.ndarray) -> int:
        shards = self._shards()
        number = (shards[-1][0] if shards else 0) + 1
        name = f"shard-{number:06d}.npz"
        if self._remote:
            buffer = io.BytesIO()
            np.savez(buffer, sha256=np.array(sha256s, dtype="U64"), vectors=vectors)
            self._fs.pipe_file(f"{self._path}/{name}", buffer.getvalue())
            return number
        directory = Path(self.directory)
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, sha256=np.array(sha256s, dtype="U64"), vectors=vectors)
            # mkstemp makes the file private; other services (serving, Airflow workers
            # under another uid) read the same features volume.
            os.chmod(tmp, 0o644)
            # link() fails if another writer took this number meanwhile: never overwrite.
            os.link(tmp, directory / name)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return number

    def compact(self) -> int:
        """Rewrite all shards as one; returns the number of shards removed."""
        with self._lock:
            shards = self._shards()
            if len(shards) < 2:
                return 0
            shas, matrix = self.load()
            number = self._write_shard(shas, matrix)
            for old, path in shards:
                if old != number:
                    self._fs.rm_file(path)
            self._index = None
            return len(shards)
