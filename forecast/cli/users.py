"""``forecast users ...``: API users and their bearer tokens (the clear token is printed once, at creation)."""

from __future__ import annotations

import typer
from rich.table import Table

from forecast.cli.output import (
    JsonOpt,
    load_settings,
    out,
    run_command,
)

users_app = typer.Typer(help="API users: bearer tokens with roles reader / operator / forecaster / admin.",
                        no_args_is_help=True)


def _store():
    from forecast.db.users import UserStore

    st = load_settings()
    st.home.mkdir(parents=True, exist_ok=True)
    return UserStore(st.db_url)


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="User name (decisions are recorded under it)."),
    role: str = typer.Option(..., "--role", help="reader, operator (review decisions), forecaster (also model "
                             "promotion) or admin (also user management)."),
    as_json: bool = JsonOpt,
) -> None:
    """Create a user and print its token ONCE (only a hash is stored: keep the token safe)."""

    def body():
        with _store() as users:
            user, token = users.add(name, role, by="cli")
        if not as_json:
            out.print(f"user [bold]{user.name}[/] ({user.role}) created; its token (shown only now):", highlight=False)
            out.print(token, highlight=False, markup=False)
            out.print("use it as: Authorization: Bearer <token>", highlight=False, markup=False)
        return {**user.to_json(), "token": token}, 0

    run_command(as_json, body)


@users_app.command("revoke")
def users_revoke(name: str = typer.Argument(..., help="User name."), as_json: bool = JsonOpt) -> None:
    """Revoke a user's token at once (the user stays listed, revoked)."""

    def body():
        with _store() as users:
            user = users.revoke(name, by="cli")
        if not as_json:
            out.print(f"user [bold]{user.name}[/] revoked", highlight=False)
        return user.to_json(), 0

    run_command(as_json, body)


@users_app.command("list")
def users_list(as_json: bool = JsonOpt) -> None:
    """Users, their roles and whether their token is active (never the tokens)."""

    def body():
        with _store() as users:
            rows = users.list()
        if not as_json:
            t = Table(title="API users")
            for c in ("name", "role", "active", "token", "created", "revoked"):
                t.add_column(c)
            for u in rows:
                d = u.to_json()
                t.add_row(u.name, u.role, "yes" if u.active else "no", d["token_hint"] + "...", d["created_at"],
                          d["revoked_at"] or "")
            out.print(t)
        return {"users": [u.to_json() for u in rows]}, 0

    run_command(as_json, body)
