"""A small threaded HTTP server on 127.0.0.1 that serves a table of routes.

It stands in for a retailer's listing API and image CDN in tests, in benchmarks and in the
demo's sample catalog: each route answers with fixed bytes or with a function of the
request, and may add latency or a sequence of failures (``429`` then ``200``...), so every
fault the ingestion pipeline must survive can be produced on demand, over real sockets.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Reply:
    """One HTTP answer."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # sleep before answering (slow CDN, or a timeout when long)
    content_type: str = "application/octet-stream"


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


# A route is a fixed reply, a list of replies given in turn (the last one repeats), or a
# function of the request.
Route = Reply | list[Reply] | Callable[[Request], Reply]


class RouteServer:
    """Serve ``routes`` (path -> Route) on 127.0.0.1 from a background thread."""

    def __init__(self, routes: dict[str, Route] | None = None, port: int = 0) -> None:
        self.routes: dict[str, Route] = dict(routes or {})
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real CDNs do

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                request = Request(parts.path, query, dict(self.headers.items()))
                reply = server._reply_for(request)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test); nothing to clean up

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # keep test and demo output clean

        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def _reply_for(self, request: Request) -> Reply:
        with self._lock:
            count = self.hits[request.path]
            self.hits[request.path] += 1
            route = self.routes.get(request.path)
        if route is None:
            return Reply(404, b'{"error": "not found"}', content_type="application/json")
        if isinstance(route, Reply):
            return route
        if isinstance(route, list):
            return route[min(count, len(route) - 1)]
        return route(request)

    def start(self) -> RouteServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def serve_forever(self) -> None:
        """Block serving (the CLI's ``sample-catalog serve``)."""
        self._httpd.serve_forever()


@contextmanager
def serving(routes: dict[str, Route] | None = None) -> Iterator[RouteServer]:
    server = RouteServer(routes).start()
    try:
        yield server
    finally:
        server.stop()
