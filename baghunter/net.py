"""HTTP retry policy shared by catalog sources and the image downloader.

Retail APIs and CDNs rate-limit (429 with ``Retry-After``) and fail transiently (5xx,
timeouts, resets). Both callers use the same rules: which failures are worth retrying, how
long to wait (exponential backoff, or the server's ``Retry-After`` when it gives one, capped),
and how many times.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

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
