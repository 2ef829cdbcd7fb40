"""FolderSource: a brand-per-folder image set read as a catalog."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from PIL import Image

from baghunter.catalog.sources import FolderSource, RecordError, SourceError


def _image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (120, 60, 30)).save(path, format="PNG")
    return path


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "bag-photos"
    for relative in (
        "Lino Perros/b.jpg",
        "Lino Perros/a.PNG",
        "Lino Perros/c.webp",
        "Lino Perros/.hidden.jpg",
        "Baggit/tote 1.JPEG",
        "Baggit/anim.gif",
        "loose.jpg",  # no brand folder
        ".cache/Baggit.jpg",  # hidden folder
    ):
        _image(root / relative)
    (root / "Lino Perros" / "notes.txt").write_text("not an image")
    (root / "Baggit" / "raw.cr2").write_bytes(b"camera raw")
    (root / "Baggit" / "nested").mkdir()
    return root


def test_lists_images_by_brand_folder_in_sorted_order(photos: Path) -> None:
    source = FolderSource(photos)

    ids = [r["folder"] + "/" + r["file"] for p in source.pages() for r in p.records]

    assert ids == [
        "Baggit/anim.gif",
        "Baggit/tote 1.JPEG",
        "Lino Perros/a.PNG",
        "Lino Perros/b.jpg",
        "Lino Perros/c.webp",
    ]


def test_pages_hold_page_size_records(photos: Path) -> None:
    pages = list(FolderSource(photos, page_size=2).pages())

    assert [(p.number, len(p.records)) for p in pages] == [(1, 2), (2, 2), (3, 1)]
    assert len(list(FolderSource(photos, page_size=2).pages(max_pages=2))) == 2


def test_normalized_image_points_at_the_file(photos: Path) -> None:
    source = FolderSource(photos)
    record = next(source.pages()).records[1]

    product = source.normalize(record)

    assert product.source == "folder:bag-photos"
    assert product.source_id == "Baggit/tote 1.JPEG"
    assert product.brand == "Baggit"
    assert product.title == "tote 1"
    [uri] = product.image_urls
    assert uri.startswith("file://")
    assert Path(unquote(urlsplit(uri).path)) == photos / "Baggit" / "tote 1.JPEG"


def test_folder_name_is_kept_except_for_whitespace(tmp_path: Path) -> None:
    _image(tmp_path / "Lino  Perros_Bags" / "x.jpg")
    source = FolderSource(tmp_path, name="handbags")

    product = source.normalize(next(source.pages()).records[0])

    assert product.brand == "Lino Perros_Bags"
    assert product.source == "handbags"


def test_missing_folder_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        next(FolderSource(tmp_path / "nowhere").pages())


def test_record_without_its_fields_is_a_record_error(tmp_path: Path) -> None:
    with pytest.raises(RecordError):
        FolderSource(tmp_path).normalize({"file": "a.jpg"})


def test_links_out_of_the_folder_are_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    _image(root / "Baggit" / "ok.png")
    outside = _image(tmp_path / "elsewhere" / "private.png")
    (root / "Baggit" / "sneaky.png").symlink_to(outside)
    (root / "Kiara").symlink_to(outside.parent, target_is_directory=True)
    _image(root / "Murcia" / "real.png")
    (root / "Murcia" / "alias.png").symlink_to(root / "Murcia" / "real.png")  # stays inside

    records = [r for page in FolderSource(root).pages() for r in page.records]
    files = sorted(f"{r['folder']}/{r['file']}" for r in records)
    assert files == ["Baggit/ok.png", "Murcia/alias.png", "Murcia/real.png"]
