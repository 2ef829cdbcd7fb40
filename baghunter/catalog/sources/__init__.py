"""Catalog sources: where listings come from, each read as lazy pages of raw records.

``build_source`` is the single way the pipeline (CLI, Airflow tasks) turns a kind and a
location into a source, so a new kind is added here and nowhere else.
"""

from __future__ import annotations

from typing import Any

from baghunter.catalog.sources.base import Page, RecordError, Source, SourceError
from baghunter.catalog.sources.brands import BrandExtractor
from baghunter.catalog.sources.csvfile import CsvSource
from baghunter.catalog.sources.farfetch import FarfetchSource
from baghunter.catalog.sources.folder import FolderSource
from baghunter.catalog.sources.shopify import ShopifySource
from baghunter.config import Settings, get_settings

__all__ = [
    "KINDS",
    "BrandExtractor",
    "CsvSource",
    "FarfetchSource",
    "FolderSource",
    "Page",
    "RecordError",
    "ShopifySource",
    "Source",
    "SourceError",
    "build_source",
]

KINDS = ("shopify", "farfetch", "folder", "csv")


def build_source(
    kind: str, location: str, *, settings: Settings | None = None, **options: Any
) -> Source:
    """The source of ``kind`` reading ``location`` (a URL, a folder or a CSV path).

    ``options`` go to the source's constructor: ``name`` and ``page_size`` for every kind,
    ``currency`` for shopify, ``images_dir`` (required) for csv. Only the HTTP kinds use
    ``settings`` (timeouts, retries, User-Agent); it defaults to the process settings.
    """
    if kind == "shopify":
        return ShopifySource(location, settings=settings or get_settings(), **options)
    if kind == "farfetch":
        return FarfetchSource(location, settings=settings or get_settings(), **options)
    if kind == "folder":
        return FolderSource(location, **options)
    if kind == "csv":
        return CsvSource(location, **options)
    raise ValueError(f"unknown source kind {kind!r}; known kinds: {', '.join(KINDS)}")
