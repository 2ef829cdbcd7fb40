"""Which attributes a catalog offers, and how they are read from a stored listing.

Attributes come from ``Product.attributes`` under the names the source uses (``styles.csv``
gives ``gender``, ``masterCategory``, ``subCategory``, ``articleType``, ``baseColour``,
``season``, ``year``, ``usage``; other sources give what they have, e.g. ``pattern``).
A source that only fills ``Product.category`` still yields one attribute, ``category``.
"""

from __future__ import annotations

from collections.abc import Sequence

from baghunter.catalog.schema import CatalogImage

DEFAULT_ATTRIBUTES: tuple[str, ...] = ("articleType", "baseColour", "gender", "usage", "season")
# The fallback attribute, read from Product.category rather than Product.attributes.
CATEGORY = "category"


def image_labels(row: CatalogImage, attributes: Sequence[str]) -> dict[str, str]:
    """The values ``row`` gives for ``attributes`` (absent ones left out)."""
    labels = {}
    for name in attributes:
        value = row.category if name == CATEGORY else row.attributes.get(name)
        if value:
            labels[name] = value
    return labels


def offered(rows: Sequence[CatalogImage], attributes: Sequence[str]) -> list[str]:
    """The requested attributes that some row has, or ``[category]`` if none but that.

    Falling back to the category keeps a catalog that only sets ``Product.category`` (a
    Farfetch-style feed, a folder catalog) usable with the default attribute list.
    """
    present = [name for name in attributes if any(image_labels(r, [name]) for r in rows)]
    if present or CATEGORY in attributes:
        return present
    if any(r.category for r in rows):
        return [CATEGORY]
    return []
