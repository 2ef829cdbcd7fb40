"""Validation refuses each kind of bad download with its own reason, and decodes good ones."""

from __future__ import annotations

import struct
import zlib

import pytest
from PIL import Image

from baghunter.images.validate import ImageInfo, InvalidImage, decode_rgb, validate_image

from .synthetic import encode, png_bomb, scene

LIMITS = {"max_bytes": 5_000_000, "max_pixels": 40_000_000, "min_side": 16}


def check(data: bytes, content_type: str | None = "image/jpeg", **limits: int) -> ImageInfo:
    return validate_image(data, content_type=content_type, **{**LIMITS, **limits})


def reason_for(data: bytes, content_type: str | None = "image/jpeg", **limits: int) -> str:
    with pytest.raises(InvalidImage) as caught:
        check(data, content_type, **limits)
    return caught.value.reason


@pytest.mark.parametrize(
    ("fmt", "ext", "mime"),
    [
        ("JPEG", "jpg", "image/jpeg"),
        ("PNG", "png", "image/png"),
        ("WEBP", "webp", "image/webp"),
        ("GIF", "gif", "image/gif"),
    ],
)
def test_supported_formats_are_described_from_their_content(fmt: str, ext: str, mime: str) -> None:
    data = encode(scene(1, size=(90, 60)), fmt)
    # The declared type is deliberately wrong for most formats: the bytes decide.
    assert check(data, "image/jpeg") == ImageInfo(fmt, ext, 90, 60, mime)


@pytest.mark.parametrize(
    "content_type",
    [None, "", "application/octet-stream", "binary/octet-stream", "IMAGE/PNG; charset=binary"],
)
def test_absent_or_generic_content_types_are_accepted(content_type: str | None) -> None:
    assert check(encode(scene(2), "PNG"), content_type).format == "PNG"


def test_empty_body() -> None:
    assert reason_for(b"") == "empty body"


def test_body_over_the_byte_limit() -> None:
    data = encode(scene(3), "PNG")
    assert reason_for(data, max_bytes=len(data) - 1).startswith("too large")
    assert check(data, max_bytes=len(data)).format == "PNG"


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/pdf"])
def test_declared_non_image_type_is_refused_even_for_image_bytes(content_type: str) -> None:
    reason = reason_for(encode(scene(4), "JPEG"), content_type)
    assert reason == f"unexpected content type {content_type.split(';')[0]}"


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"<!DOCTYPE html><html><body>Access denied</body></html>", "HTML page"),
        (b"\xef\xbb\xbf\n  <html lang='en'><head></head></html>", "HTML page"),
        (b'<?xml version="1.0"?><Error><Code>NoSuchKey</Code></Error>', "XML document"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', "SVG document"),
        (b'{"error": "rate limited"}', "JSON document"),
    ],
)
def test_text_served_as_an_image_is_named(body: bytes, kind: str) -> None:
    assert reason_for(body, "image/jpeg") == f"not an image: {kind}"


def test_unrecognized_bytes() -> None:
    assert reason_for(bytes(range(256)) * 8) == "unrecognized image format"


@pytest.mark.parametrize("fmt", ["BMP", "TIFF"])
def test_decodable_but_unsupported_formats(fmt: str) -> None:
    assert reason_for(encode(scene(5), fmt)) == f"unsupported format {fmt}"


def test_truncated_files_fail_the_full_decode() -> None:
    for fmt in ("JPEG", "PNG", "GIF"):
        data = encode(scene(6), fmt)
        assert reason_for(data[: len(data) // 2]) == "truncated image", fmt


def test_decompression_bomb_is_refused_from_its_header_without_decoding() -> None:
    bomb = png_bomb(10_000, 5_000)
    assert len(bomb) < 200_000  # the point of a bomb: tiny on the wire
    before = Image.core.get_stats()
    reason = reason_for(bomb, "image/png")
    after = Image.core.get_stats()
    assert reason.startswith("decompression bomb")
    # Pillow allocates pixel memory in blocks; decoding 50 megapixels would take several.
    blocks = ("allocated_blocks", "reused_blocks")
    allocated = sum(after[key] - before[key] for key in blocks) * Image.core.get_block_size()
    assert allocated < 10_000 * 5_000


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` but whose pixel data stops at once."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + payload))
        return struct.pack(">I", len(payload)) + kind + payload + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(bytes(64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)


def test_pillows_own_bomb_guard_is_reported_and_left_unchanged() -> None:
    limit = Image.MAX_IMAGE_PIXELS
    assert limit is not None
    # Far beyond Pillow's hard limit, which fires inside Image.open even if ours is higher.
    huge = _png_header_only(50_000, 50_000)
    assert reason_for(huge, max_pixels=10**12).startswith("decompression bomb")
    assert Image.MAX_IMAGE_PIXELS == limit


def test_images_below_the_minimum_side() -> None:
    data = encode(scene(7, size=(120, 12)), "PNG")
    assert reason_for(data, min_side=16) == "too small: 120x12 (min side 16)"
    assert check(data, min_side=12).height == 12


def test_decode_rgb_applies_the_exif_orientation() -> None:
    image = scene(8, size=(80, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: stored rotated, display turned 90 degrees clockwise
    decoded = decode_rgb(encode(image, "JPEG", exif=exif.tobytes()))
    assert decoded.mode == "RGB"
    assert decoded.size == (40, 80)


def test_decode_rgb_flattens_transparency_onto_white() -> None:
    cutout = Image.new("RGBA", (32, 32), (0, 0, 0, 0))  # transparent black
    cutout.paste((200, 10, 10, 255), (8, 8, 24, 24))
    decoded = decode_rgb(encode(cutout, "PNG"))
    assert decoded.mode == "RGB"
    assert decoded.getpixel((0, 0)) == (255, 255, 255)
    assert decoded.getpixel((16, 16)) == (200, 10, 10)


def test_decode_rgb_converts_palette_images() -> None:
    palette_image = scene(9, size=(40, 30)).convert("P", palette=Image.Palette.ADAPTIVE)
    decoded = decode_rgb(encode(palette_image, "GIF"))
    assert decoded.mode == "RGB"
    assert decoded.size == (40, 30)
