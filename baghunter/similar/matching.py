"""Product matching scored the Shopee way: predicted groups against labelled ones.

A Shopee-shaped CSV (``posting_id, image, image_phash, title, label_group``) says which
postings show the same product. For each posting, the true set is every posting of its
``label_group`` and the predicted set every posting whose image landed in the same
near-duplicate group - both including the posting itself. The score is the F1 of the two
sets, averaged over postings (the metric of Kaggle's "Shopee - Price Match Guarantee").
Putting every posting alone scores ``mean(2 / (1 + group size))``, the floor any grouping
should beat.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
from PIL import Image, UnidentifiedImageError

from baghunter.catalog.sources.base import RecordError
from baghunter.catalog.sources.csvfile import SHOPEE, CsvSource
from baghunter.config import Settings
from baghunter.images.phash import phash
from baghunter.similar.duplicates import MODES, DuplicateRules, group_images
from baghunter.similar.index import SimilarIndex

logger = logging.getLogger(__name__)


def mean_f1(truth: Sequence[Hashable], predicted: Sequence[Hashable]) -> float:
    """Mean over postings of the F1 between its true and predicted groups (self included).

    For a posting with true label ``t`` and predicted group ``p``, the overlap of the two
    sets is the number of postings labelled ``(t, p)``, so the whole score is counting.
    """
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} true labels but {len(predicted)} predictions")
    if not truth:
        raise ValueError("no postings to score")
    true_size = Counter(truth)
    predicted_size = Counter(predicted)
    both = Counter(zip(truth, predicted, strict=True))
    scores = [
        2 * both[(t, p)] / (true_size[t] + predicted_size[p])
        for t, p in zip(truth, predicted, strict=True)
    ]
    return float(np.mean(scores))


@dataclass(frozen=True)
class Posting:
    posting_id: str
    label_group: str
    path: Path


def read_postings(csv_path: Path, images_dir: Path) -> tuple[list[Posting], list[str]]:
    """Postings of a Shopee-shaped CSV with their image files, and problems found.

    Rows without a label group or image are reported, not scored.
    """
    source = CsvSource(csv_path, images_dir)
    postings: list[Posting] = []
    problems: list[str] = []
    for page in source.pages():
        for record in page.records:
            if SHOPEE.id_column not in record:
                raise ValueError(
                    f"{csv_path} is not a Shopee-shaped CSV: it has no "
                    f"{', '.join(SHOPEE.columns)} columns"
                )
            try:
                product = source.normalize(record)
            except RecordError as exc:
                problems.append(str(exc))
                continue
            label = product.attributes.get("label_group")
            if label is None:
                problems.append(f"posting {product.source_id} has no label_group")
                continue
            path = Path(unquote(urlparse(product.image_urls[0]).path))
            postings.append(Posting(product.source_id, label, path))
    return postings, problems


@dataclass
class _Image:
    sha256: str
    phash: str
    path: Path


def _read_images(postings: Sequence[Posting]) -> tuple[dict[Path, _Image], list[str]]:
    """Each distinct image file once: its sha256 and pHash, or why it cannot be read."""
    images: dict[Path, _Image] = {}
    problems: list[str] = []
    for path in dict.fromkeys(posting.path for posting in postings):
        try:
            data = path.read_bytes()
            with Image.open(path) as image:
                image.load()
                hashed = phash(image)
        except (OSError, UnidentifiedImageError) as exc:
            problems.append(f"{path.name}: {exc}")
            continue
        images[path] = _Image(hashlib.sha256(data).hexdigest(), hashed, path)
    return images, problems


def evaluate_groups(
    csv_path: Path,
    images_dir: Path,
    settings: Settings,
    *,
    embedder: Any = None,
    rules: DuplicateRules | None = None,
) -> dict[str, Any]:
    """Group a Shopee-shaped CSV's postings by pHash, embedding and both; score each.

    Embeddings come from the shared vector store (computed once per image, keyed by
    sha256), so a second evaluation of the same images embeds nothing. Postings whose
    image is missing or unreadable are left out and counted.
    """
    from baghunter.embeddings.model import Embedder, EmbedderSpec
    from baghunter.embeddings.pipeline import embed_missing, vector_store

    started = time.perf_counter()
    rules = rules or DuplicateRules.from_settings(settings)
    postings, problems = read_postings(csv_path, images_dir)
    images, unreadable = _read_images(postings)
    scored = [posting for posting in postings if posting.path in images]
    if not scored:
        raise ValueError(f"no posting of {csv_path} has a readable image in {images_dir}")

    by_sha: dict[str, _Image] = {}
    for image in images.values():
        by_sha.setdefault(image.sha256, image)
    shas = list(by_sha)
    embedder = embedder or Embedder(EmbedderSpec.from_settings(settings))
    embed_missing(embedder, settings, {sha: str(by_sha[sha].path) for sha in shas})
    _, matrix = vector_store(settings, embedder.space).load(shas)
    index = SimilarIndex.from_arrays(
        embedder.space,
        shas,
        matrix,
        engine="auto",
        exact_max=settings.similar_exact_max,
        center=settings.similar_center,
    )

    truth = [posting.label_group for posting in scored]
    phashes = [by_sha[sha].phash for sha in shas]
    modes: dict[str, Any] = {}
    for mode in MODES:
        groups, report = group_images(shas, phashes, rules.only(mode), index)
        predicted = [groups[images[posting.path].sha256] for posting in scored]
        modes[mode] = {"f1": round(mean_f1(truth, predicted), 4), **report.to_dict()}
    singletons = mean_f1(truth, [posting.posting_id for posting in scored])
    return {
        "postings": len(postings),
        "scored": len(scored),
        "skipped": len(postings) - len(scored) + len(problems),
        "problems": (problems + unreadable)[:20],
        "label_groups": len(set(truth)),
        "images": len(shas),
        "space": embedder.space,
        "singletons_f1": round(singletons, 4),
        "modes": modes,
        "rules": asdict(rules),
        "seconds": round(time.perf_counter() - started, 3),
    }
