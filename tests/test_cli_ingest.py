"""The ``baghunter ingest`` / ``catalog stats`` commands as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from baghunter.cli import app
from baghunter.config import Settings
from baghunter.local.sample.catalog import BRANDS, SampleCatalog, render_bag
from baghunter.local.sample.server import Reply, RouteServer

runner = CliRunner()


def _invoke(*args: str) -> dict:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_farfetch_ingest_is_idempotent(
    settings: Settings, sample_catalog: SampleCatalog, catalog_server: RouteServer
) -> None:
    url = catalog_server.url("/api/listings")
    first = _invoke("ingest", "farfetch", url, "--json")
    n = len(sample_catalog.products)
    assert first["upsert"]["inserted"] == n + 3
    assert first["images"]["ok"] == n + 1
    assert first["images"]["failed"] == 2
    assert first["duplicates"]["groups"] >= 1
    _assert_relisting_grouped(settings, sample_catalog, catalog_server)

    second = _invoke("ingest", "farfetch", url, "--json")
    assert second["upsert"]["inserted"] == 0
    assert second["upsert"]["updated"] == 0
    assert second["upsert"]["unchanged"] == n + 3
    assert second["images"]["attempted"] == 0  # nothing fetched twice

    stats = _invoke("catalog", "stats", "--json")
    assert stats["products"] == n + 3
    assert stats["images"] == {"ok": n + 1, "failed": 2, "pending": 0}
    assert stats["duplicate_groups"] == first["duplicates"]["groups"]
    assert sum(stats["brands"].values()) == n + 3


def _assert_relisting_grouped(
    settings: Settings, catalog: SampleCatalog, server: RouteServer
) -> None:
    """The re-encoded copy of a photo, listed under another id, shares its original's group."""
    from baghunter.store import open_store

    original_id = catalog.products[0].id
    with open_store(settings) as store:
        original = store.get_image(server.url(f"/images/{original_id}.jpg"))
        relisted = store.get_image(server.url(f"/images/relist-{original_id}.jpg"))
    assert original is not None and relisted is not None
    assert original["sha256"] != relisted["sha256"]  # different bytes...
    assert original["dup_group"] == relisted["dup_group"] is not None  # ...same photo


def test_changed_listing_is_updated_not_duplicated(
    settings: Settings, sample_catalog: SampleCatalog, catalog_server: RouteServer
) -> None:
    url = catalog_server.url("/api/listings")
    _invoke("ingest", "farfetch", url, "--json", "--skip-images")
    records = sample_catalog.listings(catalog_server.base_url)
    changed = [{**records[0], "price": {"value": 1, "currency": "EUR"}}, *records[1:]]
    catalog_server.routes["/api/listings"] = Reply(
        200,
        json.dumps({"products": changed, "totalPages": 1}).encode(),
        content_type="application/json",
    )
    again = _invoke("ingest", "farfetch", url, "--json", "--skip-images")
    assert again["upsert"]["updated"] == 1
    assert again["upsert"]["inserted"] == 0


def test_malformed_page_keeps_earlier_pages_and_fails_clearly(
    settings: Settings, sample_catalog: SampleCatalog, catalog_server: RouteServer
) -> None:
    good = catalog_server.routes["/api/listings"]

    def flaky(request):
        if request.query.get("page") == "2":
            return Reply(200, b"<html>maintenance</html>", content_type="text/html")
        return good(request)  # type: ignore[operator]

    catalog_server.routes["/api/listings"] = flaky
    url = catalog_server.url("/api/listings")
    result = runner.invoke(app, ["ingest", "farfetch", url, "--page-size", "10"])
    assert result.exit_code == 1
    assert "page 2" in result.output
    stats = _invoke("catalog", "stats", "--json")
    assert stats["products"] == sample_catalog.page_size  # page 1 was stored


def test_a_feed_that_ignores_paging_stops_with_a_warning(
    settings: Settings, sample_catalog: SampleCatalog, catalog_server: RouteServer
) -> None:
    good = catalog_server.routes["/api/listings"]
    asked: list[str] = []

    def page_one_forever(request):  # a shop that ignores ?page= and has no totalPages
        asked.append(request.query.get("page", "1"))
        reply = good(request.__class__(request.path, {"pageSize": "10"}, request.headers))  # type: ignore[operator]
        body = json.loads(reply.body)
        body.pop("totalPages")
        return Reply(200, json.dumps(body).encode(), content_type="application/json")

    catalog_server.routes["/api/listings"] = page_one_forever
    url = catalog_server.url("/api/listings")
    result = _invoke("ingest", "farfetch", url, "--page-size", "10", "--skip-images", "--json")

    assert asked == ["1", "2"]  # the repeat is seen on the second page, and reading stops
    assert result["fetch"]["pages"] == 1
    assert result["fetch"]["stopped"] == "page 2 repeats listings already read"
    assert "may ignore paging" in result["fetch"]["warning"]
    assert result["upsert"]["inserted"] == 10


