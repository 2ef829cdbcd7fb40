"""CsvSource: the Fashion Product Images and Shopee exports, including their rough edges."""

from __future__ import annotations

import csv
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from baghunter.catalog.sources import CsvSource, RecordError, SourceError

FASHION_HEADER = (
    "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,"
    "productDisplayName"
)


def _path_of(uri: str) -> Path:
    return Path(unquote(urlsplit(uri).path))


@pytest.fixture
def styles(tmp_path: Path) -> Path:
    bags = "Women,Accessories,Bags"
    lines = [
        FASHION_HEADER,
        f"1001,{bags},Handbags,Brown,Fall,2011.0,Casual,Lino Perros Women Brown Handbag",
        f"1002,{bags},Handbags,Black,Summer,2012.0,,Lino Perros Women Black Handbag",
        f"1003,{bags},Clutches,Red,Winter,2016.0,Party,Lino Perros Women Red Clutch",
        # Unquoted commas in the display name: two fields too many for the header.
        "1004,Men,Apparel,Topwear,Shirts,Navy Blue,Fall,2011.0,Casual,Turtle Men Shirt, Slim, Navy",
        f",{bags},Handbags,Tan,Fall,2011.0,Casual,Baggit Women Tan Handbag",
        "",
        f"1006,{bags},Handbags,Tan,Fall,,Casual,Baggit Women Tan Handbag",
    ]
    path = tmp_path / "styles.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def fashion(styles: Path, tmp_path: Path) -> CsvSource:
    images = tmp_path / "images"
    images.mkdir()
    (images / "1001.jpg").write_bytes(b"\xff\xd8")  # only one image is on disk
    return CsvSource(styles, images, page_size=3)


def test_fashion_rows_become_pages(fashion: CsvSource) -> None:
    pages = list(fashion.pages())

    assert [p.number for p in pages] == [1, 2]
    assert [r["id"] for p in pages for r in p.records] == [
        "1001",
        "1002",
        "1003",
        "1004",
        "",
        "1006",
    ]
    assert len(list(fashion.pages(max_pages=1))) == 1


def test_fashion_record_normalizes(fashion: CsvSource, tmp_path: Path) -> None:
    record = next(fashion.pages()).records[0]

    product = fashion.normalize(record)

    assert product.source == "csv:styles"
    assert product.source_id == "1001"
    assert product.brand == "Lino Perros"
    assert product.title == "Lino Perros Women Brown Handbag"
    assert product.category == "Handbags"
    assert product.attributes == {
        "gender": "Women",
        "masterCategory": "Accessories",
        "subCategory": "Bags",
        "articleType": "Handbags",
        "baseColour": "Brown",
        "season": "Fall",
        "year": "2011",
        "usage": "Casual",
    }
    assert [_path_of(u) for u in product.image_urls] == [tmp_path / "images" / "1001.jpg"]
    assert product.raw == record


def test_empty_cells_are_not_attributes(fashion: CsvSource) -> None:
    records = {r["id"]: r for p in fashion.pages() for r in p.records}

    assert "usage" not in fashion.normalize(records["1002"]).attributes
    assert "year" not in fashion.normalize(records["1006"]).attributes


def test_overflowing_commas_stay_in_the_display_name(fashion: CsvSource) -> None:
    records = {r["id"]: r for p in fashion.pages() for r in p.records}

    product = fashion.normalize(records["1004"])

    assert product.title == "Turtle Men Shirt, Slim, Navy"
    assert product.attributes["usage"] == "Casual"
    assert product.brand == "Turtle"


def test_image_not_on_disk_is_still_listed(fashion: CsvSource, tmp_path: Path) -> None:
    records = {r["id"]: r for p in fashion.pages() for r in p.records}

    product = fashion.normalize(records["1003"])

    assert [_path_of(u) for u in product.image_urls] == [tmp_path / "images" / "1003.jpg"]
    assert not (tmp_path / "images" / "1003.jpg").exists()


def test_row_without_id_is_a_record_error(fashion: CsvSource) -> None:
    nameless = next(r for p in fashion.pages() for r in p.records if not r["id"])

    with pytest.raises(RecordError, match="no 'id'"):
        fashion.normalize(nameless)


