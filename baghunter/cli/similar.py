"""``baghunter similar``: similar-product search and near-duplicate grouping."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from baghunter.cli.common import JsonFlag, Weights, emit, err, out, print_json, store_or_exit
from baghunter.config import Settings, get_settings

if TYPE_CHECKING:
    from baghunter.similar.duplicates import DuplicateRules

similar_app = typer.Typer(
    help="Similar products and near-duplicates in the embedding space.", no_args_is_help=True
)

MinCosine = Annotated[
    float | None, typer.Option(help="Embedding cosine for copies [BAGHUNTER_DUP_MIN_COSINE]")
]


def _settings(weights: str | None) -> Settings:
    settings = get_settings()
    return settings.model_copy(update={"weights": weights}) if weights else settings


def _rules(settings: Settings, min_cosine: float | None) -> DuplicateRules:
    """The configured near-duplicate rules, with the cosine threshold overridden if given."""
    from baghunter.similar.duplicates import DuplicateRules

    rules = DuplicateRules.from_settings(settings)
    return rules if min_cosine is None else replace(rules, min_cosine=min_cosine)


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]{message}[/red]")
    return typer.Exit(2)


@similar_app.command("build")
def build(
    engine: Annotated[str, typer.Option(help="auto, exact or hnsw")] = "auto",
    weights: Weights = None,
    as_json: JsonFlag = False,
) -> None:
    """Index every embedded catalog image for similar-product search."""
    from baghunter.similar.index import EmptyIndexError, build_index

    settings = _settings(weights)
    with store_or_exit(settings) as store:
        try:
            report = build_index(store, settings, engine=engine)
        except (EmptyIndexError, ValueError, FileNotFoundError) as exc:
            raise _fail(str(exc)) from exc
    emit(report, as_json, "similar-product index")


@similar_app.command("query")
def query(
    image: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="A photo.")],
    k: Annotated[int, typer.Option("-k", "--k", help="How many products.")] = 5,
    exclude_self: Annotated[
        bool, typer.Option(help="Leave out products showing this very file.")
    ] = False,
    weights: Weights = None,
    as_json: JsonFlag = False,
) -> None:
    """The catalog products whose photos look most like IMAGE."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from baghunter.embeddings.model import Embedder, EmbedderSpec
    from baghunter.embeddings.pipeline import vector_store
    from baghunter.similar.index import SimilarIndex, default_index_dir

    settings = _settings(weights)
    data = image.read_bytes()
    try:
        with Image.open(image) as opened:
            pixels = np.asarray(opened.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise _fail(f"{image} is not a readable image: {exc}") from exc
    try:
        embedder = Embedder(EmbedderSpec.from_settings(settings))
        index = SimilarIndex.load(default_index_dir(settings, embedder.space))
        # The query is embedded by the space's own engine file (no-op for Keras).
        embedder.use_engine(vector_store(settings, embedder.space).directory)
        vector = embedder.embed_arrays([pixels])[0]
        exclude = hashlib.sha256(data).hexdigest() if exclude_self else None
        matches = index.query(vector, k, exclude_sha256=exclude)
    except (ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from exc
    rows: list[dict[str, Any]] = [match.to_dict() for match in matches]
    if as_json:
        print_json({"space": index.space, "engine": index.engine, "matches": rows})
        return
    for row in rows:
        out.print(f"{row['score']:.3f}  {row['brand'] or '-'}  {row['title'] or row['source_id']}")


@similar_app.command("dedupe")
def dedupe(
    min_cosine: MinCosine = None,
    weights: Weights = None,
    as_json: JsonFlag = False,
) -> None:
    """Regroup near-duplicate images by perceptual hash and embedding; store the groups."""
    from baghunter.similar.duplicates import dedupe_catalog

    settings = _settings(weights)
    rules = _rules(settings, min_cosine)
    with store_or_exit(settings) as store:
        try:
            report = dedupe_catalog(store, settings, rules=rules)
        except (ValueError, FileNotFoundError) as exc:
            raise _fail(str(exc)) from exc
    emit(report, as_json, "near-duplicates")


@similar_app.command("evaluate-groups")
def evaluate_groups(
    csv: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="Shopee-shaped CSV (label_group).")
    ],
    images: Annotated[Path, typer.Option(exists=True, file_okay=False, help="Its image folder.")],
    min_cosine: MinCosine = None,
    weights: Weights = None,
    as_json: JsonFlag = False,
) -> None:
    """Shopee-style F1 of near-duplicate groups vs the CSV's label groups, per kind of evidence."""
    from baghunter.catalog.sources.base import SourceError
    from baghunter.similar.matching import evaluate_groups as evaluate

    settings = _settings(weights)
    rules = _rules(settings, min_cosine)
    try:
        report = evaluate(csv, images, settings, rules=rules)
    except (SourceError, ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        print_json(report)
        return
    out.print(
        f"{report['scored']} postings in {report['label_groups']} label groups; "
        f"F1 alone {report['singletons_f1']}"
    )
    for mode, scores in report["modes"].items():
        out.print(f"  {mode:<10} F1 {scores['f1']:.4f}  groups {scores['groups']}")
