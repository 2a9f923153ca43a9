"""``forecast db ...``: the service database's schema (Alembic migrations)."""

from __future__ import annotations

import typer

from forecast.cli.output import JsonOpt, load_settings, out, run_command

db_app = typer.Typer(help="The service database (review queue, model registry, users, monitoring): schema "
                          "migrations.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(
    revision: str = typer.Option("head", "--revision", help="Migrate to this revision (default: the newest)."),
    as_json: bool = JsonOpt,
) -> None:
    """Migrate the service database to the newest schema (components also do this on first use)."""
    from forecast.db.engine import make_engines
    from forecast.db.migrate import upgrade

    def body():
        st = load_settings()
        st.home.mkdir(parents=True, exist_ok=True)
        eng = make_engines(st.db_url)
        try:
            before, after = upgrade(eng.write, dialect=eng.dialect, revision=revision)
        finally:
            eng.engine.dispose()
        url = eng.engine.url.render_as_string(hide_password=True)
        if not as_json:
            out.print(f"{url}: " + (f"migrated from {before or 'an empty database'} to {after}" if before != after
                                     else f"already at {after}"), highlight=False)
        return {"url": url, "before": before, "after": after}, 0

    run_command(as_json, body)


@db_app.command("current")
def db_current(as_json: bool = JsonOpt) -> None:
    """The schema revision the service database is at, and the newest one."""
    from forecast.db.engine import make_engines
    from forecast.db.migrate import current_revision, head_revision

    def body():
        st = load_settings()
        eng = make_engines(st.db_url)
        try:
            cur = current_revision(eng.write)
        finally:
            eng.engine.dispose()
        url = eng.engine.url.render_as_string(hide_password=True)
        if not as_json:
            out.print(f"{url}: at {cur or 'no revision (empty)'}; newest {head_revision()}", highlight=False)
        return {"url": url, "current": cur, "head": head_revision()}, 0

    run_command(as_json, body)
