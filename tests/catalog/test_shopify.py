"""ShopifySource: paging /products.json over real sockets, and normalizing its products."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from baghunter.catalog.sources import RecordError, ShopifySource, SourceError
from baghunter.config import Settings
from baghunter.local.sample.server import RouteServer
from tests.catalog.helpers import PagedRoute, json_reply

FEED = "/products.json"


def _products(*ids: int) -> dict[str, Any]:
    return {"products": [{"id": i, "title": f"Bag {i}"} for i in ids]}


@pytest.fixture
def shop(server: RouteServer, http_settings: Settings, sleeps: list[float]) -> ShopifySource:
    return ShopifySource(server.base_url, settings=http_settings, sleep=sleeps.append)


def _serve(server: RouteServer, pages: dict[int, Any]) -> PagedRoute:
    route = PagedRoute(
        {n: json_reply(body) for n, body in pages.items()}, beyond=json_reply({"products": []})
    )
    server.routes[FEED] = route
    return route


def test_reads_pages_until_an_empty_one(server: RouteServer, shop: ShopifySource) -> None:
    route = _serve(server, {1: _products(1, 2), 2: _products(3)})

    pages = list(shop.pages())

    assert [page.number for page in pages] == [1, 2]
    assert [[r["id"] for r in page.records] for page in pages] == [[1, 2], [3]]
    assert route.requested_pages == [1, 2, 3]  # page 3 was empty: the end
    assert all(query["limit"] == "250" for query in route.queries)


def test_max_pages_stops_early(server: RouteServer, shop: ShopifySource) -> None:
    route = _serve(server, {1: _products(1), 2: _products(2), 3: _products(3)})

    assert [page.number for page in shop.pages(max_pages=2)] == [1, 2]
    assert route.requested_pages == [1, 2]


def test_pages_are_fetched_only_when_asked_for(server: RouteServer, shop: ShopifySource) -> None:
    _serve(server, {1: _products(1), 2: _products(2)})

    pages = shop.pages()
    assert server.hits[FEED] == 0  # creating the generator fetches nothing
    first = next(pages)
    assert first.number == 1
    assert server.hits[FEED] == 1  # no read-ahead of page 2


def test_page_size_is_configurable(server: RouteServer, http_settings: Settings) -> None:
    route = _serve(server, {1: _products(1)})
    source = ShopifySource(server.base_url, page_size=50, settings=http_settings)

    list(source.pages())

    assert route.queries[0]["limit"] == "50"


def test_a_wrong_shaped_page_names_the_page(server: RouteServer, shop: ShopifySource) -> None:
    _serve(server, {1: _products(1), 2: {"items": []}})
    pages = shop.pages()
    next(pages)

    with pytest.raises(SourceError, match=r"page 2 of .*'products' list"):
        next(pages)


def test_rate_limited_page_is_retried(
    server: RouteServer, shop: ShopifySource, sleeps: list[float]
) -> None:
    limited = json_reply({"errors": "Exceeded"}, 429, **{"Retry-After": "1"})
    server.routes[FEED] = PagedRoute(
        {1: [limited, json_reply(_products(1))]}, beyond=json_reply({"products": []})
    )

    assert [page.number for page in shop.pages()] == [1]
    assert sleeps == [1.0]


@pytest.mark.parametrize(
    "given",
    [
        "https://shop.example.com",
        "https://shop.example.com/",
        "https://shop.example.com/products.json",
    ],
)
def test_base_url_with_or_without_the_feed_path(given: str, http_settings: Settings) -> None:
    source = ShopifySource(given, settings=http_settings)

    assert source.feed_url == "https://shop.example.com/products.json"
    assert source.name == "shopify:shop.example.com"


def test_name_can_be_overridden(http_settings: Settings) -> None:
    source = ShopifySource("https://shop.example.com", name="acme", settings=http_settings)
    assert source.name == "acme"


# --- normalization -------------------------------------------------------------------------
RECORD: dict[str, Any] = {
    "id": 7712345678901,
    "title": "  Sienna   Leather Tote ",
    "handle": "sienna-leather-tote",
    "vendor": "Lino Perros",
    "product_type": "Handbags",
    "tags": ["leather", " tote ", "", "Color: Tan"],
    "created_at": "2024-03-01T09:00:00-05:00",
    "published_at": "2024-03-02T10:30:00-05:00",
    "updated_at": "2024-05-20T12:00:00Z",
    "variants": [{"price": "129.00"}, {"price": "99.50"}, {"price": "149"}],
    "images": [
        {"src": "https://cdn.example.com/b.jpg", "position": 2},
        {"src": "https://cdn.example.com/c.jpg"},
        {"src": "https://cdn.example.com/a.jpg", "position": 1},
    ],
    "body_html": "<p>Soft leather.</p>",
}


@pytest.fixture
def offline_shop(http_settings: Settings) -> ShopifySource:
    return ShopifySource("https://shop.example.com", currency="EUR", settings=http_settings)


def test_normalizes_every_field(offline_shop: ShopifySource) -> None:
    product = offline_shop.normalize(RECORD)

    assert product.source == "shopify:shop.example.com"
    assert product.source_id == "7712345678901"
    assert product.title == "Sienna Leather Tote"
    assert product.brand == "Lino Perros"
    assert product.category == "Handbags"
    assert product.attributes == {"tags": "leather, tote, Color: Tan"}
    assert product.price == 99.5
    assert product.currency == "EUR"
    assert product.image_urls == [
        "https://cdn.example.com/a.jpg",
        "https://cdn.example.com/b.jpg",
        "https://cdn.example.com/c.jpg",
    ]
    assert product.product_url == "https://shop.example.com/products/sienna-leather-tote"
    eastern = timezone(timedelta(hours=-5))
    assert product.listed_at == datetime(2024, 3, 2, 10, 30, tzinfo=eastern)
    assert product.updated_at == datetime(2024, 5, 20, 12, 0, tzinfo=UTC)
    assert product.raw == RECORD


def test_tags_as_one_comma_separated_string(offline_shop: ShopifySource) -> None:
    product = offline_shop.normalize({"id": 1, "tags": "leather, tote,,Color: Tan"})
    assert product.attributes == {"tags": "leather, tote, Color: Tan"}


def test_unpublished_product_is_listed_from_its_creation(offline_shop: ShopifySource) -> None:
    record = {"id": 1, "created_at": "2024-03-01T09:00:00+01:00", "published_at": None}
    product = offline_shop.normalize(record)
    assert product.listed_at == datetime(2024, 3, 1, 8, 0, tzinfo=UTC)


def test_sparse_product_has_no_invented_values(http_settings: Settings) -> None:
    product = ShopifySource("https://shop.example.com", settings=http_settings).normalize(
        {"id": "42"}
    )
    assert product.source_id == "42"
    assert product.currency is None  # products.json never says; only the caller can
    assert product.price is None
    assert product.image_urls == []
    assert product.product_url is None
    assert product.attributes == {}


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"title": "no id"}, "no 'id'"),
        ({"id": " "}, "no 'id'"),
        ({"id": 1, "variants": [{"price": "call us"}]}, "not a price"),
        ({"id": 1, "updated_at": "last Tuesday"}, "not an ISO 8601"),
        ({"id": 1, "tags": 5}, "tags"),
    ],
)
def test_malformed_record_is_a_record_error(
    offline_shop: ShopifySource, record: dict[str, Any], reason: str
) -> None:
    with pytest.raises(RecordError, match=reason):
        offline_shop.normalize(record)
