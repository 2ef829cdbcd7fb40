"""The brand-recognition web service: app factory, lifespan and the ``serve`` entry point.

One process serves one registry alias (``models:/<model_name>@<model_alias>``). The app
starts even when no model holds the alias yet: ``/readyz`` and the ``/v1`` endpoints answer
503 until the background poller finds and loads one, so a deployment can come up before
the first model is trained and picks it up without a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from baghunter.config import Settings, get_settings
from baghunter.serving.batching import MicroBatcher
from baghunter.serving.errors import install_error_handlers
from baghunter.serving.holder import ModelHolder
from baghunter.serving.metrics import ServiceMetrics
from baghunter.serving.middleware import RequestMetricsMiddleware
from baghunter.serving.product_routes import catalog_router, product_router
from baghunter.serving.products import AttributeHolder, SimilarSearch
from baghunter.serving.routes import api_router, ops_router

STATIC_DIR = Path(__file__).resolve().parent / "static"


def create_app(settings: Settings | None = None, *, holder: ModelHolder | None = None) -> FastAPI:
    """Build the service for ``settings`` (default: the process settings).

    ``holder`` lets a caller supply the model holder (to share one, or to inspect it in
    tests); otherwise the lifespan creates one. Either way the app starts its poller on
    startup and stops it on shutdown.
    """
    settings = settings or get_settings()
    # Created here rather than in the lifespan because the middleware needs it at build
    # time; an injected holder brings its own, so its counters and the app's are the same.
    metrics = holder.metrics if holder is not None else ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        served_holder = holder or ModelHolder(settings, metrics)
        batcher = MicroBatcher(
            max_size=settings.batch_max_size,
            max_wait_s=settings.batch_max_wait_ms / 1000,
            metrics=metrics,
        )
        attribute_holder = AttributeHolder(settings, metrics)
        similar_search = SimilarSearch(settings)
        app.state.holder = served_holder
        app.state.batcher = batcher
        app.state.attribute_holder = attribute_holder
        app.state.similar_search = similar_search
        served_holder.start()
        attribute_holder.start()
        similar_search.start()
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()
            # Joining the pollers may wait for a load in progress: off the event loop.
            await asyncio.gather(
                asyncio.to_thread(served_holder.stop),
                asyncio.to_thread(attribute_holder.stop),
                asyncio.to_thread(similar_search.stop),
            )

    app = FastAPI(
        title="Bag Hunter brand recognizer",
        version=_package_version(),
        summary="Recognize the brand of a bag from a product photo.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    install_error_handlers(app)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    app.include_router(api_router)
    app.include_router(product_router)
    app.include_router(ops_router)
    app.include_router(catalog_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def upload_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    return app


def _package_version() -> str:
    try:
        return metadata.version("baghunter")
    except metadata.PackageNotFoundError:  # run from a source tree that was not installed
        return "0+unknown"


def serve(settings: Settings | None = None) -> None:
    """Run the service with uvicorn on ``serve_host:serve_port`` until interrupted."""
    import uvicorn

    settings = settings or get_settings()
    # uvicorn's access log is off: the service logs each request itself, with its latency.
    uvicorn.run(
        create_app(settings),
        host=settings.serve_host,
        port=settings.serve_port,
        access_log=False,
    )
