"""HTTP rules shared by catalog sources and the image downloader: retries and fetch policy.

Retail APIs and CDNs rate-limit (429 with ``Retry-After``) and fail transiently (5xx,
timeouts, resets). Both callers use the same rules: which failures are worth retrying, how
long to wait (exponential backoff, or the server's ``Retry-After`` when it gives one, capped),
and how many times.

A feed is untrusted input, and so is every URL in it: a ``src`` of
``http://169.254.169.254/…`` or ``http://127.0.0.1:6379/`` would make the pipeline read the
machine's own services and store the answer where the service later serves it. So every
remote fetch goes through one :func:`guarded_client`: only ``http``/``https``, and every
connection, redirects included, goes to an address that was checked against the policy
(public addresses, plus ``BAGHUNTER_FETCH_ALLOW_NETWORKS``). The check happens where the
socket is opened, on the address it is opened to, so a name that resolves to a public
address when checked and to a private one a moment later (DNS rebinding) cannot slip by.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import httpcore
import httpx

if TYPE_CHECKING:
    from baghunter.config import Settings

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class HttpError(RuntimeError):
    """A request that failed for good; ``retryable`` tells whether a later run may succeed."""

    def __init__(self, url: str, reason: str, *, status: int | None = None, retryable: bool):
        super().__init__(f"{reason} ({url})")
        self.url = url
        self.reason = reason
        self.status = status
        self.retryable = retryable


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 4
    backoff_s: float = 0.5
    max_backoff_s: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            retries=settings.http_retries,
            backoff_s=settings.http_backoff_s,
            max_backoff_s=settings.http_max_backoff_s,
        )

    def delay(self, attempt: int, response: httpx.Response | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if response is not None:
            hinted = retry_after_seconds(response)
            if hinted is not None:
                return min(hinted, self.max_backoff_s)
        base = self.backoff_s * (2 ** (attempt - 1))
        # Full jitter keeps many workers from retrying in lock step.
        return min(self.max_backoff_s, base * (0.5 + random.random() / 2))


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The server's ``Retry-After`` as seconds (delta-seconds or an HTTP date), if valid."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUS


def request_with_retries(
    send: Callable[[], httpx.Response],
    url: str,
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> httpx.Response:
    """Call ``send`` until it returns a 2xx response, retrying transient failures.

    Raises :class:`HttpError` for a non-retryable status (404, 403...) at once, and for
    transient ones once the retries are spent. The caller owns the response.
    """
    attempt = 0
    while True:
        attempt += 1
        response: httpx.Response | None = None
        try:
            response = send()
        except FetchRefused as exc:
            raise HttpError(url, str(exc), retryable=False) from exc
        except httpx.TimeoutException as exc:
            failure = HttpError(url, f"timeout: {type(exc).__name__}", retryable=True)
        except httpx.TransportError as exc:
            failure = HttpError(url, f"connection error: {exc}", retryable=True)
        else:
            if response.is_success:
                return response
            status = response.status_code
            failure = HttpError(
                url, f"http {status}", status=status, retryable=is_retryable_status(status)
            )
            if not failure.retryable:
                response.close()
                raise failure
        if attempt > policy.retries:
            if response is not None:
                response.close()
            raise failure
        wait = policy.delay(attempt, response)
        if response is not None:
            response.close()
        sleep(wait)


# --- fetch policy ---------------------------------------------------------------------

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
REMOTE_SCHEMES = ("http", "https")


class FetchRefused(Exception):
    """The fetch policy refuses this URL or address; nothing was sent.

    Deliberately not an ``httpx`` or ``httpcore`` error: the transport would report those
    as connection failures, which are retried. A refusal is final.
    """


@dataclass(frozen=True)
class FetchPolicy:
    """Which addresses remote fetches may connect to: public ones and ``allow``."""

    allow: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchPolicy:
        return cls(tuple(settings.fetch_allow_networks))

    def refusal(self, address: IPAddress) -> str | None:
        """Why connecting to ``address`` is refused; None when it is allowed."""
        mapped = getattr(address, "ipv4_mapped", None)
        if mapped is not None:  # ::ffff:127.0.0.1 is 127.0.0.1
            address = mapped
        if any(address in network for network in self.allow):
            return None
        # Not global: loopback, private, link-local (cloud metadata at 169.254.169.254),
        # unique-local, shared (100.64/10), reserved, unspecified.
        if not address.is_global or address.is_multicast:
            return f"{address} is not a public address (see BAGHUNTER_FETCH_ALLOW_NETWORKS)"
        return None

    def check_url(self, url: str) -> None:
        """Refuse a URL that is not ``http(s)`` with a host, before anything is sent."""
        parts = httpx.URL(url)
        if parts.scheme not in REMOTE_SCHEMES:
            raise FetchRefused(f"refused: only http and https URLs are fetched, not {url[:80]!r}")
        if not parts.host:
            raise FetchRefused(f"refused: no host in {url[:80]!r}")


class _CheckedBackend(httpcore.NetworkBackend):
    """Opens TCP connections only to addresses the policy allows, and to exactly those.

    The host is resolved here, every address it resolves to is checked, and the socket is
    opened to a checked address (TLS still verifies the certificate against the name).
    """

    def __init__(self, policy: FetchPolicy, inner: httpcore.NetworkBackend) -> None:
        self._policy = policy
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = _resolve(host, port)
        for address in addresses:
            reason = self._policy.refusal(address)
            if reason is None:
                continue
            if str(address) == host.strip("[]"):
                raise FetchRefused(f"refused: {reason}")
            # One private answer refuses the name: which one a later connect would get is
            # the resolver's choice, not ours.
            raise FetchRefused(f"refused: {host} resolves to {reason}")
        return self._inner.connect_tcp(
            str(addresses[0]),
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise FetchRefused("refused: unix sockets are not fetched")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _resolve(host: str, port: int) -> Sequence[IPAddress]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        # A transport error: DNS failures are often transient, and retried as such.
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    found = list(
        dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
    )
    if not found:
        raise httpcore.ConnectError(f"{host} resolves to no address")
    return found


def guarded_client(settings: Settings, **options: Any) -> httpx.Client:
    """An ``httpx.Client`` for untrusted URLs: the fetch policy on every connection.

    Proxies from the environment are not used (``trust_env=False``): behind a proxy the
    addresses checked would be the proxy's, not those of the URLs in the feed.
    """
    transport = httpx.HTTPTransport(retries=0)
    # httpx builds its connection pool without a way to pass a network backend; the pool
    # reads this attribute for every new connection (tests/catalog/test_fetch_policy.py
    # fails loudly if an upgrade changes that).
    pool = transport._pool
    if not isinstance(pool, httpcore.ConnectionPool):
        raise RuntimeError(f"unexpected httpx transport pool {type(pool).__name__}")
    policy = FetchPolicy.from_settings(settings)
    pool._network_backend = _CheckedBackend(policy, pool._network_backend)
    return httpx.Client(transport=transport, trust_env=False, **options)
