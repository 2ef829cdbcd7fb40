"""Bad uploads get the right status and the one JSON error shape, and never hurt the server."""

from __future__ import annotations

import io
import json
import socket
import struct
import time
import zlib
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.serving.conftest import (
    COLOURS,
    MAX_UPLOAD_BYTES,
    Service,
    assert_error,
    photo,
    series,
)

RED = COLOURS["Red Brand"]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def bomb_png(side: int = 100_000) -> bytes:
    """A valid PNG header announcing ``side``x``side`` pixels (30 GB decoded), in 70 bytes."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _png_chunk(b"IEND", b"")
    )


def noise(side: int, fmt: str = "PNG") -> bytes:
    """Random pixels: they do not compress (a PNG takes about 3 bytes per pixel)."""
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()


def _multipart(name: str, data: bytes, content_type: str) -> dict[str, Any]:
    return {"files": {"file": (name, data, content_type)}}


def _raw(data: bytes, content_type: str | None) -> dict[str, Any]:
    headers = {} if content_type is None else {"Content-Type": content_type}
    return {"content": data, "headers": headers}


TOO_BIG = noise(300)
TRUNCATED = noise(64, "JPEG")[:-2000]  # header intact, pixels cut short
assert len(TOO_BIG) > MAX_UPLOAD_BYTES  # the premise of the 413 cases

CASES = {
    "text file": (_multipart("notes.txt", b"hello", "text/plain"), 415, "unsupported_media_type"),
    "raw text body": (_raw(b"hello", "text/plain"), 415, "unsupported_media_type"),
    "raw gif body": (_raw(photo(RED, "GIF"), "image/gif"), 415, "unsupported_media_type"),
    "gif labelled as binary": (
        _multipart("bag.gif", photo(RED, "GIF"), "application/octet-stream"),
        415,
        "unsupported_format",
    ),
    "html labelled as jpeg": (
        _multipart("bag.jpg", b"<!doctype html><html>Sign in</html>", "image/jpeg"),
        415,
        "not_an_image",
    ),
    "garbage labelled as png": (
        _multipart("bag.png", b"\x00\x01garbage" * 50, "image/png"),
        400,
        "undecodable_image",
    ),
    "truncated jpeg": (
        _raw(TRUNCATED, "image/jpeg"),
        400,
        "truncated_image",
    ),
    "empty file": (_multipart("bag.png", b"", "image/png"), 400, "empty_file"),
    "empty raw body": (_raw(b"", "image/png"), 400, "empty_file"),
    "tiny image": (
        _multipart("bag.png", photo(RED, size=(4, 4)), "image/png"),
        400,
        "image_too_small",
    ),
    "oversized file": (_multipart("big.png", TOO_BIG, "image/png"), 413, "too_large"),
    "oversized raw body": (_raw(TOO_BIG, "image/png"), 413, "too_large"),
    "decompression bomb": (
        _multipart("bomb.png", bomb_png(), "image/png"),
        413,
        "decompression_bomb",
    ),
    "photo in the wrong field": (
        {"files": {"photo": ("bag.png", photo(RED), "image/png")}},
        422,
        "missing_file",
    ),
    "url-encoded form": ({"data": {"comment": "forgot the photo"}}, 422, "missing_file"),
    "file field sent as text": ({"files": {"file": (None, "red")}}, 422, "missing_file"),
    "empty request": ({}, 422, "missing_file"),
    "broken multipart": (
        _raw(b"--x\r\nnonsense", "multipart/form-data"),  # no boundary parameter
        400,
        "invalid_multipart",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_upload_is_refused_with_json(service: Service, case: str) -> None:
    request, status, code = CASES[case]

    assert_error(service.client.post("/v1/predict", **request), status, code)


def test_invalid_query_uses_the_same_error_shape(service: Service) -> None:
    files = {"file": ("bag.png", photo(RED), "image/png")}

    assert_error(
        service.client.post("/v1/predict", params={"k": 0}, files=files), 422, "invalid_request"
    )
    assert_error(
        service.client.post("/v1/predict", params={"k": "x"}, files=files), 422, "invalid_request"
    )


def test_unknown_routes_use_the_same_error_shape(service: Service) -> None:
    assert_error(service.client.get("/v1/nothing-here"), 404, "not_found")
    assert_error(service.client.get("/v1/predict"), 405, "method_not_allowed")


def _first_response_line(sock: socket.socket) -> bytes:
    sock.settimeout(15)
    return sock.recv(4096).split(b"\r\n", 1)[0]


def test_declared_oversized_body_is_refused_before_it_is_sent(service: Service) -> None:
    host, port = service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /v1/predict HTTP/1.1\r\nHost: test\r\nContent-Type: image/png\r\n"
            b"Content-Length: 1000000000000\r\n\r\n"
        )
        # Not a byte of the terabyte is sent: the answer must come from the header alone.
        assert _first_response_line(sock).startswith(b"HTTP/1.1 413")


def test_streamed_oversized_body_is_cut_off_while_arriving(service: Service) -> None:
    host, port = service.url.removeprefix("http://").split(":")
    chunk = b"\0" * 32_768
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /v1/predict HTTP/1.1\r\nHost: test\r\nContent-Type: image/png\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        sent = 0
        while sent <= MAX_UPLOAD_BYTES:
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent += len(chunk)
        # The body never ends (no final chunk): only a server that counts bytes as they
        # arrive can answer now; one that waits for the whole body would time out.
        assert _first_response_line(sock).startswith(b"HTTP/1.1 413")


@pytest.mark.parametrize("multipart", [False, True], ids=["raw body", "multipart"])
def test_a_client_that_sends_the_whole_oversized_body_first_reads_the_413(
    service: Service, multipart: bool
) -> None:
    # What curl, requests and browsers do: send everything, then read. A server that closes
    # with most of the body unread makes the client's kernel see a reset, not the answer.
    body = b"\xff" * (24 * 1024 * 1024)  # far beyond what socket buffers absorb
    if multipart:
        boundary = "bh-test-boundary"
        body = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=file; filename=big.png\r\n"
            f"Content-Type: image/png\r\n\r\n".encode()
            + body
            + f"\r\n--{boundary}--\r\n".encode()
        )
        content_type = f"multipart/form-data; boundary={boundary}"
    else:
        content_type = "image/png"
    host, port = service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            f"POST /v1/predict HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        sock.sendall(body)  # raises (broken pipe, reset) if the server hung up early
        answer = _whole_response(sock)
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert json.loads(payload)["error"] == "too_large"


def test_a_client_that_hangs_up_mid_upload_is_not_a_server_error(service: Service) -> None:
    errors = series(
        "baghunter_http_requests_total", route="/v1/predict", method="POST", status="500"
    )
    gone = series("baghunter_http_requests_total", route="/v1/predict", method="POST", status="400")
    before = service.scrape()
    host, port = service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /v1/predict HTTP/1.1\r\nHost: test\r\nContent-Type: image/png\r\n"
            b"Content-Length: 150000\r\n\r\n" + b"\x89PNG" + b"\0" * 20_000
        )
    # Counted as the client's doing (400), never as a server error.
    deadline = time.monotonic() + 10
    while service.scrape().get(gone, 0) == before.get(gone, 0) and time.monotonic() < deadline:
        time.sleep(0.1)
    after = service.scrape()
    assert after.get(gone, 0) == before.get(gone, 0) + 1
    assert after.get(errors, 0) == before.get(errors, 0)


def _whole_response(sock: socket.socket) -> bytes:
    """Everything the server sends until the body its Content-Length announces is in."""
    sock.settimeout(15)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_server_still_serves_after_bad_input(service: Service) -> None:
    for request, _, _ in CASES.values():
        service.client.post("/v1/predict", **request)

    assert service.client.get("/healthz").status_code == 200
    response = service.client.post(
        "/v1/predict", files={"file": ("bag.png", photo(RED), "image/png")}
    )
    assert response.status_code == 200
    assert response.json()["predictions"][0]["brand"] == "Red Brand"
