"""PageFetcher against a real HTTP server: retries, backoff hints and unusable pages."""

from __future__ import annotations

import pytest

from baghunter.catalog.sources import SourceError
from baghunter.catalog.sources.http import PageFetcher
from baghunter.config import Settings
from baghunter.local.sample.server import Reply, RouteServer
from tests.catalog.helpers import PagedRoute, json_reply

OK = json_reply({"products": [{"id": 1}]})


def _fetch_page_1(server: RouteServer, settings: Settings, sleeps: list[float]) -> object:
    with PageFetcher(settings, sleep=sleeps.append) as fetcher:
        return fetcher.get_json(server.url("/feed"), {"page": 1}, page=1)


def test_rate_limit_waits_as_long_as_the_server_asks(
    server: RouteServer, http_settings: Settings, sleeps: list[float]
) -> None:
    server.routes["/feed"] = [json_reply({"error": "slow down"}, 429, **{"Retry-After": "1"}), OK]

    body = _fetch_page_1(server, http_settings, sleeps)

    assert body == {"products": [{"id": 1}]}
    assert sleeps == [1.0]
    assert server.hits["/feed"] == 2


def test_unavailable_twice_then_served(
    server: RouteServer, http_settings: Settings, sleeps: list[float]
) -> None:
    unavailable = Reply(503, b"maintenance")
    server.routes["/feed"] = [unavailable, unavailable, OK]

    assert _fetch_page_1(server, http_settings, sleeps) == {"products": [{"id": 1}]}
    assert len(sleeps) == 2
    assert server.hits["/feed"] == 3


def test_persistent_server_error_gives_up_after_the_retries(
    server: RouteServer, http_settings: Settings, sleeps: list[float]
) -> None:
    server.routes["/feed"] = Reply(500, b"boom")

    with pytest.raises(SourceError) as failure:
        _fetch_page_1(server, http_settings, sleeps)

    assert server.hits["/feed"] == http_settings.http_retries + 1
    message = str(failure.value)
    assert "page 1" in message and "http 500" in message and server.url("/feed") in message


def test_client_error_is_not_retried(
    server: RouteServer, http_settings: Settings, sleeps: list[float]
) -> None:
    server.routes["/feed"] = Reply(403, b"forbidden")

    with pytest.raises(SourceError, match="http 403"):
        _fetch_page_1(server, http_settings, sleeps)

    assert server.hits["/feed"] == 1
    assert sleeps == []


def test_html_instead_of_json_names_the_page(
    server: RouteServer, http_settings: Settings, sleeps: list[float]
) -> None:
    server.routes["/feed"] = Reply(200, b"<html>Access denied</html>", content_type="text/html")

    with pytest.raises(SourceError) as failure:
        _fetch_page_1(server, http_settings, sleeps)

    assert "page 1" in str(failure.value)
    assert "not JSON (text/html)" in str(failure.value)


def test_an_oversized_page_is_refused_not_read_whole(
    server: RouteServer, http_settings: Settings, sleeps: list[float]
) -> None:
    huge = json_reply({"products": [{"id": i, "title": "x" * 200} for i in range(2000)]})
    server.routes["/feed"] = huge
    small = http_settings.model_copy(update={"max_page_bytes": 64 * 1024})

    with pytest.raises(SourceError, match="page larger than 65536 bytes"):
        _fetch_page_1(server, small, sleeps)
    assert sleeps == []  # a refusal, not a transient failure

    assert len(_fetch_page_1(server, http_settings, sleeps)["products"]) == 2000  # type: ignore[index]


def test_requests_carry_the_configured_user_agent_and_params(
    server: RouteServer, http_settings: Settings, sleeps: list[float]
) -> None:
    route = PagedRoute({}, beyond=OK)
    server.routes["/feed"] = route

    with PageFetcher(http_settings, sleep=sleeps.append) as fetcher:
        fetcher.get_json(server.url("/feed?category=bags"), {"page": 7, "pageSize": 30}, page=7)

    assert route.queries == [{"category": "bags", "page": "7", "pageSize": "30"}]
    assert route.headers[0]["User-Agent"] == http_settings.user_agent


def test_fetcher_refuses_to_run_outside_its_block(http_settings: Settings) -> None:
    with pytest.raises(RuntimeError, match="outside"):
        PageFetcher(http_settings).get_json("http://127.0.0.1:9/feed", {}, page=1)


def test_timeouts_are_retried_then_reported(
    server: RouteServer, http_settings: Settings, sleeps: list[float]
) -> None:
    server.routes["/feed"] = Reply(200, b"{}", delay_s=2.0)
    impatient = http_settings.model_copy(update={"http_timeout_s": 0.2, "http_retries": 1})

    with pytest.raises(SourceError, match=r"page 1 of .*timeout"):
        _fetch_page_1(server, impatient, sleeps)

    assert len(sleeps) == 1  # one retry, then it gave up