def test_stored_record_normalizes_in_a_fresh_source(fashion: CsvSource, styles: Path) -> None:
    # The pipeline normalizes stored pages in another process, which never paged the file.
    record = next(fashion.pages()).records[1]
    fresh = CsvSource(styles, fashion.images_dir)

    assert fresh.normalize(record) == fashion.normalize(record)


def test_quoted_export_with_extra_reordered_columns(tmp_path: Path) -> None:
    row = {
        "productDisplayName": "Baggit Women Tan, Large Handbag",  # quoted by the writer
        "id": "7",
        **dict.fromkeys(["gender", "masterCategory", "subCategory", "articleType"], "x"),
        **dict.fromkeys(["baseColour", "season", "year", "usage"], "y"),
        "price": "1999",
    }
    path = tmp_path / "export.csv"
    with path.open("w", newline="", encoding="utf-8-sig") as handle:  # with a BOM
        writer = csv.DictWriter(handle, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)

    source = CsvSource(path, tmp_path)
    product = source.normalize(next(source.pages()).records[0])

    assert product.source_id == "7"
    assert product.title == "Baggit Women Tan, Large Handbag"
    assert "price" not in product.attributes  # not a known attribute; kept in raw
    assert product.raw["price"] == "1999"


@pytest.fixture
def shopee(tmp_path: Path) -> CsvSource:
    path = tmp_path / "train.csv"
    path.write_text(
        "posting_id,image,image_phash,title,label_group\n"
        "train_129225211,0000a68812bc7e98c42888dfb1c07da0.jpg,94974f937d4c2433,"
        "Paper Bag Victoria Secret,249114794\n"
        "train_3386243561,00039780dfc94d01db8676fe789ecd05.jpg,af3f9460c2838f0f,"
        "Tas, Wanita, Slempang,2937985045\n"
        ",0000b.jpg,bf3f9460c2838f0f,No id,1\n",
        encoding="utf-8",
    )
    return CsvSource(path, tmp_path / "train_images", name="shopee")


def test_shopee_rows_normalize(shopee: CsvSource, tmp_path: Path) -> None:
    first, second, nameless = next(shopee.pages()).records

    product = shopee.normalize(first)
    assert product.source == "shopee"
    assert product.source_id == "train_129225211"
    assert product.brand is None
    assert product.title == "Paper Bag Victoria Secret"
    assert product.attributes == {"label_group": "249114794", "image_phash": "94974f937d4c2433"}
    assert [_path_of(u) for u in product.image_urls] == [
        tmp_path / "train_images" / "0000a68812bc7e98c42888dfb1c07da0.jpg"
    ]
    # The free-text title is mid-row: the surplus fields are folded back into it.
    overflowed = shopee.normalize(second)
    assert overflowed.title == "Tas, Wanita, Slempang"
    assert overflowed.attributes["label_group"] == "2937985045"
    with pytest.raises(RecordError, match="posting_id"):
        shopee.normalize(nameless)


def test_unknown_header_names_found_and_expected_columns(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("sku,name,brand\n1,Tote,Kiara\n", encoding="utf-8")

    with pytest.raises(SourceError) as failure:
        next(CsvSource(path, tmp_path).pages())

    message = str(failure.value)
    assert "sku, name, brand" in message
    assert "productDisplayName" in message and "posting_id" in message


def test_missing_file_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        next(CsvSource(tmp_path / "styles.csv", tmp_path).pages())


def test_image_paths_that_leave_the_image_folder_are_refused(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"\xff\xd8 not for the catalog")
    (images / "inside.jpg").write_bytes(b"\xff\xd8")
    (images / "linked-out.jpg").symlink_to(secret)
    manifest = tmp_path / "train.csv"
    rows = [
        ["posting_id", "image", "image_phash", "title", "label_group"],
        ["p1", "inside.jpg", "ab", "fine", "1"],
        ["p2", "../secret.jpg", "ab", "climbs out", "1"],
        ["p3", str(secret), "ab", "absolute", "1"],
        ["p4", "linked-out.jpg", "ab", "a link out", "1"],
    ]
    with manifest.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    source = CsvSource(manifest, images)
    records = [r for page in source.pages() for r in page.records]
    assert _path_of(source.normalize(records[0]).image_urls[0]) == images / "inside.jpg"
    for record in records[1:]:
        with pytest.raises(RecordError, match="outside the image folder"):
            source.normalize(record)
