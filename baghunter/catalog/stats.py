"""What the catalog holds, for ``baghunter catalog stats`` and the demo summary."""

from __future__ import annotations

from typing import Any

from baghunter.store.base import CatalogStore


def catalog_stats(store: CatalogStore) -> dict[str, Any]:
    status = store.image_status_counts()
    return {
        "products": store.count_products(),
        "images": {"ok": status["ok"], "failed": status["failed"], "pending": status["pending"]},
        "brands": store.brand_counts(),
        "duplicate_groups": store.duplicate_group_count(),
        "store": store.engine,
    }
