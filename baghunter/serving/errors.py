"""One JSON error shape for every failure: ``{"error": "<code>", "detail": "<sentence>"}``.

FastAPI answers its own errors (validation, 404, 405) in other shapes; the handlers here
replace them, so a client, the upload page included, parses exactly one format whatever
went wrong.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from baghunter.serving.schemas import ErrorBody

# Codes for the errors FastAPI/Starlette raise themselves.
_HTTP_STATUS_CODES = {
    404: "not_found",
    405: "method_not_allowed",
}


log = logging.getLogger(__name__)

# A client that sends its whole body before reading the answer (curl, requests, browsers)
# sees a connection reset, not a 413, when the server closes with the body half read. So
# the rest of a refused body is read and dropped first, unless it is huge or never ends.
DRAIN_MAX_BYTES = 64 * 1024 * 1024
DRAIN_MAX_S = 5.0


class ApiError(Exception):
    """A request that cannot be answered, with the status and code to answer it with.

    ``body_unread``: raised before the request body was read to its end (a size limit),
    so the handler drains what is left before answering.
    """

    def __init__(self, status: int, code: str, detail: str, *, body_unread: bool = False) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.body_unread = body_unread

    def body(self) -> ErrorBody:
        return ErrorBody(error=self.code, detail=self.detail)


def error_response(
    status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        ErrorBody(error=code, detail=detail).model_dump(), status_code=status, headers=headers
    )


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)  # registered for ApiError only
    if exc.body_unread:
        await _drain(request)
    return error_response(exc.status, exc.code, exc.detail)


async def _drain(request: Request) -> None:
    """Read and drop the rest of the request body, within DRAIN_MAX_BYTES and DRAIN_MAX_S."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > DRAIN_MAX_BYTES:
        return  # not worth receiving: the client gets the answer if it reads early
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_MAX_S
    received = 0
    while received <= DRAIN_MAX_BYTES:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        try:
            message = await asyncio.wait_for(request.receive(), remaining)
        except TimeoutError:
            return
        if message["type"] != "http.request":
            return  # the client went away
        received += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
    return error_response(exc.status_code, code, str(exc.detail), exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Name the offending parameters in one sentence instead of FastAPI's list of dicts.
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
    )
    return error_response(422, "invalid_request", problems or "The request is invalid.")


async def _client_disconnected(request: Request, exc: Exception) -> JSONResponse:
    # The client went away mid-upload: nobody reads this answer, and it is no server error.
    log.info("client disconnected during %s %s", request.method, request.url.path)
    return error_response(400, "client_disconnected", "The client disconnected mid-request.")


async def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    # No logging here: Starlette re-raises after this response, and the server logs it.
    return error_response(500, "internal_error", "The server failed to answer this request.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnected)
    app.add_exception_handler(Exception, _unexpected_error)
