"""Parsers for the loosely typed values catalogs send, shared by the source normalizers.

Policy: an *absent* optional value becomes None, but a value that is present and cannot be
understood raises RecordError. Storing None for a price the feed did send would hide a
change in the feed's format; a rejected record is counted and logged by the pipeline.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from baghunter.catalog.schema import clean_text
from baghunter.catalog.sources.base import RecordError

log = logging.getLogger(__name__)


def require_id(record: dict[str, Any], key: str) -> str:
    """The record's catalog id as text; without one a listing cannot be keyed at all."""
    value = record.get(key)
    valid_type = isinstance(value, str | int) and not isinstance(value, bool)
    text = clean_text(value) if valid_type else None
    if text is None:
        raise RecordError(f"record has no {key!r}")
    return text


def parse_price(value: Any, field: str) -> float | None:
    """A price from a number or a decimal string such as ``"129.00"``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):  # bool is an int subclass; True is not a price
        raise RecordError(f"{field} is not a price: {value!r}")
    try:
        price = float(value)
    except (TypeError, ValueError):
        raise RecordError(f"{field} is not a price: {value!r}") from None
    if not math.isfinite(price) or price < 0:
        raise RecordError(f"{field} is not a price: {value!r}")
    return price


def parse_datetime(value: Any, field: str) -> datetime | None:
    """An ISO 8601 timestamp; offsets (``-05:00``, ``Z``) are kept as given."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise RecordError(f"{field} is not an ISO 8601 timestamp: {value!r}")
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise RecordError(f"{field} is not an ISO 8601 timestamp: {value!r}") from None


def name_of(value: Any) -> str | None:
    """A display name given either as plain text or as an object with a ``name``."""
    if isinstance(value, dict):
        value = value.get("name")
    return clean_text(value) if isinstance(value, str | int) else None


def remote_image_urls(urls: Iterable[str]) -> list[str]:
    """The ``http(s)`` URLs among a remote feed's image URLs, in order.

    A feed names pictures on the web; a ``file:///etc/passwd`` or a bare path in it is an
    attempt to read this machine, dropped here (logged) before it reaches the store.
    """
    kept = []
    for url in (text.strip() for text in urls):
        if url.startswith("//"):  # protocol-relative, as shops write their CDN's links
            url = f"https:{url}"
        if urlsplit(url).scheme.lower() in ("http", "https"):
            kept.append(url)
        else:
            log.warning("dropped image URL %r: a remote feed's images must be http(s)", url[:120])
    return kept
