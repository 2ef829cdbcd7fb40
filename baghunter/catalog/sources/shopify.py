"""Shopify storefronts: the public ``/products.json`` feed every shop exposes.

The feed is paged with ``?limit=&page=`` (at most 250 a page) and ends with an empty
``products`` list. It carries no currency (that is a shop setting), so the caller says it.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from baghunter.catalog.schema import Product, clean_text
from baghunter.catalog.sources.base import RecordError
from baghunter.catalog.sources.fields import (
    parse_datetime,
    parse_price,
    remote_image_urls,
    require_id,
)
from baghunter.catalog.sources.http import HttpSource, Sleep
from baghunter.config import Settings

log = logging.getLogger(__name__)

FEED_PATH = "/products.json"
MAX_PAGE_SIZE = 250  # Shopify silently caps larger limits


class ShopifySource(HttpSource):
    """A shop's catalog, read from ``{base_url}/products.json``.

    ``base_url`` may be the shop (``https://shop.example.com``), a collection
    (``.../collections/bags``) or the feed itself (``.../products.json``).
    """

    kind = "shopify"
    shape = "an object with a 'products' list"

    def __init__(
        self,
        base_url: str,
        *,
        name: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        currency: str | None = None,
        settings: Settings | None = None,
        client: httpx.Client | None = None,
        sleep: Sleep = time.sleep,
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, not {page_size}")
        base = base_url.strip().rstrip("/")
        base = base.removesuffix(FEED_PATH).rstrip("/")
        if not urlsplit(base).netloc:
            raise ValueError(f"not an http(s) shop URL: {base_url!r}")
        self.base_url = base
        self.feed_url = base + FEED_PATH
        self.currency = currency
        super().__init__(
            self.feed_url,
            name=name,
            page_size=page_size,
            settings=settings,
            client=client,
            sleep=sleep,
        )

    def page_params(self, number: int) -> dict[str, str | int]:
        return {"limit": self.page_size, "page": number}

    def page_records(self, body: Any) -> list[dict[str, Any]] | None:
        products = body.get("products") if isinstance(body, dict) else None
        if not isinstance(products, list) or not all(isinstance(p, dict) for p in products):
            return None
        return products

    def normalize(self, record: dict[str, Any]) -> Product:
        source_id = require_id(record, "id")
        handle = clean_text(record.get("handle"))
        return Product(
            source=self.name,
            source_id=source_id,
            brand=record.get("vendor"),
            title=record.get("title"),
            category=record.get("product_type"),
            attributes=_tag_attributes(record.get("tags")),
            price=_lowest_variant_price(record.get("variants")),
            currency=self.currency,
            image_urls=_image_urls(record.get("images")),
            product_url=f"{self.base_url}/products/{handle}" if handle else None,
            # "Listed" means visible in the store: published_at, which drafts lack.
            listed_at=parse_datetime(record.get("published_at"), "published_at")
            or parse_datetime(record.get("created_at"), "created_at"),
            updated_at=parse_datetime(record.get("updated_at"), "updated_at"),
            raw=record,
        )


def _tag_attributes(tags: Any) -> dict[str, str]:
    """Tags as one ``"a, b"`` attribute; shops send either a list or one comma string."""
    if tags is None:
        return {}
    if isinstance(tags, str):
        tags = tags.split(",")
    if not isinstance(tags, list):
        raise RecordError(f"tags is neither a list nor a string: {tags!r}")
    cleaned = [text for text in (clean_text(tag) for tag in tags) if text]
    return {"tags": ", ".join(cleaned)} if cleaned else {}


def _lowest_variant_price(variants: Any) -> float | None:
    """The "from" price a shopper sees: the cheapest variant."""
    if not isinstance(variants, list):
        return None
    prices = [
        parse_price(variant.get("price"), "variants[].price")
        for variant in variants
        if isinstance(variant, dict)
    ]
    known = [price for price in prices if price is not None]
    return min(known) if known else None


def _image_urls(images: Any) -> list[str]:
    """Image URLs in the shop's display order (``position``, 1 = main image)."""
    if not isinstance(images, list):
        return []
    usable = [image for image in images if isinstance(image, dict) and image.get("src")]
    # Images without a position go last, in the order sent (sorted() is stable).
    usable.sort(key=lambda image: _position(image.get("position")))
    return remote_image_urls(str(image["src"]) for image in usable)


def _position(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return float("inf")
