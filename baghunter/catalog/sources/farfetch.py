"""Farfetch-style marketplace listing APIs: ``?page=N&pageSize=M`` returning product lists.

Marketplace APIs of this family agree on the idea but not on the spelling: the list may be
under ``products``, ``items`` or ``listingItems.items``; a brand may be an object or a
string; a price may be a number, an object, or nested in ``priceInfo``. The normalizer
accepts each known spelling, and anything else in a record is kept only in ``raw``.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urljoin

import httpx

from baghunter.catalog.schema import Product, clean_text
from baghunter.catalog.sources.base import RecordError
from baghunter.catalog.sources.fields import name_of, parse_price, remote_image_urls, require_id
from baghunter.catalog.sources.http import HttpSource, Sleep
from baghunter.config import Settings

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 100


class FarfetchSource(HttpSource):
    """A listing API read page by page from ``url``.

    Paging stops at ``totalPages`` when the API reports it, otherwise at the first empty
    page (reported totals win because some APIs repeat the last page past the end).
    """

    kind = "farfetch"
    shape = (
        "an object with a list of product objects under 'products', 'items' or 'listingItems.items'"
    )

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        settings: Settings | None = None,
        client: httpx.Client | None = None,
        sleep: Sleep = time.sleep,
    ) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be positive, not {page_size}")
        super().__init__(
            url.strip(),
            name=name,
            page_size=page_size,
            settings=settings,
            client=client,
            sleep=sleep,
        )

    def page_params(self, number: int) -> dict[str, str | int]:
        return {"page": number, "pageSize": self.page_size}

    def page_records(self, body: Any) -> list[dict[str, Any]] | None:
        return _listing(body)

    def last_page(self, body: Any, number: int) -> bool:
        total = body.get("totalPages")
        return isinstance(total, int) and not isinstance(total, bool) and number >= total

    def normalize(self, record: dict[str, Any]) -> Product:
        source_id = require_id(record, "id")
        price, currency = _price(record)
        categories = _categories(record.get("categories"))
        optional = {
            "gender": name_of(record.get("gender")),
            "colour": name_of(record.get("colour", record.get("color"))),
            "categories": " > ".join(categories),
        }
        attributes = {key: value for key, value in optional.items() if value}
        url = clean_text(record.get("url"))
        return Product(
            source=self.name,
            source_id=source_id,
            brand=name_of(record.get("brand")),
            title=record.get("shortDescription"),
            category=categories[-1] if categories else None,  # the most specific one
            attributes=attributes,
            price=price,
            currency=currency,
            image_urls=_image_urls(record.get("images")),
            # Listing APIs often give site-relative paths; the feed's host is the only one
            # we know, and an absolute URL is what the store and the UI can use.
            product_url=urljoin(self.url, url) if url else None,
            raw=record,
        )


def _listing(body: Any) -> list[dict[str, Any]] | None:
    """The page's product records, wherever this API puts them; None if nowhere."""
    if not isinstance(body, dict):
        return None
    nested = body.get("listingItems")
    for candidate in (
        body.get("products"),
        body.get("items"),
        nested.get("items") if isinstance(nested, dict) else None,
    ):
        if isinstance(candidate, list):
            return candidate if all(isinstance(item, dict) for item in candidate) else None
    return None


def _categories(value: Any) -> list[str]:
    """Category names from broadest to most specific (strings or ``{"name": ...}``)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordError(f"categories is not a list: {value!r}")
    return [text for text in (name_of(item) for item in value) if text]


def _price(record: dict[str, Any]) -> tuple[float | None, str | None]:
    """``(price, currency)`` from any of the three price spellings."""
    price = record.get("price")
    if isinstance(price, dict):
        amount = price.get("value", price.get("amount"))
        currency = price.get("currency", price.get("currencyCode"))
        return parse_price(amount, "price.value"), clean_text(currency)
    if price is not None:
        currency = record.get("currency", record.get("currencyCode"))
        return parse_price(price, "price"), clean_text(currency)
    info = record.get("priceInfo")
    if isinstance(info, dict):
        final = parse_price(info.get("finalPrice"), "priceInfo.finalPrice")
        return final, clean_text(info.get("currencyCode"))
    return None, None


def _image_urls(images: Any) -> list[str]:
    """Image URLs in the order sent: ``[{"url": ...}]`` or plain strings."""
    if not isinstance(images, list):
        return []
    urls = (image.get("url") if isinstance(image, dict) else image for image in images)
    return remote_image_urls(url for url in urls if isinstance(url, str) and url.strip())
