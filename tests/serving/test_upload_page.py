"""The upload page in a real headless Chromium, against the real service.

Needs Debian's Chromium at /usr/bin/chromium and the ``playwright`` Python package (its
own browser download is not used).
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest

from baghunter import registry
from tests.serving.conftest import COLOURS, GREY, Service, product_photo

pytestmark = pytest.mark.browser

PERCENT = re.compile(r"^\d{1,3}\.\d%$")


def test_upload_shows_the_top_brands(
    page: Any, service: Service, champion: registry.ModelRef, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    red = tmp_path / "red-bag.png"
    red.write_bytes(product_photo(COLOURS["Red Brand"]))
    page.goto(service.url + "/")
    expect(page.locator("#model")).to_contain_text(f"v{champion.version}")

    page.set_input_files("#file", str(red))

    top = page.locator("#results li").first
    expect(top.locator(".brand")).to_have_text("Red Brand")
    expect(top.locator(".percent")).to_have_text(PERCENT)
    expect(page.locator("#results .bar")).to_have_count(3)
    expect(page.locator("#preview")).to_be_visible()
    expect(page.locator("#error")).to_be_hidden()
    # Why this brand: the heatmap beside the photo, loaded from /v1/explain.
    expect(page.locator("#explain-box")).to_be_visible()
    expect(page.locator("#heatmap-caption")).to_contain_text("Why Red Brand")
    loaded = page.eval_on_selector("#heatmap", "img => img.complete && img.naturalWidth")
    assert loaded and loaded > 0
    page.screenshot(path=str(tmp_path / "explained.png"))


def test_a_photo_of_none_of_the_brands_is_said_so_plainly(
    page: Any, service: Service, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    grey = tmp_path / "grey.png"
    grey.write_bytes(product_photo(GREY))
    page.goto(service.url + "/")
    expect(page.locator("#model")).to_contain_text("v")
    page.set_input_files("#file", str(grey))

    verdict = page.locator("#results li.unknown")
    expect(verdict).to_contain_text("Not one of the 3 brands this model knows")
    expect(page.locator("#results .bar")).to_have_count(0)  # no bars suggesting an answer
    expect(page.locator("#explain-box")).to_be_hidden()


def test_dropped_photo_is_scored(page: Any, service: Service) -> None:
    from playwright.sync_api import expect

    page.goto(service.url + "/")
    encoded = base64.b64encode(product_photo(COLOURS["Blue Brand"], size=240)).decode()
    transfer = page.evaluate_handle(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "blue-bag.png", { type: "image/png" }));
            return transfer;
        }""",
        encoded,
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})

    expect(page.locator("#results li").first.locator(".brand")).to_have_text("Blue Brand")


def test_a_refused_upload_shows_the_reason(page: Any, service: Service, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    page.goto(service.url + "/")

    page.set_input_files("#file", str(notes))

    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error")).to_contain_text("JPEG, PNG or WebP")
    expect(page.locator("#results li")).to_have_count(0)
