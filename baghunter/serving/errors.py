"""One JSON error shape for every failure: ``{"error": "<code>", "detail": "<sentence>"}``.

FastAPI answers its own errors (validation, 404, 405) in other shapes; the handlers here
replace them, so a client, the upload page included, parses exactly one format whatever
went wrong.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from baghunter.serving.schemas import ErrorBody

# Codes for the errors FastAPI/Starlette raise themselves.
_HTTP_STATUS_CODES = {
    404: "not_found",
    405: "method_not_allowed",
}


class ApiError(Exception):
    """A request that cannot be answered, with the status and code to answer it with."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail

    def body(self) -> ErrorBody:
        return ErrorBody(error=self.code, detail=self.detail)


def error_response(
    status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        ErrorBody(error=code, detail=detail).model_dump(), status_code=status, headers=headers
    )


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)  # registered for ApiError only
    return error_response(exc.status, exc.code, exc.detail)


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


async def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    # No logging here: Starlette re-raises after this response, and the server logs it.
    return error_response(500, "internal_error", "The server failed to answer this request.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
