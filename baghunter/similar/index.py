"""Nearest-neighbour search over the catalog's image embeddings: photo in, products out.

Vectors are the shared embeddings (:mod:`baghunter.embeddings`), one per distinct image
sha256, L2-normalized so that the inner product is the cosine similarity. Each image
carries the listings that show it, so a query answers in products: every product whose
photo is among the nearest images gets a row, ranked by score, ties in catalog order.

Two engines sit behind one API:

``exact``  a chunked matrix product and a partial sort. Always right, no build step, and
           fast enough while the matrix is small: on this project's 2-core reference
           machine a single query over the 35k-image catalog takes milliseconds.
``hnsw``   faiss' HNSW graph (an optional dependency, ``pip install baghunter[similar]``):
           query time grows roughly with log(n) instead of n, at the cost of a build step,
           extra memory and a recall a little under 1.

``engine="auto"`` searches exactly up to ``settings.similar_exact_max`` (50,000) vectors
and uses HNSW beyond. From ``bench/similar_bench.py`` (docs/benchmarks.md, "Similar
search") on 2 cores: exact search over the 34k-image catalog answers in 17 ms (median),
over 200k vectors in 204 ms - four times a VGG16 forward pass; HNSW answers in under a
millisecond at both sizes with recall@10 of 0.996 and 0.992, but takes 32 s and 5 min to
build. Below ~50k vectors the exact scan stays under ~30 ms, no build, no misses. Without
faiss the index falls back to exact search and says so in the log.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from baghunter.config import Settings
from baghunter.embeddings.vectors import VectorStore
from baghunter.storage import Location, exists, filesystem, is_url, join, staged
from baghunter.store.base import CatalogStore

logger = logging.getLogger(__name__)

Engine = Literal["exact", "hnsw"]
ENGINES = ("auto", "exact", "hnsw")
MAX_K = 1000  # a page of results, not a dump of the catalog
FORMAT = 1  # bumped when the saved layout changes
# A saved index: its files, and the one whose presence marks it complete (written last).
INDEX_FILES = ("vectors.npy", "mean.npy", "images.json", "hnsw.faiss")
INDEX_MARKER = "index.json"

# HNSW graph parameters (bench/similar_bench.py): 32 links per node and a build beam of
# 80 reach recall@10 0.996 on the real catalog at a search beam of 64 (0.987 at 32).
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 64

# Queries are scored this many at a time in exact search: a block of scores stays a few
# tens of MB even against a million vectors.
_QUERY_BLOCK = 256


class EmptyIndexError(ValueError):
    """There is nothing to search: no catalog image has a vector in the space."""


@dataclass(frozen=True)
class Listing:
    """A catalog product that shows a given image."""

    source: str
    source_id: str
    title: str | None
    brand: str | None
    image_url: str


@dataclass(frozen=True)
class Match:
    """One result row: a catalog product, its image and the cosine similarity to the query."""

    source: str
    source_id: str
    title: str | None
    brand: str | None
    image_url: str
    sha256: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_engine(engine: str, count: int, exact_max: int) -> Engine:
    """The engine to use for ``count`` vectors; ``auto`` applies the ``exact_max`` rule."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    wanted: Engine
    if engine == "auto":
        wanted = "exact" if count <= exact_max else "hnsw"
    else:
        wanted = "exact" if engine == "exact" else "hnsw"
    if wanted == "hnsw" and not faiss_available():
        logger.warning(
            "faiss is not installed (pip install 'baghunter[similar]'): searching %d vectors "
            "exactly instead of with HNSW",
            count,
        )
        return "exact"
    return wanted


def default_index_dir(settings: Settings, space: str) -> Location:
    return join(settings.features_root, "index", space)


