"""FarfetchSource: paging a listing API in its several shapes, and normalizing its records."""

from __future__ import annotations

from typing import Any

import pytest

from baghunter.catalog.sources import FarfetchSource, RecordError, SourceError
from baghunter.config import Settings
from baghunter.local.sample.server import RouteServer
from tests.catalog.helpers import PagedRoute, json_reply

LISTINGS = "/api/listings"


def _items(*ids: int) -> list[dict[str, Any]]:
    return [{"id": i, "shortDescription": f"Bag {i}"} for i in ids]


@pytest.fixture
def api(server: RouteServer, http_settings: Settings, sleeps: list[float]) -> FarfetchSource:
    return FarfetchSource(
        server.url(LISTINGS), page_size=2, settings=http_settings, sleep=sleeps.append
    )


def test_stops_at_total_pages(server: RouteServer, api: FarfetchSource) -> None:
    # The API keeps answering past the end, as some do: only totalPages says where to stop.
    def page(n: int) -> dict[str, Any]:
        return {"products": _items(2 * n - 1, 2 * n), "page": n, "pageSize": 2, "totalPages": 2}

    route = PagedRoute({1: json_reply(page(1))}, beyond=json_reply(page(2)))
    server.routes[LISTINGS] = route

    pages = list(api.pages())

    assert [[r["id"] for r in p.records] for p in pages] == [[1, 2], [3, 4]]
    assert route.requested_pages == [1, 2]
    assert route.queries[0] == {"page": "1", "pageSize": "2"}


@pytest.mark.parametrize(
    "shape",
    [
        lambda items: {"items": items},
        lambda items: {"listingItems": {"items": items}, "listingPagination": {}},
        lambda items: {"products": items},
    ],
    ids=["items", "listingItems.items", "products-without-totals"],
)
def test_alternative_shapes_stop_on_an_empty_page(
    server: RouteServer, api: FarfetchSource, shape: Any
) -> None:
    route = PagedRoute(
        {1: json_reply(shape(_items(1, 2))), 2: json_reply(shape(_items(3)))},
        beyond=json_reply(shape([])),
    )
    server.routes[LISTINGS] = route

    ids = [r["id"] for p in api.pages() for r in p.records]

    assert ids == [1, 2, 3]
    assert route.requested_pages == [1, 2, 3]


def test_max_pages(server: RouteServer, api: FarfetchSource) -> None:
    route = PagedRoute({}, beyond=json_reply({"products": _items(1), "totalPages": 9}))
    server.routes[LISTINGS] = route

    assert len(list(api.pages(max_pages=3))) == 3
    assert route.requested_pages == [1, 2, 3]


@pytest.mark.parametrize(
    "body",
    [[{"id": 1}], {"results": [{"id": 1}]}, {"products": [1, 2]}, {"products": "none"}],
    ids=["bare-list", "unknown-key", "not-objects", "not-a-list"],
)
def test_wrong_shaped_page_is_a_source_error(
    server: RouteServer, api: FarfetchSource, body: Any
) -> None:
    server.routes[LISTINGS] = json_reply(body)

    with pytest.raises(SourceError, match=r"page 1 of .*listingItems\.items"):
        next(api.pages())


def test_default_name_is_the_api_host(http_settings: Settings) -> None:
    source = FarfetchSource("https://api.example.com/v1/listings", settings=http_settings)
    assert source.name == "farfetch:api.example.com"


# --- normalization -------------------------------------------------------------------------
@pytest.fixture
def offline_api(http_settings: Settings) -> FarfetchSource:
    return FarfetchSource("https://api.example.com/v1/listings", settings=http_settings)


def test_normalizes_a_full_record(offline_api: FarfetchSource) -> None:
    record = {
        "id": 18239911,
        "brand": {"id": 9, "name": "Bottega Veneta"},
        "shortDescription": "Andiamo  leather tote",
        "categories": [{"id": 1, "name": "Women"}, {"name": "Bags"}, {"name": "Tote Bags"}],
        "images": [
            {"url": "https://cdn.example.com/1.jpg"},
            {"url": "https://cdn.example.com/2.jpg"},
        ],
        "priceInfo": {"finalPrice": 4200, "currencyCode": "EUR", "isOnSale": False},
        "gender": "Women",
        "colour": "Black",
        "url": "/shopping/women/bottega-veneta-andiamo-item-18239911.aspx",
        "stock": 3,
        "merchantId": 12,
    }

    product = offline_api.normalize(record)

    assert product.source == "farfetch:api.example.com"
    assert product.source_id == "18239911"
    assert product.brand == "Bottega Veneta"
    assert product.title == "Andiamo leather tote"
    assert product.category == "Tote Bags"
    assert product.attributes == {
        "gender": "Women",
        "colour": "Black",
        "categories": "Women > Bags > Tote Bags",
    }
    assert (product.price, product.currency) == (4200.0, "EUR")
    assert product.image_urls == ["https://cdn.example.com/1.jpg", "https://cdn.example.com/2.jpg"]
    assert product.product_url == (
        "https://api.example.com/shopping/women/bottega-veneta-andiamo-item-18239911.aspx"
    )
    assert product.raw == record  # stock and merchantId are kept, but only here


@pytest.mark.parametrize(
    ("price_fields", "expected"),
    [
        ({"price": 310, "currency": "GBP"}, (310.0, "GBP")),
        ({"price": "310.50", "currencyCode": "USD"}, (310.5, "USD")),
        ({"price": {"value": 99.9, "currency": "EUR"}}, (99.9, "EUR")),
        ({"price": {"amount": "1200", "currencyCode": "JPY"}}, (1200.0, "JPY")),
        ({"priceInfo": {"finalPrice": 75, "currencyCode": "CHF"}}, (75.0, "CHF")),
        ({"price": 12}, (12.0, None)),
        ({}, (None, None)),
    ],
)
def test_price_spellings(
    offline_api: FarfetchSource, price_fields: dict[str, Any], expected: tuple[Any, Any]
) -> None:
    product = offline_api.normalize({"id": 1, **price_fields})
    assert (product.price, product.currency) == expected


def test_plain_string_spellings(offline_api: FarfetchSource) -> None:
    product = offline_api.normalize(
        {
            "id": "A1",
            "brand": "Kiara",
            "categories": ["Women", "Clutches"],
            "images": ["https://cdn.example.com/x.jpg", "", None],
            "color": "Gold",
            "url": "https://www.example.com/item/A1",
        }
    )
    assert product.brand == "Kiara"
    assert product.category == "Clutches"
    assert product.attributes == {"colour": "Gold", "categories": "Women > Clutches"}
    assert product.image_urls == ["https://cdn.example.com/x.jpg"]
    assert product.product_url == "https://www.example.com/item/A1"


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"shortDescription": "no id"}, "no 'id'"),
        ({"id": 1, "categories": "Bags"}, "categories"),
        ({"id": 1, "price": {"value": "n/a", "currency": "EUR"}}, "not a price"),
        ({"id": 1, "price": -5}, "not a price"),
    ],
)
def test_malformed_record_is_a_record_error(
    offline_api: FarfetchSource, record: dict[str, Any], reason: str
) -> None:
    with pytest.raises(RecordError, match=reason):
        offline_api.normalize(record)
