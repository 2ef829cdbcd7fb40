"""Fetching JSON pages from a retailer's API, with the project's retry policy.

One ``PageFetcher`` lives for one pass over a catalog: it keeps a single pooled
``httpx.Client`` (keep-alive matters when a catalog has hundreds of pages) and closes it when
the pass ends, even if the caller stops early. Transient failures (429 with ``Retry-After``,
5xx, timeouts) are retried by :func:`baghunter.net.request_with_retries`; whatever still
fails, or answers something that is not JSON, becomes a :class:`SourceError` naming the page.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx

from baghunter.catalog.sources.base import Page, SourceError
from baghunter.config import Settings, get_settings
from baghunter.net import (
    FetchPolicy,
    FetchRefused,
    HttpError,
    RetryPolicy,
    guarded_client,
    request_with_retries,
)

log = logging.getLogger(__name__)

Sleep = Callable[[float], None]


def page_error(url: str, page: int, reason: str) -> SourceError:
    """The one wording of a failed page, so every source reports failures alike."""
    return SourceError(f"page {page} of {url}: {reason}")


class PageFetcher:
    """GET JSON documents over one connection pool; use as a context manager.

    ``client`` and ``sleep`` exist for callers that must control the transport or the clock
    (tests record the waits instead of sleeping). An injected client is left open: its owner
    closes it.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        client: httpx.Client | None = None,
        sleep: Sleep = time.sleep,
    ) -> None:
        self._settings = settings
        self._policy = RetryPolicy.from_settings(settings)
        self._policy_check = FetchPolicy.from_settings(settings)
        self._injected = client
        self._sleep = sleep
        self._client: httpx.Client | None = None

    def __enter__(self) -> PageFetcher:
        self._client = self._injected or guarded_client(
            self._settings,
            timeout=httpx.Timeout(self._settings.http_timeout_s),
            headers={
                "User-Agent": self._settings.user_agent,
                "Accept": "application/json",
            },
            follow_redirects=True,
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None and self._client is not self._injected:
            self._client.close()
        self._client = None

    def get_json(self, url: str, params: Mapping[str, str | int], *, page: int) -> Any:
        """The decoded JSON body of ``GET url?params``; raises SourceError naming ``page``."""
        client = self._client
        if client is None:
            raise RuntimeError("PageFetcher.get_json called outside its 'with' block")
        # Merged rather than passed as ``params=``, which would replace a query the feed URL
        # already has (``/listings?category=bags``) instead of adding to it.
        target = httpx.URL(url).copy_merge_params(dict(params))
        log.debug("fetching page %d: %s", page, target)
        try:
            self._policy_check.check_url(str(target))
        except FetchRefused as exc:
            raise page_error(url, page, str(exc)) from exc
        try:
            response = request_with_retries(
                lambda: client.send(client.build_request("GET", target), stream=True),
                str(target),
                self._policy,
                sleep=self._sleep,
            )
        except HttpError as exc:
            raise page_error(url, page, exc.reason) from exc
        content_type = response.headers.get("Content-Type", "no content type")
        try:
            body = self._read_capped(response)
        except httpx.HTTPError as exc:
            raise page_error(url, page, f"reading the page failed: {exc}") from exc
        finally:
            response.close()
        if body is None:
            limit = self._settings.max_page_bytes
            raise page_error(url, page, f"page larger than {limit} bytes (max_page_bytes)")
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise page_error(url, page, f"not JSON ({content_type}): {exc}") from exc

    def _read_capped(self, response: httpx.Response) -> bytes | None:
        """The body, or None once it grows past ``max_page_bytes`` (counted decoded)."""
        limit = self._settings.max_page_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            return None
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > limit:
                return None
        return bytes(body)


class HttpSource:
    """A remote catalog API read page by page: what Shopify and Farfetch-style feeds share.

    A subclass names its ``kind``, how a page is requested (:meth:`page_params`), where
    its records are (:meth:`page_records`: None for a page of the wrong shape) and, if
    the API says so, when the last page was read (:meth:`last_page`). Paging stops at the
    first empty page otherwise, or after ``max_pages``.
    """

    kind = "http"
    shape = "a list of product objects"  # what a page must hold, for the error message

    def __init__(
        self,
        url: str,
        *,
        name: str | None,
        page_size: int,
        settings: Settings | None,
        client: httpx.Client | None,
        sleep: Sleep,
    ) -> None:
        host = urlsplit(url).netloc
        if not host:
            raise ValueError(f"not an http(s) {self.kind} URL: {url!r}")
        self.url = url
        self.name = name or f"{self.kind}:{host}"
        self.page_size = page_size
        self._settings = settings or get_settings()
        self._client = client
        self._sleep = sleep

    def page_params(self, number: int) -> dict[str, str | int]:
        raise NotImplementedError

    def page_records(self, body: Any) -> list[dict[str, Any]] | None:
        raise NotImplementedError

    def last_page(self, body: Any, number: int) -> bool:
        return False

    def pages(self, max_pages: int | None = None) -> Iterator[Page]:
        with PageFetcher(self._settings, client=self._client, sleep=self._sleep) as fetcher:
            number = 1
            while max_pages is None or number <= max_pages:
                body = fetcher.get_json(self.url, self.page_params(number), page=number)
                records = self.page_records(body)
                if records is None:
                    raise page_error(self.url, number, f"expected {self.shape}")
                if not records:
                    log.debug("%s: page %d is empty, end of catalog", self.name, number)
                    return
                yield Page(number=number, records=records)
                if self.last_page(body, number):
                    return
                number += 1
