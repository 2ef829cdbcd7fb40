"""Fetch catalog images concurrently, validate them and file them in the content store.

A catalog run fetches tens of thousands of images from CDNs that rate-limit, stall and
fail; the downloader turns each URL into exactly one :class:`ImageResult` whatever
happens, so one bad image never stops a run and every failure is recorded with a reason
and with whether a later run should try again.
"""

from __future__ import annotations

import errno
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import httpx

from baghunter.catalog.schema import ImageResult, ImageStatus, ImageTask
from baghunter.config import Settings
from baghunter.images.cas import BlobStore, StoreFault
from baghunter.images.phash import phash
from baghunter.images.validate import InvalidImage, decode_rgb, validate_image
from baghunter.net import FetchRefused, HttpError, RetryPolicy, guarded_client, is_retryable_status

log = logging.getLogger(__name__)

# Errors of this machine's disk while storing an image: no fault of the image's.
LOCAL_FAULTS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})

# Tasks queued beyond the running ones, per worker: enough that a worker finishing never
# waits for the consumer, few enough that 40,000 tasks are never all held as futures.
_QUEUE_FACTOR = 2


@dataclass(frozen=True)
class _Body:
    data: bytes
    content_type: str | None  # as declared by the server; None for local files


@dataclass(frozen=True)
class _Failure:
    error: HttpError
    response: httpx.Response | None = None  # kept for its Retry-After header


