"""Reading uploaded photos off the wire and turning them into model input.

Two rules shape this module. First, size limits are enforced *while* the body arrives: a
declared ``Content-Length`` over the limit is refused before a byte is read, and a body
without one is cut off as soon as it passes the limit, so a client cannot make a replica
buffer a gigabyte (or spool it to disk, as multipart parsing otherwise would). Second, the
bytes are judged by the same validator the downloader uses
(:func:`baghunter.images.validate.validate_image`), so a photo the service accepts is one the
training pipeline would have accepted too; decompression bombs are refused from the header,
before any pixel is allocated.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from PIL import Image
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from baghunter.config import Settings
from baghunter.images.validate import InvalidImage, decode_rgb, validate_image
from baghunter.serving.errors import ApiError

# Formats the service scores (Pillow names). GIF passes the shared validator (catalogs use
# it) but an animated upload is ambiguous, so the service asks for a still photo instead.
SERVED_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})

# Media types accepted as a raw request body. "image/jpg" is not registered but some
# browsers and phones send it; "image/pjpeg" is what old Internet Explorer sent.
RAW_IMAGE_TYPES = frozenset({"image/jpeg", "image/jpg", "image/pjpeg", "image/png", "image/webp"})

# A multipart file part may also be unlabelled or generic binary (curl -F does that): the
# bytes decide, exactly as for downloaded catalog images.
PART_TYPES = RAW_IMAGE_TYPES | {"", "application/octet-stream", "binary/octet-stream"}

# What a request without any file looks like: no body type, or an HTML form sent without
# enctype="multipart/form-data" (its text fields only).
NO_FILE_TYPES = frozenset({"", "application/x-www-form-urlencoded"})

# Room for multipart boundaries and part headers on top of the file bytes themselves.
MULTIPART_OVERHEAD_BYTES = 16 * 1024

# The validator's reasons, by prefix, mapped to an HTTP status and a stable error code.
# Matching on wording is a coupling, so anything unmatched still gets a sound 400.
_REASONS: tuple[tuple[str, int, str], ...] = (
    ("empty body", 400, "empty_file"),
    ("too large", 413, "too_large"),
    ("unexpected content type", 415, "unsupported_media_type"),
    ("not an image", 415, "not_an_image"),
    ("unsupported format", 415, "unsupported_format"),
    ("decompression bomb", 413, "decompression_bomb"),
    ("too small", 400, "image_too_small"),
    ("truncated image", 400, "truncated_image"),
    ("unrecognized image format", 400, "undecodable_image"),
    ("undecodable image", 400, "undecodable_image"),
)


class PixelBudget:
    """Pixels being decoded at once across all requests of the replica.

    Decoding a photo briefly needs several times its pixel count in memory (the
    validator's decode, the RGB conversion, an alpha flattening). Six 40-megapixel PNGs
    in one batch, or six clients at once, would each take that at the same moment; with a
    budget, the later ones wait their turn instead of growing the process by gigabytes.
    """

    def __init__(self, pixels: int) -> None:
        self.pixels = pixels
        self._free = pixels
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        need = min(pixels, self.pixels)  # one photo larger than the budget runs alone
        with self._changed:
            self._changed.wait_for(lambda: self._free >= need)
            self._free -= need
        try:
            yield
        finally:
            with self._changed:
                self._free += need
                self._changed.notify_all()


# Decoding runs on a few threads of its own rather than on the server's shared pool: the
# memory a thread's decode frees stays in that thread's allocator arena, so 40 threads
# taking turns would each keep a photo's worth of memory. A batch of six 20-megapixel PNGs
# after one warm-up request grew the server by 1,149 MB decoded all at once and kept
# whole, 359 MB budgeted and scaled down on the shared pool, and 17 MB on these threads
# (tests/serving/test_upload_memory.py prints it).
DECODE_THREADS = 2
_decode_pool = ThreadPoolExecutor(max_workers=DECODE_THREADS, thread_name_prefix="decode")


async def decode_off_loop(upload: Upload, limits: UploadLimits) -> np.ndarray:
    """:func:`decode_upload` on the decoding threads, without blocking the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_decode_pool, decode_upload, upload, limits)


