"""The downloader against a real HTTP server on 127.0.0.1 that misbehaves on demand."""

from __future__ import annotations

import gzip
import hashlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from baghunter.catalog.schema import ImageResult, ImageStatus, ImageTask
from baghunter.config import Settings
from baghunter.images.cas import ContentStore
from baghunter.images.download import ImageDownloader
from baghunter.images.phash import hamming, phash
from baghunter.local.sample.server import Reply, Request, Route, RouteServer

from .synthetic import encode, png_bomb, scene

RETRIES = 2


def make_settings(home: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "home": home,
        "http_retries": RETRIES,
        "http_backoff_s": 0.01,
        "download_timeout_s": 5.0,
        "download_concurrency": 4,
        "fetch_allow_networks": ["127.0.0.1/32"],  # the test CDN runs on this machine
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


class Harness:
    """One test's view of the shared server: its own routes, store and recorded retry waits.

    Routes live under a prefix unique to the test, so tests share one server (starting and
    stopping one per test costs half a second each) without seeing each other's hits.
    """

    def __init__(self, server: RouteServer, home: Path) -> None:
        self.server = server
        self.home = home
        self.prefix = f"/{uuid.uuid4().hex[:12]}"
        self.cas = ContentStore(home / "images")
        self.sleeps: list[float] = []

    def serve(self, path: str, route: Route) -> str:
        """Serve ``route`` at ``path`` (may carry a query string, ignored for routing)."""
        self.server.routes[self.prefix + path.split("?")[0]] = route
        return self.server.url(self.prefix + path)

    def hits(self, path: str) -> int:
        return self.server.hits[self.prefix + path]

    def downloader(self, **overrides: object) -> ImageDownloader:
        settings = make_settings(self.home, **overrides)
        return ImageDownloader(self.cas, settings, sleep=self.sleeps.append)

    def fetch(self, path: str, route: Route, **overrides: object) -> ImageResult:
        url = self.serve(path, route)
        return self.downloader(**overrides).fetch_one(ImageTask(url=url))

    def stored_files(self) -> list[Path]:
        return sorted(p for p in self.cas.root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def server() -> Iterator[RouteServer]:
    server = RouteServer().start()
    yield server
    server.stop()


@pytest.fixture
def harness(server: RouteServer, tmp_path: Path) -> Harness:
    return Harness(server, tmp_path / "home")


def outcome(result: ImageResult) -> tuple[ImageStatus, str | None, bool]:
    return result.status, result.reason, result.retryable


def jpeg(seed: int = 1) -> bytes:
    return encode(scene(seed), "JPEG", quality=90)


def refused_port() -> int:
    """A local port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("fmt", "ext", "mime"),
    [("JPEG", "jpg", "image/jpeg"), ("PNG", "png", "image/png"), ("WEBP", "webp", "image/webp")],
)
def test_good_images_are_validated_stored_and_hashed(
    harness: Harness, fmt: str, ext: str, mime: str
) -> None:
    original = scene(2, size=(200, 150))
    data = encode(original, fmt)
    before = datetime.now(UTC)

    result = harness.fetch("/product", Reply(body=data, content_type=mime))

    assert result.status == ImageStatus.OK, result.reason
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.path is not None and result.path.endswith(f"/{result.sha256}.{ext}")
    assert harness.cas.path(result.path).read_bytes() == data
    assert (result.content_type, result.bytes) == (mime, len(data))
    assert (result.width, result.height) == (200, 150)
    assert result.phash is not None and hamming(result.phash, phash(original)) <= 6
    assert result.fetched_at is not None and before <= result.fetched_at <= datetime.now(UTC)
    assert outcome(result)[1:] == (None, False)


def test_not_found_fails_at_once_and_for_good(harness: Harness) -> None:
    result = harness.fetch("/gone.jpg", Reply(404, b"nope", content_type="text/plain"))
    assert outcome(result) == (ImageStatus.FAILED, "http 404", False)
    assert harness.hits("/gone.jpg") == 1
    assert harness.sleeps == []


def test_persistent_server_errors_fail_retryable_after_the_retries(harness: Harness) -> None:
    result = harness.fetch("/broken.jpg", Reply(500, b"oops"))
    assert outcome(result) == (ImageStatus.FAILED, "http 500", True)
    assert harness.hits("/broken.jpg") == RETRIES + 1
    assert len(harness.sleeps) == RETRIES


def test_a_transient_error_is_retried(harness: Harness) -> None:
    route = [Reply(503), Reply(body=jpeg(), content_type="image/jpeg")]
    result = harness.fetch("/flaky.jpg", route)
    assert result.status == ImageStatus.OK
    assert harness.hits("/flaky.jpg") == 2
    assert len(harness.sleeps) == 1


def test_rate_limits_wait_as_long_as_retry_after_says(harness: Harness) -> None:
    route = [
        Reply(429, headers={"Retry-After": "2"}),
        Reply(body=jpeg(), content_type="image/jpeg"),
    ]
    result = harness.fetch("/limited.jpg", route)
    assert result.status == ImageStatus.OK
    assert harness.sleeps == [pytest.approx(2.0)]


def test_a_stalled_server_times_out_retryable(harness: Harness) -> None:
    stalled = Reply(body=jpeg(), content_type="image/jpeg", delay_s=2.0)
    started = time.monotonic()
    result = harness.fetch("/stalled.jpg", stalled, download_timeout_s=0.5)
    assert result.status == ImageStatus.FAILED and result.retryable
    assert result.reason is not None and result.reason.startswith("timeout")
    assert harness.hits("/stalled.jpg") == RETRIES + 1
    # Each attempt gave up after the timeout instead of waiting for the 2 s reply.
    assert time.monotonic() - started < (RETRIES + 1) * 2.0


def test_a_trickling_body_is_cut_off_at_the_deadline(harness: Harness) -> None:
    # One byte every 0.1 s: no single read ever waits long enough to time out, so only a
    # deadline on the whole download ends it.
    listener = socket.create_server(("127.0.0.1", 0))
    served: list[int] = []

    def trickle() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                connection.recv(65536)
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n"
                )
                sent = 0
                try:
                    while sent < 100_000:
                        connection.sendall(b"x")
                        sent += 1
                        time.sleep(0.1)
                except OSError:  # the client hung up: the point of the test
                    pass
                served.append(sent)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/slow.jpg"
    started = time.monotonic()
    try:
        result = harness.downloader(download_timeout_s=1.0).fetch_one(ImageTask(url=url))
    finally:
        listener.close()
    elapsed = time.monotonic() - started
    assert result.status == ImageStatus.FAILED and result.retryable
    assert result.reason == "timeout: body not complete after 1 s"
    # Each of the attempts stopped at about its 1 s deadline (the body needs 10,000 s).
    assert elapsed < (RETRIES + 1) * 3


HTML_PAGE = b"<!doctype html><html><title>Sign in</title></html>"


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (jpeg()[: len(jpeg()) // 2], "image/jpeg", "truncated image"),
        (HTML_PAGE, "image/jpeg", "not an image: HTML page"),
        (jpeg(), "text/plain", "unexpected content type text/plain"),
        (jpeg(), "application/pdf", "unexpected content type application/pdf"),
    ],
    ids=["truncated", "html", "text-plain", "pdf"],
)
def test_bad_content_fails_not_retryable(
    harness: Harness, body: bytes, content_type: str, reason: str
) -> None:
    result = harness.fetch("/bad", Reply(body=body, content_type=content_type))
    assert outcome(result) == (ImageStatus.FAILED, reason, False)
    assert harness.stored_files() == []


def test_a_decompression_bomb_is_refused(harness: Harness) -> None:
    bomb = Reply(body=png_bomb(10_000, 5_000), content_type="image/png")
    result = harness.fetch("/bomb.png", bomb)
    assert result.status == ImageStatus.FAILED and not result.retryable
    assert result.reason is not None and result.reason.startswith("decompression bomb")


def test_a_body_over_the_limit_is_refused_from_its_content_length(harness: Harness) -> None:
    data = jpeg()
    reply = Reply(body=data, content_type="image/jpeg")
    result = harness.fetch("/huge.jpg", reply, max_image_bytes=len(data) - 1)
    reason = f"too large: {len(data)} bytes declared (limit {len(data) - 1})"
    assert outcome(result) == (ImageStatus.FAILED, reason, False)


def test_a_body_that_inflates_past_the_limit_is_cut_off_while_streaming(harness: Harness) -> None:
    # gzip makes Content-Length small while the decoded body is large: only counting the
    # bytes as they stream in can catch it.
    compressed = gzip.compress(bytes(2_000_000))
    assert len(compressed) < 100_000
    reply = Reply(body=compressed, content_type="image/jpeg", headers={"Content-Encoding": "gzip"})
    result = harness.fetch("/inflating.jpg", reply, max_image_bytes=100_000)
    reason = "too large: more than 100000 bytes received"
    assert outcome(result) == (ImageStatus.FAILED, reason, False)


def test_local_files_by_uri_and_by_path(harness: Harness, tmp_path: Path) -> None:
    image_file = tmp_path / "local photo.png"
    image_file.write_bytes(encode(scene(3), "PNG"))
    downloader = harness.downloader()

    by_uri = downloader.fetch_one(ImageTask(url=image_file.as_uri()))
    by_path = downloader.fetch_one(ImageTask(url=str(image_file)))
    missing = downloader.fetch_one(ImageTask(url=(tmp_path / "absent.jpg").as_uri()))

    assert by_uri.status == by_path.status == ImageStatus.OK
    assert by_uri.sha256 == by_path.sha256 == hashlib.sha256(image_file.read_bytes()).hexdigest()
    assert outcome(missing) == (ImageStatus.FAILED, "file not found", False)


def test_the_same_image_under_two_urls_is_stored_once(harness: Harness) -> None:
    data = jpeg(4)
    urls = [harness.serve(p, Reply(body=data, content_type="image/jpeg")) for p in ("/a", "/b")]

    results = list(harness.downloader().fetch_many(ImageTask(url=url) for url in urls))

    assert {r.status for r in results} == {ImageStatus.OK}
    assert len({(r.sha256, r.path) for r in results}) == 1
    assert len(harness.stored_files()) == 1


def test_fetching_again_does_not_rewrite_the_stored_file(harness: Harness) -> None:
    first = harness.fetch("/again.jpg", Reply(body=jpeg(5), content_type="image/jpeg"))
    assert first.path is not None
    stored = harness.cas.path(first.path).stat()

    second = harness.fetch("/again.jpg", Reply(body=jpeg(5), content_type="image/jpeg"))

    assert second.path == first.path
    again = harness.cas.path(first.path).stat()
    assert (again.st_ino, again.st_mtime_ns) == (stored.st_ino, stored.st_mtime_ns)


def test_a_local_fault_is_recorded_not_raised(harness: Harness, tmp_path: Path) -> None:
    not_a_directory = tmp_path / "images-file"
    not_a_directory.write_text("the image root is a file by mistake")
    url = harness.serve("/ok.jpg", Reply(body=jpeg(), content_type="image/jpeg"))
    downloader = ImageDownloader(ContentStore(not_a_directory), make_settings(harness.home))

    [result] = downloader.fetch_many([ImageTask(url=url)])

    assert result.status == ImageStatus.FAILED and result.retryable
    assert result.reason is not None and result.reason.startswith("internal error: ")


def test_a_mixed_batch_yields_one_result_per_task(harness: Harness, tmp_path: Path) -> None:
    server_error = Reply(500)
    login_page = Reply(body=b"<html>sign in</html>", content_type="image/jpeg")
    dead_port = refused_port()
    expected: dict[str, tuple[str | None, bool]] = {}  # url -> (reason prefix, retryable)
    for i in range(6):
        good = Reply(body=jpeg(10 + i), content_type="image/jpeg")
        cut = Reply(body=jpeg(20 + i)[:3000], content_type="image/jpeg")
        local = tmp_path / f"local-{i}.png"
        local.write_bytes(encode(scene(30 + i), "PNG"))
        expected |= {
            harness.serve(f"/good/{i}.jpg", good): (None, False),
            str(local): (None, False),
            harness.serve(f"/missing/{i}.jpg", Reply(404)): ("http 404", False),
            harness.serve(f"/error.jpg?i={i}", server_error): ("http 500", True),
            harness.serve(f"/cut/{i}.jpg", cut): ("truncated image", False),
            harness.serve(f"/login.jpg?i={i}", login_page): ("not an image: HTML page", False),
            (tmp_path / f"absent-{i}.jpg").as_uri(): ("file not found", False),
            f"ftp://example.invalid/{i}.jpg": ("unsupported URL scheme ftp", False),
            f"http://127.0.0.1:{dead_port}/{i}.jpg": ("connection error", True),
        }
    seen: list[ImageResult] = []

    tasks = [ImageTask(url=url) for url in expected]
    results = list(harness.downloader().fetch_many(tasks, progress=seen.append))

    assert seen == results
    assert sorted(r.url for r in results) == sorted(expected)
    for result in results:
        reason, retryable = expected[result.url]
        if reason is None:
            assert result.status == ImageStatus.OK, (result.url, result.reason)
        else:
            assert result.status == ImageStatus.FAILED
            assert result.reason is not None and result.reason.startswith(reason), result
            assert result.retryable == retryable, result


def test_requests_in_flight_never_exceed_the_concurrency(harness: Harness) -> None:
    data = jpeg(7)
    active = 0
    most_active = 0
    lock = threading.Lock()

    def slow_image(request: Request) -> Reply:
        nonlocal active, most_active
        with lock:
            active += 1
            most_active = max(most_active, active)
        time.sleep(0.1)
        with lock:
            active -= 1
        return Reply(body=data, content_type="image/jpeg")

    urls = [harness.serve(f"/slow.jpg?i={i}", slow_image) for i in range(12)]

    results = list(
        harness.downloader(download_concurrency=3).fetch_many(ImageTask(url=u) for u in urls)
    )

    assert [r.status for r in results] == [ImageStatus.OK] * 12
    assert 1 < most_active <= 3


def test_tasks_are_read_lazily(harness: Harness, tmp_path: Path) -> None:
    concurrency = 2
    pulled = 0

    def task_stream() -> Iterator[ImageTask]:
        nonlocal pulled
        for i in range(200):
            pulled += 1
            yield ImageTask(url=(tmp_path / f"absent-{i}.jpg").as_uri())

    results = harness.downloader(download_concurrency=concurrency).fetch_many(task_stream())
    first = next(results)
    pulled_before_first = pulled
    rest = list(results)

    assert first.reason == "file not found"
    # A small window ahead of the workers, never the whole stream up front.
    assert pulled_before_first <= 4 * concurrency
    assert len(rest) + 1 == pulled == 200


def test_a_callers_client_is_used_and_left_open(harness: Harness) -> None:
    agents: list[str] = []

    def image(request: Request) -> Reply:
        agents.append(request.headers.get("User-Agent", ""))
        return Reply(body=jpeg(8), content_type="image/jpeg")

    url = harness.serve("/shared.jpg", image)
    settings = make_settings(harness.home)
    with httpx.Client(headers={"User-Agent": "caller-agent"}, timeout=5) as client:
        downloader = ImageDownloader(harness.cas, settings, client=client)
        [result] = downloader.fetch_many([ImageTask(url=url)])
        assert not client.is_closed
    assert result.status == ImageStatus.OK
    assert agents == ["caller-agent"]


def test_the_default_client_identifies_itself(harness: Harness) -> None:
    agents: list[str] = []

    def image(request: Request) -> Reply:
        agents.append(request.headers.get("User-Agent", ""))
        return Reply(body=jpeg(9), content_type="image/jpeg")

    result = harness.fetch("/identified.jpg", image, user_agent="BagHunter-test/1")
    assert result.status == ImageStatus.OK
    assert agents == ["BagHunter-test/1"]
