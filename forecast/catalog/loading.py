"""Reading catalogs: one file or a folder, validated strictly; every problem of every file reported
together, each naming the file and the dotted path of the bad field (`qc.config.format_errors`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from forecast.catalog.models import Catalog
from forecast.errors import CatalogError, UnknownDatasetError
from qc.config import format_errors

__all__ = ["catalog_files", "get_catalog", "json_schema", "load_catalog", "load_catalogs", "parse_catalog"]


def parse_catalog(doc: Any, source: str) -> Catalog:
    if not isinstance(doc, dict):
        raise CatalogError([f"{source}: (top level): expected a mapping of catalog fields, got {type(doc).__name__}"])
    try:
        cat = Catalog.model_validate(doc)
    except ValidationError as e:
        raise CatalogError(format_errors(e, source)) from None
    return cat


def load_catalog(path: str | Path) -> Catalog:
    """Read and validate one catalog file; raises CatalogError naming file and path of each problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise CatalogError([f"{path}: cannot read the catalog file ({e.strerror or e})"]) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(unknown position)"
        raise CatalogError([f"{path}: {where}: not valid YAML ({getattr(e, 'problem', e)})"]) from None
    cat = parse_catalog(doc, str(path))
    return cat.model_copy(update={"path": path})


#: files of the catalogs folder that are not dataset catalogs (the alert rules of every dataset)
NOT_CATALOGS = ("alerts.yaml",)


def catalog_files(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    return sorted(p for p in folder.glob("*.yaml") if p.is_file() and p.name not in NOT_CATALOGS)


def load_catalogs(folder: str | Path) -> dict[str, Catalog]:
    """All catalogs of a folder by dataset id; every problem in every file is reported together."""
    cats: dict[str, Catalog] = {}
    problems: list[str] = []
    for p in catalog_files(folder):
        try:
            c = load_catalog(p)
        except CatalogError as e:
            problems.extend(e.problems)
            continue
        if c.id in cats:
            problems.append(f"{p}: id: dataset id {c.id!r} is already defined by {cats[c.id].path}")
            continue
        cats[c.id] = c
    if problems:
        raise CatalogError(problems)
    return cats


def get_catalog(folder: str | Path, dataset: str) -> Catalog:
    """The catalog of one dataset id; an unknown id lists the known ones."""
    folder = Path(folder)
    direct = folder / f"{dataset}.yaml"
    if direct.is_file():
        c = load_catalog(direct)
        if c.id == dataset:
            return c
    cats = load_catalogs(folder)
    if dataset not in cats:
        known = ", ".join(sorted(cats)) or "none"
        raise UnknownDatasetError(f"unknown dataset {dataset!r}; catalogs in {folder} define: {known}")
    return cats[dataset]


def json_schema() -> dict:
    schema = Catalog.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Forecast service dataset catalog"
    return schema
