#!/usr/bin/env python3
"""Container health probe: exit 0 when a URL answers 2xx, 1 otherwise.

The slim Python images carry no curl or wget, and installing them only for health checks
would add a package set to patch; the interpreter is already there. Used by the images'
``HEALTHCHECK`` and the compose file's ``healthcheck`` entries::

    http-probe http://127.0.0.1:8000/healthz [--timeout 5]
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request


def probe(url: str, timeout_s: float) -> str | None:
    """None when ``url`` answers 2xx in time, else why not (Docker keeps it in the log)."""
    try:
        # urllib follows redirects and raises HTTPError for any other non-2xx answer, so
        # returning normally means success.
        with urllib.request.urlopen(url, timeout=timeout_s):
            return None
    except urllib.error.HTTPError as exc:
        return f"{url}: HTTP {exc.code}"
    except (OSError, ValueError) as exc:  # refused, reset, timeout, DNS, malformed URL
        return f"{url}: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Exit 0 when URL answers 2xx.")
    parser.add_argument("url")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    args = parser.parse_args(argv)
    failure = probe(args.url, args.timeout)
    if failure is not None:
        sys.stderr.write(failure + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
