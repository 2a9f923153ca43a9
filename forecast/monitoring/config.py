"""Where the monitor's rules come from: ``catalogs/alerts.yaml`` (rules of every dataset; the built-in
`DEFAULT_RULES` when the file does not exist) and the ``alerts:`` section of a dataset's catalog. The
models themselves are the catalog's (`forecast.catalog.monitoring`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from forecast.catalog.monitoring import (
    ALERT_KINDS,
    DEFAULT_RULES,
    AlertRule,
    AlertRules,
    DetectorConfig,
    DriftConfig,
    MonitoringConfig,
    RegimeSpec,
    RegionSpec,
    duration_s,
)

__all__ = ["ALERTS_FILE", "ALERT_KINDS", "DEFAULT_RULES", "AlertRule", "AlertRules", "DetectorConfig", "DriftConfig",
           "MonitoringConfig", "RegimeSpec", "RegionSpec", "alert_rules_for", "default_alert_rules", "duration_s",
           "load_alert_rules", "monitoring_config"]


def monitoring_config(catalog) -> MonitoringConfig:
    """The catalog's ``monitoring:`` section, or the defaults."""
    return getattr(catalog, "monitoring", None) or MonitoringConfig()


def default_alert_rules() -> AlertRules:
    return AlertRules.model_validate({"rules": DEFAULT_RULES})


def _problems(e: ValidationError, source: str) -> list[str]:
    from qc.config import format_errors

    return format_errors(e, source)


def load_alert_rules(path: str | Path) -> AlertRules:
    """Read ``alerts.yaml``: a mapping with ``rules:`` (or a bare list of rules).

    Raises:
        CatalogError: every problem, each naming the file and the path of the bad field.
    """
    import yaml

    from forecast.errors import CatalogError

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as e:
        raise CatalogError([f"{path}: cannot read the alert rules ({e.strerror or e})"]) from None
    except yaml.YAMLError as e:
        raise CatalogError([f"{path}: not valid YAML ({getattr(e, 'problem', e)})"]) from None
    if isinstance(doc, list):
        doc = {"rules": doc}
    if doc is None:
        doc = {"rules": []}
    if not isinstance(doc, dict):
        raise CatalogError([f"{path}: (top level): expected a mapping with rules, got {type(doc).__name__}"])
    try:
        return AlertRules.model_validate(doc)
    except ValidationError as e:
        raise CatalogError(_problems(e, str(path))) from None


ALERTS_FILE = "alerts.yaml"


def alert_rules_for(settings, catalog) -> tuple[list[AlertRule], str]:
    """The rules that apply to ``catalog``'s dataset: ``catalogs/alerts.yaml`` (or the built-in defaults when
    it does not exist) plus the catalog's own ``alerts:`` section (those apply to it alone; one of the same
    name replaces the file's). Returns (rules, where they came from)."""
    path = Path(settings.catalogs) / ALERTS_FILE
    if path.is_file():
        base, source = load_alert_rules(path), str(path)
    else:
        base, source = default_alert_rules(), "built-in defaults (no catalogs/alerts.yaml)"
    own = list(getattr(catalog, "alerts", None) or [])
    names = {r.name for r in own}
    rules = [r for r in base.rules if r.name not in names] + [r.model_copy(update={"datasets": [catalog.id]})
                                                                 for r in own]
    if own:
        source += f" + the alerts: section of {catalog.id}"
    return rules, source
