"""``baghunter audit``: the listing audit from the command line.

``baghunter audit`` summarizes the stored findings; ``baghunter audit run`` audits the
catalog now (what the ``listing_audit`` DAG does on its schedule).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from baghunter.cli.common import JsonFlag, emit, err, out, print_json, store_or_exit
from baghunter.config import get_settings

audit_app: typer.Typer = typer.Typer(
    help="Listings whose photo disagrees with their brand or attributes.",
    invoke_without_command=True,
)

MinConfidence = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Flag only when the model is this sure [BAGHUNTER_AUDIT_MIN_CONFIDENCE]",
    ),
]
MaxClaimed = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        max=1.0,
        help="...and gives the claim at most this probability "
        "[BAGHUNTER_AUDIT_MAX_CLAIMED_PROBABILITY]",
    ),
]
Examples = Annotated[int, typer.Option(min=0, help="Most confident findings shown per field.")]


@audit_app.callback()
def summary(ctx: typer.Context, as_json: JsonFlag = False, examples: Examples = 3) -> None:
    """Stored findings per field, with the most confident examples and the models behind them."""
    if ctx.invoked_subcommand is not None:
        return
    settings = get_settings()
    with store_or_exit(settings) as store:
        per_field = store.audit_summary()
        payload: dict[str, Any] = {
            "findings": sum(entry["findings"] for entry in per_field.values()),
            "fields": {
                name: {
                    **entry,
                    "examples": [
                        _example(finding)
                        for finding in store.iter_audit_findings(field=name, limit=examples)
                    ],
                }
                for name, entry in per_field.items()
            },
        }
    if as_json:
        print_json(payload)
        return
    if not per_field:
        out.print("no audit findings (run `baghunter audit run`)")
        return
    for name, entry in payload["fields"].items():
        out.print(
            f"[bold]{name}[/bold]: {entry['findings']} findings ({', '.join(entry['models'])})"
        )
        for example in entry["examples"]:
            out.print(
                f"  {example['listing']}: says {example['claimed']!r}, photo shows "
                f"{example['predicted']!r} ({example['confidence']:.2f})"
            )


def _example(finding: dict[str, Any]) -> dict[str, Any]:
    return {
        "listing": f"{finding['source']}:{finding['source_id']}",
        "claimed": finding["claimed"],
        "predicted": finding["predicted"],
        "confidence": round(float(finding["confidence"]), 4),
        "claimed_probability": round(float(finding["claimed_probability"]), 4),
        "image_sha256": finding["image_sha256"],
    }


@audit_app.command("run")
def run(
    min_confidence: MinConfidence = None,
    max_claimed_probability: MaxClaimed = None,
    attribute_model: Annotated[
        str | None, typer.Option(help="Attribute model URI [its champion]")
    ] = None,
    brand_model: Annotated[str | None, typer.Option(help="Brand model URI [its champion]")] = None,
    part: Annotated[
        list[str] | None,
        typer.Option(help="Audit only this part: attributes or brand (repeat) [both]"),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Audit every listing with a fetched image now and store the findings."""
    from baghunter.audit.run import PARTS, audit_catalog
    from baghunter.audit.scoring import AuditThresholds

    settings = get_settings()
    default = AuditThresholds.from_settings(settings)
    try:
        thresholds = AuditThresholds(
            min_confidence=default.min_confidence if min_confidence is None else min_confidence,
            max_claimed_probability=default.max_claimed_probability
            if max_claimed_probability is None
            else max_claimed_probability,
        )
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    unknown = sorted(set(part or ()) - set(PARTS))
    if unknown:
        err.print(f"[red]unknown part {unknown}: choose from {list(PARTS)}[/red]")
        raise typer.Exit(2)
    with store_or_exit(settings) as store:
        report = audit_catalog(
            store,
            settings,
            thresholds=thresholds,
            attribute_model_uri=attribute_model,
            brand_model_uri=brand_model,
            parts=part or PARTS,
        )
    for note in report.notes:
        err.print(f"[yellow]{note}[/yellow]")
    emit(report.to_dict(), as_json, "listing audit")