def test_a_full_disk_stops_the_run_and_costs_no_image_an_attempt(
    settings: Settings,
    sample_catalog: SampleCatalog,
    catalog_server: RouteServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import errno

    from baghunter.images.cas import ContentStore
    from baghunter.store import open_store

    url = catalog_server.url("/api/listings")
    _invoke("ingest", "farfetch", url, "--skip-images", "--json")
    real_put = ContentStore.put
    stored = 0

    def put_until_full(self: ContentStore, data: bytes, ext: str):  # type: ignore[no-untyped-def]
        nonlocal stored
        if stored >= 5:  # the disk fills up after five photos (the one boundary replaced)
            raise OSError(errno.ENOSPC, "No space left on device")
        stored += 1
        return real_put(self, data, ext)

    monkeypatch.setattr(ContentStore, "put", put_until_full)
    for _ in range(settings.download_max_attempts + 1):  # more runs than an image has tries
        result = runner.invoke(app, ["ingest", "farfetch", url])
        assert result.exit_code == 1, result.output
        assert "No space left on device" in result.output
    with open_store(settings) as store:
        waiting = store.images_to_fetch(settings.download_max_attempts)
    # Only outcomes that really happened were recorded: the photos never stored wait
    # with all their attempts, whatever number of failed runs.
    assert len(waiting) >= len(sample_catalog.products) - 5
    assert all(task.attempts == 0 for task in waiting)

    monkeypatch.setattr(ContentStore, "put", real_put)  # space freed
    fixed = _invoke("ingest", "farfetch", url, "--json")
    stats = _invoke("catalog", "stats", "--json")
    assert stats["images"]["pending"] == 0
    assert stats["images"]["ok"] == len(sample_catalog.products) + 1
    assert fixed["images"]["failed"] == 2  # the catalog's two broken images, as always


def test_folder_ingest(settings: Settings, tmp_path: Path) -> None:
    root = tmp_path / "photos"
    for look in BRANDS[:2]:
        (root / look.name).mkdir(parents=True)
        for i in range(3):
            (root / look.name / f"{i}.jpg").write_bytes(render_bag(look, i, 64))
    (root / BRANDS[0].name / "notes.txt").write_text("not a photo")
    summary = _invoke("ingest", "folder", str(root), "--json")
    assert summary["upsert"]["inserted"] == 6
    assert summary["images"]["ok"] == 6
    stats = _invoke("catalog", "stats", "--json")
    assert stats["brands"] == {BRANDS[0].name: 3, BRANDS[1].name: 3}


def test_csv_ingest_styles_shape(settings: Settings, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    header = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage"
    rows = [header + ",productDisplayName"]
    common = "Women,Accessories,Bags,Handbags"
    for i in range(4):
        look = BRANDS[i % 2]
        (images / f"{i}.jpg").write_bytes(render_bag(look, i, 64))
        rows.append(f"{i},{common},Brown,Fall,2012.0,Casual,{look.name} Women Brown Handbag")
    # 99.jpg is never written: a listing whose photo is missing
    rows.append(f"99,{common},Black,Fall,2012.0,Casual,Aurelia Women Black Handbag")
    (tmp_path / "styles.csv").write_text("\n".join(rows) + "\n")
    summary = _invoke(
        "ingest", "csv", str(tmp_path / "styles.csv"), "--images", str(images), "--json"
    )
    assert summary["upsert"]["inserted"] == 5
    assert summary["images"]["ok"] == 4
    assert summary["images"]["failed"] == 1  # 99.jpg does not exist: recorded, not fatal


def test_store_down_is_a_clear_error(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from baghunter.config import get_settings

    monkeypatch.setenv("BAGHUNTER_STORE", "mongo")
    monkeypatch.setenv(
        "BAGHUNTER_MONGO_URI", "mongodb://127.0.0.1:1/catalog?serverSelectionTimeoutMS=300"
    )
    get_settings.cache_clear()
    result = runner.invoke(app, ["catalog", "stats", "--json"])
    assert result.exit_code == 2
    assert "unavailable" in result.output