_budgets: dict[int, PixelBudget] = {}
_budgets_lock = threading.Lock()


def pixel_budget(pixels: int) -> PixelBudget:
    """The replica's one budget of this size (one per process, shared by all requests)."""
    with _budgets_lock:
        return _budgets.setdefault(pixels, PixelBudget(pixels))


@dataclass(frozen=True)
class UploadLimits:
    """What an upload may be; taken from the settings shared with the downloader."""

    max_bytes: int
    max_pixels: int
    min_side: int
    max_side: int = 1024  # decoded photos are scaled down to this
    decode_pixels: int = 80_000_000  # see PixelBudget

    @classmethod
    def from_settings(cls, settings: Settings) -> UploadLimits:
        return cls(
            max_bytes=settings.max_upload_bytes,
            max_pixels=settings.serve_max_image_pixels,
            min_side=settings.min_image_side,
            max_side=settings.serve_max_image_side,
            decode_pixels=settings.serve_decode_pixels,
        )


@dataclass(frozen=True)
class Upload:
    """One uploaded file's bytes, with what the client said about them."""

    data: bytes
    content_type: str
    filename: str | None = None


def media_type(content_type: str | None) -> str:
    """``"image/jpeg"`` from ``"Image/JPEG; charset=binary"``; ``""`` when absent."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413, "too_large", f"The upload is larger than the {limit}-byte limit.", body_unread=True
    )


def check_declared_length(headers: Headers, limit: int) -> None:
    """Refuse a body whose declared length is already over ``limit``, before reading it."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)


async def limited(stream: AsyncIterator[bytes], limit: int) -> AsyncGenerator[bytes, None]:
    """Pass ``stream`` through, raising 413 as soon as more than ``limit`` bytes went by."""
    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > limit:
            raise _too_large(limit)
        yield chunk


def _missing_file(field: str) -> ApiError:
    return ApiError(
        422,
        "missing_file",
        f"No photo was sent: upload it as multipart form field '{field}', or send it as "
        "the request body with its image content type.",
    )


async def read_single_upload(request: Request, field: str, limits: UploadLimits) -> Upload:
    """The one photo of a request: multipart field ``field``, or the raw body."""
    content_type = media_type(request.headers.get("content-type"))
    if content_type == "multipart/form-data":
        uploads = await read_form_files(request, field, max_files=1, limits=limits)
        if not uploads:
            raise _missing_file(field)
        return uploads[0]
    if content_type in NO_FILE_TYPES:
        raise _missing_file(field)
    # Refused before the body is read: there is no point receiving what cannot be scored.
    check_media_type(content_type, RAW_IMAGE_TYPES)
    return await read_raw_image(request, limits)


async def read_photo(request: Request, limits: UploadLimits) -> np.ndarray:
    """The request's one photo, read (:func:`read_single_upload`) and decoded off the loop."""
    upload = await read_single_upload(request, "file", limits)
    return await decode_off_loop(upload, limits)


async def read_batch_uploads(
    request: Request, field: str, *, max_files: int, limits: UploadLimits
) -> list[Upload]:
    """The photos of a batch request: every file of multipart field ``field``, in order."""
    content_type = media_type(request.headers.get("content-type"))
    if content_type in NO_FILE_TYPES:
        raise _missing_file(field)
    if content_type != "multipart/form-data":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Send the photos as multipart/form-data, one '{field}' field per photo.",
        )
    uploads = await read_form_files(request, field, max_files=max_files, limits=limits)
    if not uploads:
        raise _missing_file(field)
    return uploads


async def read_raw_image(request: Request, limits: UploadLimits) -> Upload:
    """The request body itself is the photo (``Content-Type: image/...``)."""
    check_declared_length(request.headers, limits.max_bytes)
    body = bytearray()
    async for chunk in limited(request.stream(), limits.max_bytes):
        body.extend(chunk)
    return Upload(bytes(body), media_type(request.headers.get("content-type")))


