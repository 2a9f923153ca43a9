"""``forecast sample``: synthetic observation files with planted faults."""

from __future__ import annotations

from pathlib import Path

import typer

from forecast.cli.output import (
    JsonOpt,
    load_settings,
    out,
    progress,
    run_command,
    time_option,
)


def sample(
    dataset: str = typer.Argument(..., help="Dataset id from the catalogs (e.g. radar_precip)."),
    start: str = typer.Option(..., "--start", help="First slot, ISO-8601 UTC (e.g. 2026-07-15T12:00Z)."),
    hours: float = typer.Option(..., "--hours", help="Length of the period in hours."),
    out_dir: Path = typer.Option(..., "--out", help="Folder for the NetCDF files and manifest.json."),
    faults: str = typer.Option("", "--faults", help="Comma-separated faults to plant, or 'all'."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same data)."),
    motion: str = typer.Option("steady", "--motion", help="Steering flow: steady, or curving (faster, turning)."),
    as_json: bool = JsonOpt,
) -> None:
    """Write realistic synthetic observations, one CF NetCDF file per slot, optionally with faults."""
    from forecast.catalog import get_catalog
    from forecast.synthetic.generate import generate_sample

    def body():
        st = load_settings()
        cat = get_catalog(st.catalogs, dataset)
        t0 = time_option(start, "--start")
        flist = [f.strip() for f in faults.split(",") if f.strip()]
        with progress(f"sample {dataset}", not as_json) as tick:
            manifest = generate_sample(cat, start=t0, hours=hours, out=out_dir, faults=flist, seed=seed,
                                       motion=motion, progress=tick)
        if not as_json:
            b = manifest.get("batches", {})
            out.print(f"wrote {len(manifest.get('files', []))} files for {dataset} into {out_dir} "
                      f"({', '.join(f'{k}: {len(v)}' for k, v in b.items())})")
            if manifest.get("faults"):
                kinds = sorted({f['kind'] for f in manifest['faults']})
                out.print(f"planted faults: {', '.join(kinds)} (see {out_dir / 'manifest.json'})")
        return manifest, 0

    run_command(as_json, body)