def _normalized(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


class SimilarIndex:
    """The catalog's images in one embedding space, searchable by cosine similarity."""

    def __init__(
        self,
        space: str,
        shas: Sequence[str],
        matrix: np.ndarray,
        listings: Sequence[Sequence[Listing]],
        *,
        engine: Engine,
        mean: np.ndarray | None = None,
        ann: Any = None,
    ) -> None:
        """Prefer :meth:`build`, :meth:`from_arrays` or :meth:`load`; ``matrix`` is normalized."""
        self.space = space
        self.shas = list(shas)
        self.matrix = matrix
        self.listings = [list(group) for group in listings]
        self.engine: Engine = engine
        self.dim = int(matrix.shape[1])
        self.mean = mean if mean is not None else np.zeros(self.dim, np.float32)
        self._ann = ann
        self._row = {sha: row for row, sha in enumerate(self.shas)}

    # --- building ----------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        space: str,
        shas: Sequence[str],
        vectors: np.ndarray,
        listings: Sequence[Sequence[Listing]] | None = None,
        *,
        engine: str = "auto",
        exact_max: int = 50_000,
        center: bool = False,
    ) -> SimilarIndex:
        """An index over raw embeddings, one row per distinct image ``sha``.

        ``center`` subtracts the vectors' mean before normalizing (queries get the same
        shift). It rescues features that all point one way, such as an untrained CNN's
        (raw cosines above 0.99 between unrelated photos). On ImageNet VGG16 features it
        costs quality instead - fewer same-type neighbours and fewer copies found at the
        same false-match rate (docs/benchmarks.md) - so it is off by default.
        """
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(shas):
            raise ValueError(f"{len(shas)} image hashes for vectors of shape {vectors.shape}")
        if len(shas) == 0:
            raise EmptyIndexError(f"no vectors to index in space {space}")
        if len(set(shas)) != len(shas):
            raise ValueError("image hashes must be distinct (one vector per image)")
        if not np.isfinite(vectors).all():
            raise ValueError("vectors contain NaN or infinite values")
        mean = vectors.mean(axis=0) if center else np.zeros(vectors.shape[1], np.float32)
        matrix = np.ascontiguousarray(_normalized(vectors - mean), dtype=np.float32)
        chosen = resolve_engine(engine, len(shas), exact_max)
        ann = _build_hnsw(matrix) if chosen == "hnsw" else None
        groups = listings if listings is not None else [[] for _ in shas]
        if len(groups) != len(shas):
            raise ValueError(f"{len(groups)} listing groups for {len(shas)} images")
        return cls(space, shas, matrix, groups, engine=chosen, mean=mean, ann=ann)

    @classmethod
    def build(
        cls,
        store: CatalogStore,
        vectors: VectorStore,
        *,
        engine: str = "auto",
        settings: Settings,
    ) -> SimilarIndex:
        """Index every ok catalog image that has a vector in ``vectors``' space."""
        titles = {(p["source"], p["source_id"]): p.get("title") for p in store.iter_products()}
        by_sha: dict[str, list[Listing]] = {}
        for row in store.iter_catalog_images():
            by_sha.setdefault(row.sha256, []).append(
                Listing(
                    source=row.source,
                    source_id=row.source_id,
                    title=titles.get((row.source, row.source_id)),
                    brand=row.brand,
                    image_url=row.url,
                )
            )
        have = [sha for sha in by_sha if sha in vectors]
        if len(have) < len(by_sha):
            logger.warning(
                "%d of %d catalog images have no %s vector and are not searchable; "
                "run the embedding step first",
                len(by_sha) - len(have),
                len(by_sha),
                vectors.backbone_id,
            )
        if not have:
            raise EmptyIndexError(
                f"no catalog image has a vector in space {vectors.backbone_id}; "
                "run `baghunter embed` first"
            )
        shas, matrix = vectors.load(have)
        return cls.from_arrays(
            vectors.backbone_id,
            shas,
            matrix,
            [by_sha[sha] for sha in shas],
            engine=engine,
            exact_max=settings.similar_exact_max,
            center=settings.similar_center,
        )

    # --- searching ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.shas)

    def __contains__(self, sha256: object) -> bool:
        return sha256 in self._row

    def vector_of(self, sha256: str) -> np.ndarray:
        """The indexed (normalized, centered if so built) vector of an image."""
        return self.matrix[self._row[sha256]]

    def prepare(self, queries: np.ndarray) -> np.ndarray:
        """Raw embeddings of shape ``(m, dim)`` as the index compares them."""
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(
                f"query vectors of shape {queries.shape} do not fit an index of "
                f"{self.dim}-d vectors (space {self.space})"
            )
        if not np.isfinite(queries).all():
            raise ValueError("query vector contains NaN or infinite values")
        prepared = _normalized(queries - self.mean)
        if not np.linalg.norm(prepared, axis=1).all():
            raise ValueError("a query vector has no direction (all zero after centering)")
        return prepared

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Image-level search: ``(scores, rows)``, each ``(m, min(k, len))``, best first.

        ``queries`` are raw embeddings; rows index :attr:`shas`. Equal scores keep the
        lower row first (HNSW: among the hits its graph search found), so results do not
        depend on an engine's internal order.
        """
        _check_k(k)
        prepared = self.prepare(queries)
        k = min(k, len(self))
        if self.engine == "hnsw":
            return _search_hnsw(self._ann, prepared, k)
        return _search_exact(self.matrix, prepared, k)

    def query(self, vector: np.ndarray, k: int, exclude_sha256: str | None = None) -> list[Match]:
        """The ``k`` catalog products whose photos are nearest to ``vector`` (raw embedding).

        ``exclude_sha256`` leaves out products showing that image (a catalog photo asking
        for *other* products like it).
        """
        vector = np.asarray(vector)
        if vector.ndim != 1:
            raise ValueError(f"expected one vector of shape ({self.dim},), got {vector.shape}")
        return self.query_many(vector[None, :], k, exclude_sha256=exclude_sha256)[0]

    def query_many(
        self, matrix: np.ndarray, k: int, exclude_sha256: str | None = None
    ) -> list[list[Match]]:
        """:meth:`query` for each row of ``matrix``."""
        _check_k(k)
        # Every indexed image has at least one listing when built from a store, so k
        # images give k products; one more covers the excluded image.
        extra = 1 if exclude_sha256 is not None and exclude_sha256 in self._row else 0
        scores, rows = self.search(matrix, k + extra)
        results = []
        for row_scores, row_ids in zip(scores.tolist(), rows.tolist(), strict=True):
            matches: list[Match] = []
            for score, row in zip(row_scores, row_ids, strict=True):
                sha = self.shas[row]
                if sha == exclude_sha256:
                    continue
                matches.extend(
                    Match(**asdict(listing), sha256=sha, score=round(score, 6))
                    for listing in self.listings[row]
                )
                if len(matches) >= k:
                    break
            results.append(matches[:k])
        return results

    def self_neighbours(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Every indexed image's ``k`` nearest *other* images: ``(scores, rows)``, ``(n, k)``.

        The candidate pairs of near-duplicate grouping; an image's own row is dropped
        (rows holding fewer than ``k`` others are padded with score ``-inf``, row -1).
        """
        _check_k(k)
        wanted = min(k + 1, len(self))
        scores = np.full((len(self), k), -np.inf, np.float32)
        rows = np.full((len(self), k), -1, np.int64)
        for start in range(0, len(self), _QUERY_BLOCK * 16):
            block = self.matrix[start : start + _QUERY_BLOCK * 16]
            if self.engine == "hnsw":
                found_scores, found_rows = _search_hnsw(self._ann, block, wanted)
            else:
                found_scores, found_rows = _search_exact(self.matrix, block, wanted)
            for offset, (row_scores, row_ids) in enumerate(
                zip(found_scores, found_rows, strict=True)
            ):
                keep = row_ids != start + offset
                kept = row_ids[keep][:k]
                scores[start + offset, : len(kept)] = row_scores[keep][:k]
                rows[start + offset, : len(kept)] = kept
        return scores, rows

    # --- persistence -------------------------------------------------------------------
    def save(self, directory: Location) -> Location:
        """Write the index to ``directory``, replacing any index there in one step.

        In an object store the index is written to a local folder and published file by
        file with ``index.json`` last, after the old one is removed: a reader finds no
        index or a complete one, never a mix.
        """
        if is_url(directory):
            with tempfile.TemporaryDirectory(prefix="baghunter-index-") as tmp:
                local = self.save(Path(tmp) / "index")
                fs, base = filesystem(directory)
                if fs.exists(f"{base}/{INDEX_MARKER}"):
                    fs.rm_file(f"{base}/{INDEX_MARKER}")
                files = sorted(p for p in Path(local).iterdir() if p.name != INDEX_MARKER)
                for path in [*files, Path(local) / INDEX_MARKER]:
                    fs.put_file(str(path), f"{base}/{path.name}")
            return directory
        target = Path(directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the index from a serving user
        try:
            np.save(staging / "vectors.npy", self.matrix)
            np.save(staging / "mean.npy", self.mean)
            images = [
                {"sha256": sha, "listings": [asdict(item) for item in group]}
                for sha, group in zip(self.shas, self.listings, strict=True)
            ]
            (staging / "images.json").write_text(json.dumps(images))
            if self.engine == "hnsw":
                import faiss

                faiss.write_index(self._ann, str(staging / "hnsw.faiss"))
            meta = {
                "format": FORMAT,
                "space": self.space,
                "engine": self.engine,
                "dim": self.dim,
                "count": len(self),
                "hnsw": {"m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION},
            }
            # index.json last: its presence marks a complete index.
            (staging / INDEX_MARKER).write_text(json.dumps(meta, indent=2))
            _swap_in(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    @classmethod
    def load(cls, directory: Location) -> SimilarIndex:
        """Read an index written by :meth:`save` (exact search if faiss is missing)."""
        if is_url(directory):
            if not exists(join(directory, INDEX_MARKER)):
                raise FileNotFoundError(
                    f"no similar-product index at {directory}; run `baghunter similar build`"
                )
            with staged(directory, [*INDEX_FILES, INDEX_MARKER]) as local:
                return cls.load(local)
        directory = Path(directory)
        meta_path = directory / INDEX_MARKER
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"no similar-product index at {directory}; run `baghunter similar build`"
            )
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("format") != FORMAT:
                raise ValueError(f"index format {meta.get('format')}, expected {FORMAT}")
            matrix = np.load(directory / "vectors.npy")
            mean = np.load(directory / "mean.npy")
            images = json.loads((directory / "images.json").read_text())
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"similar-product index at {directory} is unreadable: {exc}") from exc
        if matrix.shape != (meta["count"], meta["dim"]) or len(images) != meta["count"]:
            raise ValueError(f"similar-product index at {directory} is incomplete")
        engine: Engine = meta["engine"]
        ann = None
        if engine == "hnsw":
            if faiss_available():
                import faiss

                ann = faiss.read_index(str(directory / "hnsw.faiss"))
            else:
                logger.warning("faiss is not installed: searching %s exactly", directory)
                engine = "exact"
        return cls(
            meta["space"],
            [image["sha256"] for image in images],
            matrix,
            [[Listing(**item) for item in image["listings"]] for image in images],
            engine=engine,
            mean=mean,
            ann=ann,
        )


def _check_k(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be between 1 and {MAX_K}, not {k}")


def _search_exact(matrix: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = np.empty((len(queries), k), np.float32)
    rows = np.empty((len(queries), k), np.int64)
    for start in range(0, len(queries), _QUERY_BLOCK):
        block = queries[start : start + _QUERY_BLOCK] @ matrix.T
        for offset, similarity in enumerate(block):
            top = np.argpartition(-similarity, k - 1)[:k] if k < len(similarity) else None
            # Everything tied with the k-th best is a candidate, so ties resolve by row.
            floor = similarity[top].min() if top is not None else -np.inf
            candidates = np.flatnonzero(similarity >= floor)
            order = candidates[np.lexsort((candidates, -similarity[candidates]))][:k]
            scores[start + offset] = similarity[order]
            rows[start + offset] = order
    return scores, rows


def _build_hnsw(matrix: np.ndarray) -> Any:
    import faiss

    index = faiss.IndexHNSWFlat(matrix.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.add(matrix)
    return index


def _search_hnsw(index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    # Per-call parameters, not index.hnsw.efSearch: concurrent queries share the index.
    params = faiss.SearchParametersHNSW(efSearch=max(HNSW_EF_SEARCH, k))  # type: ignore[attr-defined]
    scores, rows = index.search(np.ascontiguousarray(queries), k, params=params)
    # The graph search may return fewer than k hits (-1 rows) on tiny indexes; those sort
    # last. Equal scores are put in row order, as exact search does.
    scores = np.where(rows < 0, -np.inf, scores)
    order = np.lexsort((rows, -scores), axis=-1)
    return np.take_along_axis(scores, order, -1), np.take_along_axis(rows, order, -1)


def _swap_in(staging: Path, target: Path) -> None:
    """Replace ``target`` with the finished ``staging`` folder (readers never see a mix)."""
    retired = None
    if target.exists():
        retired = target.with_name(f".{target.name}.old-{os.getpid()}-{time.time_ns()}")
        target.rename(retired)
    staging.rename(target)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def build_index(
    store: CatalogStore,
    settings: Settings,
    *,
    space: str | None = None,
    engine: str = "auto",
    directory: Path | None = None,
) -> dict[str, Any]:
    """Build and save the index of the configured embedding space (CLI and Airflow task).

    ``space`` defaults to the space of the configured embedder (``embed_backbone``,
    ``weights``, ``embed_image_size``), which takes building that model to name.
    """
    started = time.perf_counter()
    if space is None:
        from baghunter.embeddings.model import Embedder, EmbedderSpec

        space = Embedder(EmbedderSpec.from_settings(settings)).space
    vectors = VectorStore(settings.features_root, space)
    index = SimilarIndex.build(store, vectors, engine=engine, settings=settings)
    path = index.save(directory or default_index_dir(settings, space))
    report = {
        "space": space,
        "vectors": len(index),
        "products": sum(len(group) for group in index.listings),
        "engine": index.engine,
        "seconds": round(time.perf_counter() - started, 3),
        "path": str(path),
    }
    logger.info("similar-product index built: %s", report)
    return report
