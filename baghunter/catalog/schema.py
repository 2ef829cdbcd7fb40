"""The one product schema every catalog source normalizes to, and the image records.

A product is identified by its natural key ``(source, source_id)``: ``source`` names the
catalog (``shopify:shop.example.com``, ``csv:styles``), ``source_id`` is the id the catalog
itself uses. Stores upsert on that key, so re-reading a catalog never duplicates a listing.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Fields that describe the listing itself; the content hash covers exactly these, so a
# listing re-read unchanged is recognised and not rewritten (raw payloads often carry
# volatile noise such as stock counts, which must not count as a change).
HASHED_FIELDS = (
    "brand",
    "title",
    "category",
    "attributes",
    "price",
    "currency",
    "image_urls",
    "product_url",
    "listed_at",
    "updated_at",
)


def clean_text(value: Any) -> str | None:
    """Collapse whitespace; empty strings become None."""
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


class Product(BaseModel):
    """A normalized catalog listing."""

    model_config = ConfigDict(frozen=True)

    source: str = Field(min_length=1)
    source_id: str = Field(min_length=1)
    brand: str | None = None
    title: str | None = None
    category: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    price: float | None = None
    currency: str | None = None
    image_urls: list[str] = Field(default_factory=list)
    product_url: str | None = None
    listed_at: datetime | None = None
    updated_at: datetime | None = None
    raw: dict[str, Any] = Field(default_factory=dict)

    @field_validator("source_id", mode="before")
    @classmethod
    def _id_to_str(cls, value: Any) -> Any:
        return str(value).strip() if isinstance(value, int | str) else value

    @field_validator("brand", "title", "category", "currency", mode="before")
    @classmethod
    def _clean(cls, value: Any) -> Any:
        return clean_text(value)

    @field_validator("attributes", mode="before")
    @classmethod
    def _clean_attributes(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        cleaned = {str(k): clean_text(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v is not None}

    @field_validator("image_urls", mode="before")
    @classmethod
    def _dedupe_urls(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        seen: dict[str, None] = {}
        for url in value:
            if isinstance(url, str) and url.strip():
                seen.setdefault(url.strip(), None)
        return list(seen)

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.source_id)

    def content_hash(self) -> str:
        """sha256 over the listing's meaningful fields, stable across runs and engines."""
        payload = self.model_dump(mode="json", include=set(HASHED_FIELDS))
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def to_document(self) -> dict[str, Any]:
        """The stored form (without the store's own bookkeeping fields)."""
        doc = self.model_dump(mode="python")
        doc["content_hash"] = self.content_hash()
        return doc


class ImageStatus(StrEnum):
    PENDING = "pending"
    OK = "ok"
    FAILED = "failed"


class ImageResult(BaseModel):
    """The outcome of fetching one image URL, as recorded in the store."""

    url: str
    status: ImageStatus
    reason: str | None = None  # why it failed, for operators ("http 404", "not an image: ...")
    retryable: bool = False  # transient failures (timeouts, 5xx, 429) may be retried next run
    sha256: str | None = None
    path: str | None = None  # relative to the image root of the content-addressed store
    content_type: str | None = None
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    phash: str | None = None  # 64-bit perceptual hash, 16 hex digits
    fetched_at: datetime | None = None
    # A fault of this machine (disk full, read-only), not of the image: never recorded, so
    # it costs the image none of its attempts; the run stops and fails instead.
    local_fault: bool = False


class ImageTask(BaseModel):
    """An image the store says still needs fetching."""

    url: str
    attempts: int = 0


class UpsertResult(BaseModel):
    """Counts from one bulk upsert."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def written(self) -> int:
        return self.inserted + self.updated

    def __add__(self, other: UpsertResult) -> UpsertResult:
        return UpsertResult(
            inserted=self.inserted + other.inserted,
            updated=self.updated + other.updated,
            unchanged=self.unchanged + other.unchanged,
        )


class CatalogImage(BaseModel):
    """One (product, ok image) pair with what dataset curation needs."""

    source: str
    source_id: str
    brand: str | None
    category: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    url: str
    sha256: str
    path: str
    dup_group: str | None = None
