"""Decide whether downloaded bytes are a usable product photo, before anything is stored.

Catalog image URLs fail in many ways that still answer ``200 OK``: a CDN error page served
as ``image/jpeg``, a login redirect to HTML, a half-written file, a thumbnail placeholder,
or a hostile "decompression bomb" (a tiny file that decodes to gigabytes). Each is refused
here with a short reason an operator can act on, so a bad URL is recorded as failed instead
of poisoning the dataset or exhausting a worker's memory.

Nothing here changes Pillow's global state (``Image.MAX_IMAGE_PIXELS``,
``ImageFile.LOAD_TRUNCATED_IMAGES``, warning filters): the downloader validates from many
threads at once, and other code in the process may rely on Pillow's defaults.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

# The formats a training pipeline can decode everywhere; the value is (extension, MIME).
SUPPORTED_FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
    "GIF": ("gif", "image/gif"),
}

# Storage services (S3 among them) label uploads this way when nobody set a type, so these
# say nothing about the content; the bytes decide.
GENERIC_BINARY_TYPES = frozenset({"application/octet-stream", "binary/octet-stream"})

# How much of the body is examined when sniffing for text; markup announces itself early.
_SNIFF_BYTES = 1024


class InvalidImage(ValueError):
    """The bytes are not an acceptable image; ``reason`` is short and operator-readable."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ImageInfo:
    """What validation learned about an acceptable image (from its header)."""

    format: str  # Pillow's format name, e.g. "JPEG"
    ext: str  # file extension used in the content-addressed store, e.g. "jpg"
    width: int
    height: int
    mime: str  # the MIME type of the actual content, whatever the server claimed


def validate_image(
    data: bytes,
    *,
    content_type: str | None,
    max_bytes: int,
    max_pixels: int,
    min_side: int,
) -> ImageInfo:
    """Check ``data`` cheaply first, then fully decode it; raise :class:`InvalidImage` if unfit.

    ``content_type`` is the server's ``Content-Type`` header (None for local files). Checks
    run from cheapest to dearest so that junk is refused before any decoding, and the pixel
    count is checked from the header before the pixels are allocated.
    """
    if not data:
        raise InvalidImage("empty body")
    if len(data) > max_bytes:
        raise InvalidImage(f"too large: {len(data)} bytes (limit {max_bytes})")
    _check_content_type(content_type)
    text_kind = sniff_text(data)
    if text_kind is not None:
        raise InvalidImage(f"not an image: {text_kind}")

    try:
        # Lazy: reads the header only. Pillow's own bomb guard (far above any sane photo)
        # may still fire here, as an error or, with strict warning filters, a warning.
        image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImage(f"decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise InvalidImage("unrecognized image format") from exc
    except Exception as exc:  # Pillow's parsers raise many types on hostile input
        raise InvalidImage(f"undecodable image: {exc}") from exc

    with image:
        fmt = image.format or "unknown"
        if fmt not in SUPPORTED_FORMATS:
            raise InvalidImage(f"unsupported format {fmt}")
        width, height = image.size
        if width * height > max_pixels:
            raise InvalidImage(f"decompression bomb: {width}x{height} pixels (limit {max_pixels})")
        if min(width, height) < min_side:
            raise InvalidImage(f"too small: {width}x{height} (min side {min_side})")
        _decode_fully(image)

    ext, mime = SUPPORTED_FORMATS[fmt]
    return ImageInfo(format=fmt, ext=ext, width=width, height=height, mime=mime)


def _check_content_type(content_type: str | None) -> None:
    """Refuse a declared type that is neither an image nor generic binary."""
    if not content_type:
        return
    media_type = content_type.split(";", 1)[0].strip().lower()
    if not media_type or media_type.startswith("image/") or media_type in GENERIC_BINARY_TYPES:
        return
    raise InvalidImage(f"unexpected content type {media_type}")


def sniff_text(data: bytes) -> str | None:
    """Name the kind of text document ``data`` is ("HTML page"...), or None if it is not one.

    Servers routinely label error and login pages ``image/jpeg``, so the header cannot be
    trusted; but every supported image format starts with binary magic bytes, which never
    begin with ``<``, ``{`` or ``[`` - so looking at the first characters is conclusive.
    """
    head = data[:_SNIFF_BYTES].removeprefix(b"\xef\xbb\xbf").lstrip().lower()  # UTF-8 BOM
    if head.startswith(b"<"):
        if b"<html" in head or b"<!doctype html" in head:
            return "HTML page"
        if b"<svg" in head:
            return "SVG document"
        return "XML document"
    if head.startswith((b"{", b"[")):
        return "JSON document"
    return None


def _decode_fully(image: Image.Image) -> None:
    """Decode every pixel, so a truncated or corrupt file is caught now, not in training."""
    try:
        image.load()
    except OSError as exc:
        # Pillow reports a short file as "image file is truncated (...)"; we keep its
        # default (LOAD_TRUNCATED_IMAGES off) so this always raises instead of padding grey.
        if "truncated" in str(exc):
            raise InvalidImage("truncated image") from exc
        raise InvalidImage(f"undecodable image: {exc}") from exc
    except Exception as exc:  # Pillow's decoders raise many types on corrupt data
        raise InvalidImage(f"undecodable image: {exc}") from exc


def decode_rgb(data: bytes, max_side: int | None = None) -> Image.Image:
    """Decode validated image bytes to an upright RGB image, as a shopper would see it.

    ``max_side``: scale the image down to at most this many pixels a side.

    Phone and camera photos are often stored sideways with an EXIF orientation tag that
    viewers honour; hashing or training on the stored pixels would see them rotated.
    Transparent cut-outs (common in PNG catalogs) are flattened onto white, as the shop
    page shows them; a plain RGB conversion would reveal whatever colour the transparent
    pixels happen to hold, often black.
    """
    with Image.open(io.BytesIO(data)) as opened:
        if max_side is not None and max(opened.size) > max_side:
            # Scaled down first, while decoding where the format allows (JPEG decodes at a
            # fraction of its size): no full-size copy is converted or rotated.
            opened.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
        upright = ImageOps.exif_transpose(opened)
    has_alpha = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
    if not has_alpha:
        return upright.convert("RGB")
    foreground = upright.convert("RGBA")
    canvas = Image.new("RGBA", foreground.size, (255, 255, 255, 255))
    canvas.alpha_composite(foreground)
    return canvas.convert("RGB")
