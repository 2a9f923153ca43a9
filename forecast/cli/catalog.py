"""``forecast catalog ...``: validate the dataset catalogs, export their JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from forecast.cli.output import (
    JsonOpt,
    load_settings,
    out,
    run_command,
)
from forecast.errors import BadInputError, CatalogError

catalog_app = typer.Typer(help="Dataset catalogs: validate, export the JSON Schema.", no_args_is_help=True)

@catalog_app.command("validate")
def catalog_validate(
    paths: Optional[List[Path]] = typer.Argument(None, help="Catalog files or folders (default: FORECAST_CATALOGS)."),
    as_json: bool = JsonOpt,
) -> None:
    """Validate catalogs strictly; every problem is reported with its file and path."""
    from forecast.catalog import catalog_files, load_catalog

    def body():
        st = load_settings()
        targets: list[Path] = []
        rule_files: list[Path] = []  # the alert rules (forecast.monitoring) are validated too
        for p in paths or [st.catalogs]:
            targets.extend(catalog_files(p) if p.is_dir() else ([] if p.name == "alerts.yaml" else [p]))
            rule_files.extend([p / "alerts.yaml"] if p.is_dir() and (p / "alerts.yaml").is_file()
                              else [p] if p.name == "alerts.yaml" else [])
        if not targets and not rule_files:
            raise BadInputError(f"no catalog files (*.yaml) found in {', '.join(map(str, paths or [st.catalogs]))}")
        results, problems = [], []
        for t in targets:
            try:
                c = load_catalog(t)
                results.append({"file": str(t), "id": c.id, "valid": True, "hash": c.hash, "problems": []})
            except CatalogError as e:
                results.append({"file": str(t), "valid": False, "problems": e.problems})
                problems.extend(e.problems)
        for t in rule_files:
            from forecast.monitoring.config import load_alert_rules

            try:
                rules = load_alert_rules(t)
                results.append({"file": str(t), "id": "alert rules", "valid": True, "rules": len(rules.rules),
                                "problems": []})
            except CatalogError as e:
                results.append({"file": str(t), "valid": False, "problems": e.problems})
                problems.extend(e.problems)
        if not as_json:
            for r in results:
                if r["valid"] and "rules" in r:
                    out.print(f"[green]ok[/]    {r['file']}  ({r['rules']} alert rules)", highlight=False)
                elif r["valid"]:
                    out.print(f"[green]ok[/]    {r['file']}  ({r['id']}, hash {r['hash'][:12]})", highlight=False)
                else:
                    out.print(f"[red]FAIL[/]  {r['file']}", highlight=False)
                    for p in r["problems"]:
                        out.print(f"      {p}", highlight=False, soft_wrap=True)
        return {"valid": not problems, "catalogs": results, "problems": problems}, (2 if problems else 0)

    run_command(as_json, body)


@catalog_app.command("schema")
def catalog_schema(
    out_path: Path = typer.Option(Path("catalogs/schema.json"), "--out", help="Where to write the JSON Schema."),
) -> None:
    """Export the catalogs' JSON Schema (for editors) to catalogs/schema.json."""
    from forecast.catalog import json_schema

    def body():
        out_path.write_text(json.dumps(json_schema(), indent=2) + "\n")
        out.print(f"wrote {out_path}")
        return None, 0

    run_command(False, body)
