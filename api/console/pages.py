"""The console's pages as data: the navigation (title, path, the role that sees it) in one list.

Adding a page: append a ``Page`` here, write its view function (``views.py``: gathers the data, returns the
template context), its template (``templates/<key>.html`` extending ``base.html``) and a thin route in
``routes.py`` that calls ``page(request, "<key>", view(...))``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    key: str  # template name and nav id
    title: str
    path: str
    role: str  # lowest role that sees the page


NAV: tuple[Page, ...] = (
    Page("review", "Review queue", "/console/review", "reader"),
    Page("forecasts", "Forecasts", "/console/forecasts", "reader"),
    Page("quality", "Data quality", "/console/quality", "reader"),
    Page("monitor", "Monitor", "/console/monitor", "reader"),
    Page("models", "Models", "/console/models", "reader"),
    Page("users", "Users", "/console/users", "admin"),
)
