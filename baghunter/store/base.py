"""The catalog store contract: what every engine (MongoDB, embedded SQLite) must do.

The contract is stated in catalog terms rather than as a pymongo look-alike, so each engine
uses its own strengths (``bulk_write`` and aggregation pipelines in MongoDB, one transaction
and ``GROUP BY`` in SQLite) and one test suite (``tests/store/test_contract.py``) holds
every engine to the same behaviour.

Collections (MongoDB names; the embedded engine uses tables of the same names):

``products``  one document per listing, unique on ``(source, source_id)``; the fields of
              :class:`~baghunter.catalog.schema.Product` plus ``content_hash``,
              ``first_seen`` and ``last_seen``.
``images``    one document per image URL, unique on ``url``: download status, failure
              reason, sha256, path in the content-addressed store, size, perceptual hash,
              near-duplicate group.
``audits``    the current findings of the listing audit, one per ``(source, source_id,
              field)``: what the listing claims, what the photo says, how sure the model
              is, which model and run said so. Re-runs rewrite them; a listing found clean
              loses its old findings, so the collection holds only what is wrong now.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from baghunter.catalog.schema import CatalogImage, ImageResult, ImageTask, Product, UpsertResult

# ``(source, source_id, field)``: what one audit finding is about.
AuditKey = tuple[str, str, str]


class AuditRecord(BaseModel):
    """One listing field whose photo disagrees with what the seller wrote."""

    source: str
    source_id: str
    field: str  # "brand" or an attribute name as in Product.attributes ("baseColour")
    claimed: str  # what the listing says
    predicted: str  # what the model sees in the photo
    confidence: float = Field(ge=0, le=1)  # the model's probability of ``predicted``
    claimed_probability: float = Field(ge=0, le=1)  # ...and of ``claimed``
    model_name: str
    model_version: int | None = None
    space: str | None = None  # the embedding space scored, None for a model run on pixels
    image_sha256: str

    @property
    def key(self) -> AuditKey:
        return (self.source, self.source_id, self.field)


@dataclass(frozen=True)
class AuditWrite:
    """What one ``replace_audit_findings`` call changed."""

    written: int  # findings inserted or rewritten
    removed: int  # old findings of audited fields that are clean now


def check_audit_scope(
    findings: Iterable[AuditRecord], audited: Iterable[AuditKey]
) -> tuple[dict[AuditKey, AuditRecord], set[AuditKey]]:
    """Findings by key (the last of a repeated key wins) and the audited scope as a set.

    Shared by the engines so both refuse the same input: a finding outside the audited
    scope would say the run scored a field it did not declare, and the run's clean-up of
    that field would then be wrong, so it is an error before anything is written.
    """
    latest = {finding.key: finding for finding in findings}
    scope = set(audited)
    outside = [key for key in latest if key not in scope]
    if outside:
        raise ValueError(
            f"{len(outside)} audit findings are outside the audited scope (first: {outside[0]})"
        )
    return latest, scope


class StoreUnavailable(RuntimeError):
    """The database cannot be reached; raised with the address and the driver's reason."""


@runtime_checkable
class CatalogStore(Protocol):
    """A catalog database. Engines are context managers; ``close()`` releases connections."""

    engine: str  # "mongo" or "embedded", for logs and stats

    def ensure_schema(self) -> None:
        """Create collections/tables and indexes (unique keys included). Idempotent."""

    # --- products ----------------------------------------------------------------------
    def upsert_products(self, products: Sequence[Product], seen_at: datetime) -> UpsertResult:
        """Insert new listings, rewrite changed ones, leave unchanged ones alone.

        Keyed on ``(source, source_id)``. A listing whose ``content_hash`` is unchanged gets
        only ``last_seen`` moved forward (counted as ``unchanged``); a changed one is
        replaced but keeps its ``first_seen``. Duplicate keys within one call: the last
        occurrence wins. Every image URL of the products gets an ``images`` record with
        status ``pending`` unless it already has one. One round trip per batch (bulk write).
        """

    def content_hashes(self, source: str, source_ids: Iterable[str]) -> dict[str, str]:
        """``source_id -> content_hash`` for the listings of ``source`` that exist."""

    def get_product(self, source: str, source_id: str) -> dict[str, Any] | None:
        """The stored document (without engine-internal ids), or None."""

    def iter_products(self, source: str | None = None) -> Iterator[dict[str, Any]]:
        """All stored products (of one source, if given), in ``(source, source_id)`` order."""

    def count_products(self) -> int: ...

    def brand_counts(self) -> dict[str, int]:
        """Products per brand (aggregation in the engine), largest first; no-brand excluded."""

    # --- images ------------------------------------------------------------------------
    def images_to_fetch(self, max_attempts: int, limit: int | None = None) -> list[ImageTask]:
        """Pending images, plus failed ones marked retryable with fewer than ``max_attempts``."""

    def record_image_results(self, results: Sequence[ImageResult]) -> None:
        """Store download outcomes (bulk). Each call on a URL increments its ``attempts``."""

    def get_image(self, url: str) -> dict[str, Any] | None: ...

    def image_status_counts(self) -> dict[str, int]:
        """``{"pending": n, "ok": n, "failed": n}`` (all three keys always present)."""

    def image_hashes(self) -> list[tuple[str, str, str]]:
        """``(url, sha256, phash)`` for every ok image, in URL order."""

    def set_duplicate_groups(self, groups: dict[str, str]) -> int:
        """Set ``dup_group`` for ok images (``url -> group id``); returns images changed.

        Images not in the mapping get ``dup_group = None``."""

    def duplicate_group_count(self) -> int:
        """Number of distinct ``dup_group`` values shared by two or more images."""

    def iter_catalog_images(self) -> Iterator[CatalogImage]:
        """Every (product, ok image) pair, joined in the engine, ordered by source key."""

    # --- audits ------------------------------------------------------------------------
    def replace_audit_findings(
        self,
        findings: Sequence[AuditRecord],
        audited: Iterable[AuditKey],
        run_id: str,
        audited_at: datetime,
    ) -> AuditWrite:
        """Make the stored findings of the ``audited`` fields exactly ``findings``.

        Each finding is upserted on its key, stamped with ``run_id`` and ``audited_at``
        (``first_flagged_at`` is kept from the first run that flagged it). Stored findings
        whose key is in ``audited`` but not among ``findings`` are deleted: the listing was
        audited and that field is clean now. Findings outside ``audited`` (fields or
        listings this run could not score) are left alone. A finding whose key is not in
        ``audited`` is a ValueError, raised before anything is written.
        """

    def iter_audit_findings(
        self, field: str | None = None, limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Stored findings (of one field, if given), most confident first.

        Ties are ordered by ``(source, source_id, field)``; ``limit`` caps the count.
        """

    def audit_summary(self) -> dict[str, dict[str, Any]]:
        """Per field (aggregation in the engine), most findings first::

            {"baseColour": {"findings": 12, "models": ["product-attributes/3"],
                            "audited_at": datetime}}

        ``models`` are the ``name/version`` of the models behind the findings, sorted;
        ``audited_at`` the latest stamp among them.
        """

    # --- lifecycle ---------------------------------------------------------------------
    def close(self) -> None: ...

    def __enter__(self) -> CatalogStore: ...

    def __exit__(self, *exc: object) -> None: ...
