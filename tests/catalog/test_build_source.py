"""build_source: one entry point from (kind, location, options) to a source."""

from __future__ import annotations

from pathlib import Path

import pytest

from baghunter.catalog.sources import (
    CsvSource,
    FarfetchSource,
    FolderSource,
    ShopifySource,
    Source,
    build_source,
)
from baghunter.config import Settings


def test_http_kinds_take_settings_and_options(http_settings: Settings) -> None:
    shop = build_source(
        "shopify", "https://shop.example.com", settings=http_settings, currency="INR", page_size=50
    )
    api = build_source("farfetch", "https://api.example.com/listings", settings=http_settings)

    assert isinstance(shop, ShopifySource) and isinstance(shop, Source)
    assert (shop.currency, shop.page_size) == ("INR", 50)
    assert isinstance(api, FarfetchSource)
    assert api.name == "farfetch:api.example.com"


def test_file_kinds(tmp_path: Path) -> None:
    folder = build_source("folder", str(tmp_path), name="photos")
    table = build_source("csv", str(tmp_path / "styles.csv"), images_dir=str(tmp_path / "img"))

    assert isinstance(folder, FolderSource) and folder.name == "photos"
    assert isinstance(table, CsvSource) and table.name == "csv:styles"
    assert table.images_dir == tmp_path / "img"


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="shopify, farfetch, folder, csv"):
        build_source("ebay", "https://ebay.example.com")
