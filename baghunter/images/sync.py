"""The image stages of ingestion: fetch what the store still lacks, then group near-duplicates.

Both read their work from the store, so they are idempotent and need no input but the
store: an image already fetched is never requested again, a transient failure is retried
on a later run (up to ``download_max_attempts``), and duplicate groups are recomputed from
the stored perceptual hashes of the whole catalog.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from baghunter.catalog.schema import ImageResult, ImageStatus
from baghunter.config import Settings
from baghunter.images.cas import content_store
from baghunter.images.download import ImageDownloader
from baghunter.images.phash import near_duplicate_groups
from baghunter.store.base import CatalogStore

log = logging.getLogger(__name__)

# Results are written in batches: one bulk write per batch instead of one per image, and a
# crash loses at most one batch of (re-fetchable) work.
RECORD_BATCH = 200


@dataclass
class DownloadReport:
    attempted: int = 0
    ok: int = 0
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # failure reason -> count


@dataclass
class DedupeReport:
    images: int
    groups: int  # groups of two or more near-identical images
    changed: int  # images whose group changed in this run


class LocalFault(RuntimeError):
    """This machine cannot store images (disk full, read-only): the run stops and fails."""


def _reason_kind(reason: str | None) -> str:
    # "http 404 (https://...)" -> "http 404": group by kind, not by URL
    return (reason or "unknown").split(" (")[0].split(":")[0]


def download_pending(
    store: CatalogStore,
    settings: Settings,
    *,
    limit: int | None = None,
    on_result: Callable[[ImageResult], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> DownloadReport:
    """Fetch every image the store marks pending (or retryable), record each outcome."""
    tasks = store.images_to_fetch(settings.download_max_attempts, limit)
    if on_start:
        on_start(len(tasks))
    report = DownloadReport(attempted=len(tasks))
    if not tasks:
        return report
    downloader = ImageDownloader(content_store(settings.images_root), settings)
    reasons: Counter[str] = Counter()
    pending: list[ImageResult] = []
    fault: ImageResult | None = None
    for result in downloader.fetch_many(tasks):
        if result.local_fault:
            fault = result
            break  # every later image would hit the same disk; stop fetching
        pending.append(result)
        if result.status == ImageStatus.OK:
            report.ok += 1
        else:
            report.failed += 1
            reasons[_reason_kind(result.reason)] += 1
        if on_result:
            on_result(result)
        if len(pending) >= RECORD_BATCH:
            store.record_image_results(pending)
            pending = []
    if pending:
        store.record_image_results(pending)
    if fault is not None:
        raise LocalFault(
            f"images could not be stored: {fault.reason}. {report.ok + report.failed} "
            f"outcomes were recorded; the other {report.attempted - report.ok - report.failed} "
            "images keep all their attempts. Fix the disk and run again."
        )
    report.reasons = dict(reasons.most_common())
    log.info(
        "images: %d attempted, %d ok, %d failed %s",
        report.attempted,
        report.ok,
        report.failed,
        report.reasons or "",
    )
    return report


def find_duplicates(store: CatalogStore, settings: Settings) -> DedupeReport:
    """Group identical and near-identical images across the whole catalog."""
    hashes = store.image_hashes()
    groups = near_duplicate_groups(hashes, settings.phash_max_distance)
    changed = store.set_duplicate_groups(groups)
    report = DedupeReport(images=len(hashes), groups=store.duplicate_group_count(), changed=changed)
    log.info(
        "near-duplicates: %d groups among %d images (%d regrouped)",
        report.groups,
        report.images,
        report.changed,
    )
    return report