async def read_form_files(
    request: Request, field: str, *, max_files: int, limits: UploadLimits
) -> list[Upload]:
    """The files sent in multipart ``field``, in order; other fields are ignored.

    The whole body is capped at what ``max_files`` files of the allowed size need; each
    file is then held to the per-file limit by :func:`decode_upload`, so in a batch an
    oversized file fails alone while the others are still scored.
    """
    uploads, _ = await read_form(
        request, field, max_files=max_files, max_fields=max_files, limits=limits
    )
    return uploads


async def read_form(
    request: Request, field: str, *, max_files: int, max_fields: int, limits: UploadLimits
) -> tuple[list[Upload], dict[str, str]]:
    """The files of multipart ``field`` and the form's text fields (name -> value)."""
    body_limit = max_files * (limits.max_bytes + MULTIPART_OVERHEAD_BYTES) + max_fields * 1024
    check_declared_length(request.headers, body_limit)
    parser = MultiPartParser(
        request.headers,
        limited(request.stream(), body_limit),
        max_files=max_files,
        max_fields=max_fields,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise ApiError(400, "invalid_multipart", str(exc)) from exc
    try:
        uploads = []
        for value in form.getlist(field):
            if not isinstance(value, UploadFile):
                raise ApiError(
                    422, "missing_file", f"Form field '{field}' must be a file, not text."
                )
            data = await value.read()
            uploads.append(Upload(data, media_type(value.content_type), value.filename))
        texts = {name: value for name, value in form.multi_items() if isinstance(value, str)}
        return uploads, texts
    finally:
        await form.close()


def check_media_type(content_type: str, accepted: frozenset[str]) -> None:
    """Refuse a declared type the service never scores, before looking at the bytes."""
    if content_type not in accepted:
        shown = content_type or "no content type"
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Expected a JPEG, PNG or WebP photo, got {shown}.",
        )


def decode_upload(upload: Upload, limits: UploadLimits) -> np.ndarray:
    """Validate the bytes and decode them to an upright ``(h, w, 3)`` uint8 RGB array.

    CPU-bound (a full decode for validation, then the RGB decode): call it off the event
    loop. Raises :class:`ApiError` with the status that fits the problem.
    """
    check_media_type(upload.content_type, PART_TYPES)
    with pixel_budget(limits.decode_pixels).hold(_declared_pixels(upload.data)):
        try:
            info = validate_image(
                upload.data,
                content_type=upload.content_type or None,
                max_bytes=limits.max_bytes,
                max_pixels=limits.max_pixels,
                min_side=limits.min_side,
            )
        except InvalidImage as exc:
            raise _api_error_for(exc.reason) from exc
        if info.format not in SERVED_FORMATS:
            raise ApiError(
                415,
                "unsupported_format",
                f"{info.format} images are not accepted; send a JPEG, PNG or WebP photo.",
            )
        try:
            # Kept small: the request holds this array until it is answered.
            image = decode_rgb(upload.data, max_side=limits.max_side)
        except Exception as exc:  # Pillow raises many types on input that slipped validation
            raise ApiError(
                400, "undecodable_image", f"The image could not be decoded: {exc}"
            ) from exc
        return np.asarray(image, dtype=np.uint8)


def check_batch_pixels(uploads: list[Upload], limit: int) -> None:
    """Refuse a batch whose photos together declare more than ``limit`` pixels."""
    total = sum(_declared_pixels(upload.data) for upload in uploads)
    if total > limit:
        raise ApiError(
            413,
            "batch_too_large",
            f"The batch's photos hold {total} pixels together, more than the {limit} a "
            "batch may; send fewer or smaller photos per request.",
        )


def _declared_pixels(data: bytes) -> int:
    """The pixel count an image's header declares (0 when it has no readable header)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Exception:  # the validator will say what is wrong with it
        return 0
    return width * height


def _api_error_for(reason: str) -> ApiError:
    for prefix, status, code in _REASONS:
        if reason.startswith(prefix):
            return ApiError(status, code, f"The upload was refused: {reason}.")
    return ApiError(400, "invalid_image", f"The upload was refused: {reason}.")
