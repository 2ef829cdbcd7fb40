"""BrandExtractor: brands recovered from display names, on small catalogs and the real one."""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path

import pytest

from baghunter.catalog.sources.brands import BrandExtractor


def _catalog(*groups: tuple[int, str]) -> list[str]:
    """``count`` copies of each name pattern; ``{i}`` varies the item so names differ."""
    return [pattern.format(i=i) for count, pattern in groups for i in range(count)]


def test_multi_word_brand_that_always_appears_whole() -> None:
    names = _catalog(
        (4, "Lino Perros Women Brown Handbag {i}"),
        (2, "Lino Perros Men Wallet {i}"),
        (5, "Baggit Women Tan Handbag {i}"),
    )
    brands = BrandExtractor(names)

    assert brands.brand("Lino Perros Women Brown Handbag") == "Lino Perros"
    assert brands.brand("Baggit Women Tan Handbag") == "Baggit"


def test_long_brand_with_a_lowercase_word() -> None:
    names = _catalog((9, "United Colors of Benetton Men Polo {i}"), (1, "United Men Shirt {i}"))

    assert BrandExtractor(names).brand("United Colors of Benetton Men Polo") == (
        "United Colors of Benetton"
    )


def test_rare_continuation_is_the_product_not_the_brand() -> None:
    names = _catalog(
        (3, "Turtle Check Men Navy Blue Shirt {i}"),
        (8, "Turtle Men Solid Shirt {i}"),
        (4, "Turtle Stripes Men Shirt {i}"),
    )

    assert BrandExtractor(names).brand("Turtle Check Men Navy Blue Shirt") == "Turtle"


def test_brand_ending_in_a_number() -> None:
    names = _catalog((5, "Jealous 21 Women Black Top {i}"))

    assert BrandExtractor(names).brand("Jealous 21 Women Black Top") == "Jealous 21"


def test_too_few_names_do_not_extend_a_brand() -> None:
    names = _catalog((2, "Mod Acc Women Clutch {i}"))

    assert BrandExtractor(names, min_support=3).brand("Mod Acc Women Clutch") == "Mod"
    assert BrandExtractor(names, min_support=2).brand("Mod Acc Women Clutch") == "Mod Acc"


def test_first_words_shared_by_several_brands_are_split() -> None:
    # "Red" alone is never followed by an audience word; each "Red X" is.
    names = _catalog(
        (5, "Red Tape Men Leather Shoes {i}"),
        (3, "Red Chief Men Brown Boots {i}"),
        (2, "Red Rose Women Bag {i}"),
    )
    brands = BrandExtractor(names)

    assert brands.brand("Red Tape Men Leather Shoes") == "Red Tape"
    assert brands.brand("Red Chief Men Brown Boots") == "Red Chief"
    assert brands.brand("Red Rose Women Bag") == "Red"  # too few names to stand alone


@pytest.mark.parametrize("audience", ["Mens", "Men's", "WOMEN", "Unisex", "Girls'"])
def test_audience_words_end_a_brand_in_any_spelling(audience: str) -> None:
    # Every name continues with the same word, so only the audience rule can stop there.
    brands = BrandExtractor(_catalog((5, f"Inkfruit {audience} Tshirt {{i}}")))

    assert brands.brand(f"Inkfruit {audience} Tshirt") == "Inkfruit"


def test_name_opening_with_an_audience_word_has_no_brand() -> None:
    brands = BrandExtractor(_catalog((5, "Women Black Top {i}")))

    assert brands.brand("Women Black Top") is None


def test_counts_ignore_case_and_answer_the_usual_spelling() -> None:
    names = _catalog((4, "Lino Perros Women Bag {i}"), (1, "LINO PERROS Women Bag {i}"))
    brands = BrandExtractor(names)

    assert brands.brand("LINO PERROS Women Bag") == "Lino Perros"


def test_unseen_and_empty_names() -> None:
    brands = BrandExtractor(_catalog((3, "Kiara Women Clutch {i}")))

    assert brands.brand("Hidesign Women Tote") == "Hidesign"
    assert brands.brand("") is None
    assert brands.brand(None) is None


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        BrandExtractor([], ratio=0.4)


@pytest.mark.realdata
def test_real_catalog_handbag_brands() -> None:
    folder = os.environ.get("BAGHUNTER_TEST_FASHION_DIR")
    styles = Path(folder) / "styles.csv" if folder else None
    if styles is None or not styles.is_file():
        pytest.skip("set BAGHUNTER_TEST_FASHION_DIR to a folder holding styles.csv")
    with styles.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    brands = BrandExtractor(row["productDisplayName"] or "" for row in rows)

    handbags = [r for r in rows if r["articleType"] in {"Handbags", "Clutches"}]
    for brand in ("Murcia", "Lino Perros", "Baggit", "Kiara"):
        named = [r for r in handbags if r["productDisplayName"].lower().startswith(brand.lower())]
        found = Counter(brands.brand(r["productDisplayName"]) for r in named)
        assert len(named) >= 20, f"{brand}: too few handbags in this catalog to judge"
        assert found[brand] >= 0.9 * len(named), f"{brand}: {found.most_common(3)}"
