"""A generated catalog in the shape of the Fashion Product Images ``styles.csv``.

Attribute models need a catalog whose labels can actually be read off the photos and vary
*independently*, or a model could score well by predicting one attribute from another.
Here every product draws its bag shape (``articleType``), body colour (``baseColour``) and
surface pattern on its own; ``gender`` follows the handle and ``usage`` the pattern, both
visible; ``season`` and ``year`` are drawn at random and are *not* in the picture, so a
model can do no better than the majority class on them (a built-in honesty check).

The file has the ten ``styles.csv`` columns plus a ``pattern`` column (an extra column is
allowed by the CSV source and ignored by ingestion). Photos are ``<id>.jpg`` in a folder,
drawn with :func:`baghunter.local.sample.catalog.render_bag`. Everything follows from the seed.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

from baghunter.local.sample.catalog import BrandLook, render_bag

COLUMNS = (
    "id", "gender", "masterCategory", "subCategory", "articleType",
    "baseColour", "season", "year", "usage", "productDisplayName", "pattern",
)  # fmt: skip

# Bag silhouette drawn by render_bag -> the articleType it is listed as.
ARTICLE_TYPES = {
    "tote": "Handbags",
    "clutch": "Clutches",
    "bucket": "Backpacks",
    "baguette": "Wallets",
}
# Body colours far apart in RGB, named as the real catalog names them.
COLOURS: dict[str, tuple[int, int, int]] = {
    "Black": (25, 25, 28),
    "Brown": (120, 62, 30),
    "Red": (196, 30, 36),
    "Navy Blue": (28, 48, 120),
    "Green": (40, 130, 60),
    "Yellow": (230, 200, 40),
}
PATTERNS = ("solid", "stripes", "dots")
# Visible cues for the attributes a photo would not otherwise show.
GENDER_BY_HANDLE = {"arch": "Women", "chain": "Women", "none": "Men", "short": "Men"}
USAGE_BY_PATTERN = {"solid": "Formal", "stripes": "Casual", "dots": "Casual"}
SEASONS = ("Summer", "Winter", "Fall", "Spring")
BRAND_NAMES = ("Aurelia", "Borsetti", "Castellane", "Duvanne", "Elmora")
# Accent colour for patterns and handles: light on dark bodies, dark on light ones.
_LIGHT_ACCENT = (235, 235, 225)
_DARK_ACCENT = (30, 30, 30)


@dataclass(frozen=True)
class StyleRow:
    id: str
    gender: str
    article_type: str
    base_colour: str
    season: str
    year: str
    usage: str
    pattern: str
    display_name: str
    look: BrandLook
    image_seed: int

    def csv_row(self) -> dict[str, str]:
        return {
            "id": self.id,
            "gender": self.gender,
            "masterCategory": "Accessories",
            "subCategory": "Bags",
            "articleType": self.article_type,
            "baseColour": self.base_colour,
            "season": self.season,
            "year": self.year,
            "usage": self.usage,
            "productDisplayName": self.display_name,
            "pattern": self.pattern,
        }


def style_rows(n_products: int, seed: int = 0) -> list[StyleRow]:
    """The catalog's products, each attribute drawn independently from ``seed``."""
    if n_products < 1:
        raise ValueError(f"n_products must be positive, not {n_products}")
    rng = random.Random(seed)
    rows = []
    for i in range(n_products):
        shape = rng.choice(sorted(ARTICLE_TYPES))
        colour = rng.choice(sorted(COLOURS))
        pattern = rng.choice(PATTERNS)
        handle = rng.choice(sorted(GENDER_BY_HANDLE))
        body = COLOURS[colour]
        accent = _LIGHT_ACCENT if sum(body) < 360 else _DARK_ACCENT
        look = BrandLook(
            name=rng.choice(BRAND_NAMES),
            shape=shape,
            palette=(body, accent),
            pattern=pattern,
            hardware=(200, 200, 210),
            handle=handle,
        )
        gender = GENDER_BY_HANDLE[handle]
        article = ARTICLE_TYPES[shape]
        rows.append(
            StyleRow(
                id=str(10000 + i),
                gender=gender,
                article_type=article,
                base_colour=colour,
                season=rng.choice(SEASONS),
                year=str(rng.randint(2011, 2017)),
                usage=USAGE_BY_PATTERN[pattern],
                pattern=pattern,
                display_name=f"{look.name} {gender} {colour} {pattern.title()} {article}",
                look=look,
                image_seed=rng.randrange(2**31),
            )
        )
    return rows


def write_styles_catalog(
    directory: str | Path, n_products: int, seed: int = 0, image_size: int = 64
) -> tuple[Path, Path]:
    """Write ``styles.csv`` and ``images/<id>.jpg`` under ``directory``; return both paths."""
    root = Path(directory)
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = style_rows(n_products, seed)
    csv_path = root / "styles.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow(row.csv_row())
            (images / f"{row.id}.jpg").write_bytes(render_bag(row.look, row.image_seed, image_size))
    return csv_path, images
