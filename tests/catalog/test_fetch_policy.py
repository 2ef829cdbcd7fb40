"""The fetch policy: feeds and their images reach public addresses only, redirects included.

Real sockets on 127.0.0.1 stand in for the machine's own services an attacker aims at; the
policy refuses them unless ``fetch_allow_networks`` names them. Name resolution is replaced
only where a test needs a name to resolve somewhere it cannot on this machine.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from baghunter.catalog.schema import ImageStatus, ImageTask
from baghunter.catalog.sources import FarfetchSource, ShopifySource, SourceError
from baghunter.config import Settings
from baghunter.images.cas import ContentStore
from baghunter.images.download import ImageDownloader
from baghunter.local.sample.server import Reply, Request, RouteServer
from baghunter.net import FetchPolicy
from tests.catalog.helpers import json_reply

SECRET = b"root:x:0:0:the machine's own file\n"


@pytest.fixture
def local() -> Iterator[RouteServer]:
    """A server on loopback: an internal service from the policy's point of view."""
    server = RouteServer().start()
    yield server
    server.stop()


def _settings(tmp_path: Path, allow: list[str]) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        home=tmp_path / "home",
        http_retries=2,
        http_backoff_s=0.0,
        download_timeout_s=5.0,
        fetch_allow_networks=allow,  # type: ignore[arg-type]
    )


def _fetch(settings: Settings, url: str) -> Any:
    downloader = ImageDownloader(ContentStore(settings.images_dir), settings, sleep=lambda _: None)
    return downloader.fetch_one(ImageTask(url=url))


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),  # IPv4-mapped loopback
        ("10.1.2.3", True),
        ("192.168.0.10", True),
        ("169.254.169.254", True),  # cloud metadata (link-local)
        ("fd00:ec2::254", True),  # cloud metadata over IPv6 (unique-local)
        ("100.100.100.200", True),  # shared address space, another cloud's metadata
        ("224.0.0.1", True),  # multicast
        ("0.0.0.0", True),
        ("93.184.216.34", False),
        ("2606:2800:220:1::1", False),
    ],
)
def test_only_public_addresses_pass_by_default(address: str, refused: bool) -> None:
    verdict = FetchPolicy().refusal(ipaddress.ip_address(address))
    assert (verdict is not None) is refused, verdict


def test_allowed_networks_open_exactly_what_they_name() -> None:
    policy = FetchPolicy((ipaddress.ip_network("10.20.0.0/16"),))
    assert policy.refusal(ipaddress.ip_address("10.20.5.6")) is None
    assert policy.refusal(ipaddress.ip_address("10.21.0.1")) is not None


def test_an_internal_image_is_refused_for_good_and_never_requested(
    local: RouteServer, tmp_path: Path
) -> None:
    local.routes["/secret.jpg"] = Reply(body=SECRET, content_type="image/jpeg")
    result = _fetch(_settings(tmp_path, []), local.url("/secret.jpg"))

    assert result.status == ImageStatus.FAILED
    assert not result.retryable  # a refusal is final: no attempt is spent on retries
    assert "refused" in (result.reason or "") and "127.0.0.1" in (result.reason or "")
    assert local.hits["/secret.jpg"] == 0
    assert not list((tmp_path / "home").rglob("*.jpg"))


def test_a_redirect_into_an_internal_address_is_refused(local: RouteServer, tmp_path: Path) -> None:
    # The first hop is allowed (the test's "CDN" on 127.0.0.1); it redirects to 127.0.0.2,
    # a loopback address the policy does not allow.
    local.routes["/secret.jpg"] = Reply(body=SECRET, content_type="image/jpeg")
    hidden = local.url("/secret.jpg").replace("127.0.0.1", "127.0.0.2")
    local.routes["/cdn.jpg"] = Reply(status=302, headers={"Location": hidden})

    result = _fetch(_settings(tmp_path, ["127.0.0.1/32"]), local.url("/cdn.jpg"))

    assert local.hits["/cdn.jpg"] == 1
    assert result.status == ImageStatus.FAILED and not result.retryable
    assert "127.0.0.2 is not a public address" in (result.reason or "")
    assert local.hits["/secret.jpg"] == 0


def test_a_name_with_any_private_answer_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A rebinding name answers a public and a private address; the connection would be
    # made to whichever the resolver returns first next time, so the name is refused.
    def resolve(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    result = _fetch(_settings(tmp_path, []), "http://cdn.rebind.test/bag.jpg")

    assert result.status == ImageStatus.FAILED and not result.retryable
    assert "cdn.rebind.test resolves to 127.0.0.1" in (result.reason or "")


def test_the_connection_goes_to_the_checked_address(
    local: RouteServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The name is resolved once, by the policy, and the socket is opened to that answer;
    # the request still names the host it asked for.
    from tests.images.synthetic import encode, scene

    seen: list[dict[str, str]] = []

    def image(request: Request) -> Reply:
        seen.append(request.headers)
        return Reply(body=encode(scene(3), "JPEG", quality=90), content_type="image/jpeg")

    local.routes["/bag.jpg"] = image
    port = local.url("/").split(":")[2].split("/")[0]
    calls: list[str] = []

    def resolve(host: str, port_: Any, *args: Any, **kwargs: Any) -> list[Any]:
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port_))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    result = _fetch(_settings(tmp_path, ["127.0.0.1/32"]), f"http://shop.test:{port}/bag.jpg")

    assert result.status == ImageStatus.OK, result.reason
    # The name is looked up once; the socket library then sees only the checked address.
    assert calls[0] == "shop.test" and set(calls[1:]) <= {"127.0.0.1"}
    assert seen[0]["Host"] == f"shop.test:{port}"


def test_a_feed_on_an_internal_address_is_refused(local: RouteServer, tmp_path: Path) -> None:
    local.routes["/products.json"] = json_reply({"products": [{"id": 1, "title": "Bag"}]})
    shop = ShopifySource(local.base_url, settings=_settings(tmp_path, []), sleep=lambda _: None)

    with pytest.raises(SourceError, match=r"refused: 127\.0\.0\.1 is not a public address"):
        list(shop.pages())
    assert local.hits["/products.json"] == 0


def test_a_feed_cannot_name_local_files_as_images(local: RouteServer, tmp_path: Path) -> None:
    listing = {
        "id": "7",
        "name": "Bag",
        "brand": {"name": "Aurelia"},
        "images": [
            "file:///etc/passwd",
            "/etc/passwd",
            "//cdn.example.com/bag.jpg",  # protocol-relative: kept, as https
            "https://cdn.example.com/bag-2.jpg",
        ],
    }
    local.routes["/api/listings"] = json_reply({"products": [listing], "totalPages": 1})
    feed = FarfetchSource(
        local.url("/api/listings"),
        settings=_settings(tmp_path, ["127.0.0.1/32"]),
        sleep=lambda _: None,
    )
    [page] = list(feed.pages())
    product = feed.normalize(page.records[0])

    assert product.image_urls == [
        "https://cdn.example.com/bag.jpg",
        "https://cdn.example.com/bag-2.jpg",
    ]
