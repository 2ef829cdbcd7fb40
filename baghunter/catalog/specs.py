"""Which catalogs to read: a small, serializable description of one source.

Specs travel through Airflow XCom (they are a few strings), come from DAG params or from
``BAGHUNTER_SOURCES`` for scheduled runs, and are written into each raw batch so a batch can
always be normalized again later without knowing how it was triggered.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field

SourceKind = Literal["shopify", "farfetch", "folder", "csv"]


class SourceSpec(BaseModel):
    kind: SourceKind
    location: str = Field(min_length=1, description="URL of the feed, or a folder / CSV path")
    name: str | None = Field(default=None, description="Stored source name (default derived)")
    images_dir: str | None = Field(default=None, description="csv only: where <id>.jpg live")
    currency: str | None = Field(default=None, description="shopify only: prices' currency")
    max_pages: int | None = Field(default=None, ge=1)
    page_size: int | None = Field(default=None, ge=1, description="Records per page requested")
    incremental: bool = Field(
        default=False, description="Stop at the first page that holds nothing new or changed."
    )

    def build_options(self) -> dict[str, Any]:
        """Keyword options for ``build_source`` (only those this kind understands)."""
        options: dict[str, Any] = {}
        if self.name:
            options["name"] = self.name
        if self.page_size:
            options["page_size"] = self.page_size
        if self.kind == "csv":
            if not self.images_dir:
                raise ValueError("a csv source needs images_dir (the folder of <id>.jpg files)")
            options["images_dir"] = self.images_dir
        if self.kind == "shopify" and self.currency:
            options["currency"] = self.currency
        return options

    @property
    def slug(self) -> str:
        """A file-system-safe name for this source's raw landing folder."""
        text = f"{self.kind}-{self.name or self.location}"
        return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:120]
