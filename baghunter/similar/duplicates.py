"""Near-duplicate groups from two kinds of evidence: perceptual hash and embedding.

The pHash (:mod:`baghunter.images.phash`) is precise but brittle: it survives resizing and
re-compression, not a crop of a few percent or a small rotation, which move the whole
low-frequency picture. Embeddings survive those edits (they describe *what* is shown,
pooled over positions) but also place different photos of similar products close
together. So two images are linked when

* their bytes are identical (same sha256), or
* their pHashes differ in at most ``phash_max_distance`` bits, or
* their embeddings' cosine similarity is at least ``min_cosine`` *and* their pHashes
  differ in at most ``phash_guard`` bits,

and groups are the connected components of those links. Embedding candidates come from
the similar-product index (each image's ``neighbours`` nearest), never from all pairs,
and by default a link must be *mutual*: each image among the other's nearest.

The thresholds come from ``bench/neardup_bench.py`` on 1,000 real catalog photos and
4,000 edited copies (docs/benchmarks.md, "Near-duplicates"): with VGG16 features, a
cosine of 0.992 matches 1 in 100,000 pairs of different photos and finds 90% of the
copies, where the pHash at the same false-match rate finds 59% (it misses nearly all
crops). Over the whole 35k-photo catalog, one-sided links among 10 neighbours chained
693 photos of sunglasses - all shot alike - into one group; mutual links among 3
neighbours keep the largest group at 59 (docs/benchmarks.md). The pHash guard is kept
as an option but off by default (256 bits): at equal false-match rate no guard value
found more copies than none. The pHash links stay because they cost nothing, need no
embedding (images not embedded yet are still grouped) and catch resized and
re-compressed copies with certainty.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np

from baghunter.config import Settings
from baghunter.images.phash import UnionFind, near_duplicate_groups, parse_hashes
from baghunter.similar.index import EmptyIndexError, SimilarIndex, default_index_dir
from baghunter.store.base import CatalogStore

logger = logging.getLogger(__name__)

Mode = Literal["phash", "embedding", "combined"]
MODES: tuple[Mode, ...] = ("phash", "embedding", "combined")


@dataclass(frozen=True)
class DuplicateRules:
    """When two images count as copies of one photo (see the module docstring)."""

    phash_max_distance: int | None = 24  # None: no pHash links
    min_cosine: float | None = 0.992  # None: no embedding links
    phash_guard: int = 256  # 256 bits: no guard
    neighbours: int = 3
    mutual: bool = True  # both images among each other's nearest neighbours

    @classmethod
    def from_settings(cls, settings: Settings, mode: Mode = "combined") -> DuplicateRules:
        rules = cls(
            phash_max_distance=settings.phash_max_distance,
            min_cosine=settings.dup_min_cosine,
            phash_guard=settings.dup_max_phash_guard,
            neighbours=settings.dup_neighbours,
            mutual=settings.dup_mutual,
        )
        return rules.only(mode)

    def only(self, mode: Mode) -> DuplicateRules:
        """These rules restricted to one kind of evidence (for comparisons)."""
        if mode == "phash":
            return replace(self, min_cosine=None)
        if mode == "embedding":
            return replace(self, phash_max_distance=None, phash_guard=256)
        if mode == "combined":
            return self
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")


@dataclass
class GroupingReport:
    images: int  # distinct images grouped
    groups: int  # groups of two or more images
    largest: int  # size of the largest group
    phash_links: int
    embedding_links: int  # embedding links that joined two different pHash groups' images
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def group_images(
    shas: Sequence[str],
    phashes: Sequence[str],
    rules: DuplicateRules,
    index: SimilarIndex | None = None,
) -> tuple[dict[str, str], GroupingReport]:
    """Group distinct images: ``sha256 -> group id`` (the smallest sha256 of the group).

    ``index`` supplies embedding links for the images it holds; images it lacks (no
    vector yet) are grouped by their pHash alone.
    """
    started = time.perf_counter()
    if len(shas) != len(phashes):
        raise ValueError(f"{len(shas)} images but {len(phashes)} perceptual hashes")
    if len(set(shas)) != len(shas):
        raise ValueError("image hashes must be distinct")
    position = {sha: i for i, sha in enumerate(shas)}
    links = UnionFind(len(shas))

    phash_links = 0
    if rules.phash_max_distance is not None and shas:
        items = [(sha, sha, ph) for sha, ph in zip(shas, phashes, strict=True)]
        by_phash = near_duplicate_groups(items, rules.phash_max_distance)
        for sha, group in by_phash.items():
            if sha != group:
                links.union(position[sha], position[group])
                phash_links += 1

    embedding_links = 0
    if rules.min_cosine is not None and index is not None and len(index) > 1:
        words = parse_hashes(phashes)
        scores, rows = index.self_neighbours(min(rules.neighbours, len(index) - 1))
        left, slot = np.nonzero(scores >= rules.min_cosine)
        right = rows[left, slot]
        if rules.mutual:
            # Each link must be found from both ends: a photo in a crowd of look-alikes
            # (plain sunglasses shot alike) has many neighbours above the threshold, and
            # one-sided links chain the whole crowd into one group.
            count = len(index)
            found = left * count + right
            keep = np.isin(right * count + left, found)
            left, right = left[keep], right[keep]
        # Index rows -> positions here (the index may hold images that are not grouped).
        here = np.array([position.get(sha, -1) for sha in index.shas], dtype=np.int64)
        a, b = here[left], here[right]
        known = (a >= 0) & (b >= 0)
        a, b = a[known], b[known]
        close = np.bitwise_count(words[a] ^ words[b]).sum(axis=1) <= rules.phash_guard
        for i, j in zip(a[close].tolist(), b[close].tolist(), strict=True):
            embedding_links += links.union(i, j)

    roots = [links.find(i) for i in range(len(shas))]
    smallest: dict[int, str] = {}
    for root, sha in zip(roots, shas, strict=True):
        if root not in smallest or sha < smallest[root]:
            smallest[root] = sha
    groups = {sha: smallest[root] for root, sha in zip(roots, shas, strict=True)}
    sizes = np.bincount(roots, minlength=1) if roots else np.zeros(1, np.int64)
    report = GroupingReport(
        images=len(shas),
        groups=int((sizes >= 2).sum()),
        largest=int(sizes.max()),
        phash_links=phash_links,
        embedding_links=embedding_links,
        seconds=round(time.perf_counter() - started, 3),
    )
    return groups, report


def dedupe_catalog(
    store: CatalogStore,
    settings: Settings,
    *,
    index: SimilarIndex | None = None,
    rules: DuplicateRules | None = None,
) -> dict[str, Any]:
    """Regroup the catalog's ok images by pHash and embedding and store the groups.

    ``index`` defaults to the saved index of the configured embedding space; without one
    (nothing embedded yet) the grouping falls back to the pHash alone and says so.
    """
    configured = rules is None
    rules = rules or DuplicateRules.from_settings(settings)
    if index is None and rules.min_cosine is not None:
        index = _catalog_index(store, settings)
    if (
        configured
        and index is not None
        and rules.min_cosine is not None
        and random_space(index.space)
    ):
        # The configured thresholds are for pretrained features; a random-init backbone
        # puts unrelated photos above them and would merge whole categories (and so
        # shrink brand training sets). Its vectors still serve exact search.
        logger.warning("%s is a random-init space: grouping by perceptual hash only", index.space)
        rules = rules.only("phash")
    hashes = store.image_hashes()  # (url, sha256, phash) per ok image
    phash_of: dict[str, str] = {}
    for _, sha, ph in hashes:
        phash_of.setdefault(sha, ph)
    by_sha, report = group_images(list(phash_of), list(phash_of.values()), rules, index)
    changed = store.set_duplicate_groups({url: by_sha[sha] for url, sha, _ in hashes})
    result = {
        **report.to_dict(),
        "urls": len(hashes),
        "changed": changed,
        "space": index.space if index is not None else None,
        "rules": asdict(rules),
    }
    logger.info("near-duplicates (pHash + embedding): %s", result)
    return result


def random_space(space: str) -> bool:
    """Whether an embedding space comes from random weights (``<backbone>-none-...``)."""
    return space.split("-")[1:2] == ["none"]


def _catalog_index(store: CatalogStore, settings: Settings) -> SimilarIndex | None:
    """The saved index of the configured space, else one built in memory, else None.

    A saved index built before the latest embedding run lacks the newest images; they
    are still grouped, by pHash, until the index is rebuilt.
    """
    from baghunter.embeddings.model import Embedder, EmbedderSpec
    from baghunter.embeddings.pipeline import vector_store

    space = Embedder(EmbedderSpec.from_settings(settings)).space
    try:
        return SimilarIndex.load(default_index_dir(settings, space))
    except FileNotFoundError:
        pass
    try:
        return SimilarIndex.build(store, vector_store(settings, space), settings=settings)
    except EmptyIndexError:
        logger.warning("no embeddings in %s yet: grouping by perceptual hash only", space)
        return None
