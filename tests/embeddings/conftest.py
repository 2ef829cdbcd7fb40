"""Fixtures of the embedding tier."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from baghunter.cli import app
from baghunter.config import Settings
from baghunter.local.sample.catalog import BRANDS, render_bag


@pytest.fixture
def ingest_bags(settings: Settings, tmp_path: Path) -> Callable[..., None]:
    """Ingest ``per_brand`` rendered bags of each of the first ``brands`` sample brands."""

    def ingest(brands: int, per_brand: int, size: int = 48) -> None:
        folder = tmp_path / "catalog"
        for look in BRANDS[:brands]:
            (folder / look.name).mkdir(parents=True)
            for i in range(per_brand):
                (folder / look.name / f"{i}.jpg").write_bytes(render_bag(look, seed=i, size=size))
        result = CliRunner().invoke(app, ["ingest", "folder", str(folder), "--json"])
        assert result.exit_code == 0, result.output

    return ingest