class ImageDownloader:
    """Turns :class:`ImageTask` URLs into stored, validated, hashed images.

    ``client`` lets a caller share its own pooled client (and its lifetime); by default
    each :meth:`fetch_many` run opens one sized for ``settings.download_concurrency`` and
    closes it when the run ends. ``sleep`` is how retries wait (tests record it).
    """

    def __init__(
        self,
        cas: BlobStore,
        settings: Settings,
        *,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._cas = cas
        self._settings = settings
        self._client = client
        self._sleep = sleep
        self._policy = RetryPolicy.from_settings(settings)

    # --- public API --------------------------------------------------------------------
    def fetch_many(
        self,
        tasks: Iterable[ImageTask],
        progress: Callable[[ImageResult], None] | None = None,
    ) -> Iterator[ImageResult]:
        """Fetch every task on a bounded thread pool; yield results as they complete.

        Tasks are read lazily, keeping only a small window in flight, so ``tasks`` may be
        a cursor over a huge catalog. Exactly one result is yielded per task and nothing
        a task does can raise out of here. Stopping the iteration early cancels the tasks
        not yet started and waits for the running ones.
        """
        concurrency = self._settings.download_concurrency
        window = concurrency * _QUEUE_FACTOR
        outcomes: Counter[str] = Counter()
        started = time.monotonic()
        pending_tasks = iter(tasks)
        with self._session() as client:
            pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="image-fetch")
            try:
                running: set[Future[ImageResult]] = set()

                def top_up() -> None:
                    for task in islice(pending_tasks, window - len(running)):
                        running.add(pool.submit(self._fetch, client, task))

                top_up()
                while running:
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    top_up()  # before yielding: workers stay busy while the caller works
                    for future in done:
                        result = future.result()
                        outcomes[_outcome(result)] += 1
                        if progress is not None:
                            progress(result)
                        yield result
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
                log.info(
                    "fetched %d images in %.1fs: %s",
                    outcomes.total(),
                    time.monotonic() - started,
                    ", ".join(f"{n} {name}" for name, n in outcomes.most_common()) or "none",
                )

    def fetch_one(self, task: ImageTask) -> ImageResult:
        """Fetch a single image (never raises); see :meth:`fetch_many` for batches."""
        with self._session() as client:
            return self._fetch(client, task)

    # --- one task ----------------------------------------------------------------------
    @contextmanager
    def _session(self) -> Iterator[httpx.Client]:
        """The injected client as is, or a pooled client owned by this run."""
        if self._client is not None:
            yield self._client
            return
        concurrency = self._settings.download_concurrency
        with guarded_client(
            self._settings,
            timeout=self._settings.download_timeout_s,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            headers={"User-Agent": self._settings.user_agent},
            # CDNs commonly redirect image URLs (to a regional host or a resized variant).
            follow_redirects=True,
        ) as client:
            yield client

    def _fetch(self, client: httpx.Client, task: ImageTask) -> ImageResult:
        url = task.url
        try:
            body = self._read(client, url)
            return self._store(url, body)
        except HttpError as exc:
            return _failed(url, exc.reason, retryable=exc.retryable)
        except InvalidImage as exc:
            return _failed(url, exc.reason, retryable=False)
        except OSError as exc:
            if exc.errno not in LOCAL_FAULTS and not isinstance(exc, StoreFault):
                log.warning("internal error fetching %s", url, exc_info=True)
                return _failed(url, f"internal error: {type(exc).__name__}: {exc}", retryable=True)
            return ImageResult(
                url=url,
                status=ImageStatus.FAILED,
                reason=f"local fault: {exc.strerror or exc} ({self._cas.root})"
                if not isinstance(exc, StoreFault)
                else f"store fault: {exc}",
                retryable=True,
                local_fault=True,
            )
        except Exception as exc:
            # A bug or a local fault (disk full, permissions), not the image's fault: let a
            # later run try again; download_max_attempts bounds how often.
            log.warning("internal error fetching %s", url, exc_info=True)
            return _failed(url, f"internal error: {type(exc).__name__}: {exc}", retryable=True)

    def _read(self, client: httpx.Client, url: str) -> _Body:
        scheme = urlsplit(url).scheme.lower()
        if scheme in ("http", "https"):
            return self._get(client, url)
        if scheme == "file":
            return self._read_file(url, Path(url2pathname(urlsplit(url).path)))
        if scheme == "":
            return self._read_file(url, Path(url))
        raise HttpError(url, f"unsupported URL scheme {scheme}", retryable=False)

    def _store(self, url: str, body: _Body) -> ImageResult:
        settings = self._settings
        info = validate_image(
            body.data,
            content_type=body.content_type,
            max_bytes=settings.max_image_bytes,
            max_pixels=settings.max_image_pixels,
            min_side=settings.min_image_side,
        )
        # Hash before storing, so a decode problem here leaves no orphan file behind.
        perceptual = phash(decode_rgb(body.data))
        blob = self._cas.put(body.data, info.ext)
        return ImageResult(
            url=url,
            status=ImageStatus.OK,
            sha256=blob.sha256,
            path=blob.relpath,
            content_type=info.mime,
            bytes=len(body.data),
            width=info.width,
            height=info.height,
            phash=perceptual,
            fetched_at=datetime.now(UTC),
        )

    # --- transports --------------------------------------------------------------------
    def _get(self, client: httpx.Client, url: str) -> _Body:
        """GET with retries on transient failures (the same rules as ``net.py``).

        ``request_with_retries`` cannot be used as is: it hands back an unread response,
        while the size limit has to be enforced while the body streams in.
        """
        attempt = 0
        while True:
            attempt += 1
            outcome = self._get_once(client, url)
            if isinstance(outcome, _Body):
                return outcome
            if not outcome.error.retryable or attempt > self._policy.retries:
                raise outcome.error
            self._sleep(self._policy.delay(attempt, outcome.response))

    def _get_once(self, client: httpx.Client, url: str) -> _Body | _Failure:
        limit = self._settings.max_image_bytes
        # The client's timeout bounds each read; this bounds the whole attempt, so a body
        # that trickles in a byte at a time cannot hold a worker for ever.
        budget = self._settings.download_timeout_s
        deadline = time.monotonic() + budget
        try:
            with client.stream("GET", url) as response:
                if not response.is_success:
                    status = response.status_code
                    retryable = is_retryable_status(status)
                    error = HttpError(url, f"http {status}", status=status, retryable=retryable)
                    return _Failure(error, response)
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > limit:
                    return _too_large(url, f"{declared} bytes declared (limit {limit})")
                body = bytearray()
                # Counted after decoding, so a gzip-encoded body cannot inflate past it.
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > limit:
                        return _too_large(url, f"more than {limit} bytes received")
                    if time.monotonic() > deadline:
                        reason = f"timeout: body not complete after {budget:g} s"
                        return _Failure(HttpError(url, reason, retryable=True))
                return _Body(bytes(body), response.headers.get("Content-Type"))
        except FetchRefused as exc:
            return _Failure(HttpError(url, str(exc), retryable=False))
        except httpx.TimeoutException as exc:
            return _Failure(HttpError(url, f"timeout: {type(exc).__name__}", retryable=True))
        except httpx.TransportError as exc:
            reason = f"connection error: {type(exc).__name__}: {exc}"
            return _Failure(HttpError(url, reason, retryable=True))

    def _read_file(self, url: str, path: Path) -> _Body:
        """Read a local image (sample catalogs, mounted exports); same error semantics."""
        limit = self._settings.max_image_bytes
        try:
            size = path.stat().st_size
            if size > limit:
                raise HttpError(url, f"too large: {size} bytes (limit {limit})", retryable=False)
            return _Body(path.read_bytes(), None)
        except FileNotFoundError as exc:
            raise HttpError(url, "file not found", retryable=False) from exc
        except (IsADirectoryError, PermissionError) as exc:
            raise HttpError(url, f"unreadable file: {exc.strerror}", retryable=False) from exc


def _too_large(url: str, detail: str) -> _Failure:
    return _Failure(HttpError(url, f"too large: {detail}", retryable=False))


def _failed(url: str, reason: str, *, retryable: bool) -> ImageResult:
    return ImageResult(url=url, status=ImageStatus.FAILED, reason=reason, retryable=retryable)


def _outcome(result: ImageResult) -> str:
    """Summary bucket of a result for the run's one log line."""
    if result.status == ImageStatus.OK:
        return "ok"
    return "failed (retryable)" if result.retryable else "failed"
