"""Per-request accounting: one log line and the request metrics, for every response.

Written as a plain ASGI middleware rather than with ``@app.middleware("http")``: that
helper wraps the request and response in extra streams, and the upload endpoints read the
body as a stream to enforce their size limit while it arrives.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from baghunter.serving.metrics import ServiceMetrics

logger = logging.getLogger("baghunter.serving.access")

# Label for requests that matched no route: raw paths as labels would let any scanner
# create unbounded metric series.
UNMATCHED_ROUTE = "<unmatched>"


class RequestMetricsMiddleware:
    """Count and time each HTTP request by route template and status, and log it."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # Stays 500 if the app raises before answering (the error middleware answers 500).
        status = 500

        async def send_and_record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_record_status)
        finally:
            elapsed = time.perf_counter() - started
            route = route_label(scope)
            self.metrics.requests.inc(route, scope["method"], str(status))
            self.metrics.latency.observe(elapsed, route)
            logger.info("%s %s %d %.1f ms", scope["method"], scope["path"], status, elapsed * 1000)


def route_label(scope: Scope) -> str:
    """The matched route's path template (``/v1/predict``), set in the scope by routing."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ROUTE
