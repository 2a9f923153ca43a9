"""Models (registry metadata and stage history) and user management (admin)."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from litestar import Request, Response, delete, get, post, route
from litestar.enums import HttpMethod, MediaType

from api.auth import BEARER, OPTIONAL_BEARER, current_user, read_guard, require_admin
from api.openapi import problem_specs, query_param
from api.problems import Problem
from api.schemas import ModelsDoc, UserIn
from forecast.db.users import UserExistsError

STAGES = ("candidate", "production", "retired")


def _registry(request: Request):
    reg = request.app.state.services.registry
    if reg is None:
        raise Problem(404, "this installation has no model registry")
    return reg


@get("/models", guards=[read_guard], security=OPTIONAL_BEARER, tags=["models"], summary="Registered models",
     responses=problem_specs(400, 401, 403, 404, 500))
async def list_models(request: Request,
                      dataset: Annotated[str | None, query_param("dataset", "Only models of this dataset.")] = None,
                      variable: Annotated[str | None, query_param("variable", "Only models of this variable.")] = None,
                      stage: Annotated[str | None, query_param("stage", "candidate, production or retired.",
                                                               enum=list(STAGES))] = None) -> ModelsDoc:
    """Registry metadata of every model version (newest first as the registry lists them) with stage history."""
    if stage is not None and stage not in STAGES:
        raise Problem(400, f"stage: must be candidate, production or retired, got {stage!r}")
    reg = _registry(request)
    recs = await anyio.to_thread.run_sync(lambda: reg.list(dataset=dataset, variable=variable, stage=stage))
    return ModelsDoc(models=[r.to_json() for r in recs])


@get("/models/{version:str}", guards=[read_guard], security=OPTIONAL_BEARER, tags=["models"],
     summary="One model version", responses=problem_specs(400, 401, 403, 404, 500))
async def get_model(request: Request, version: str) -> dict[str, Any]:
    """One model version: metadata, metrics, checkpoint sha256 and its stage history."""
    reg = _registry(request)
    rec = await anyio.to_thread.run_sync(lambda: reg.get(version))
    return rec.to_json()


def _add(users, name: str, role: str, by: str):
    """``users.add``: an active user of that name is a conflict with the table (409), other refusals a bad
    request (400); the store words both."""
    try:
        return users.add(name, role, by=by)
    except UserExistsError as e:
        raise Problem(409, str(e)) from None


# Litestar 2 builds the automatic OPTIONS answer of a path when its first handler is registered, and
# keeps that method list when more handlers join the path (litestar#4169, fixed in 3.x): GET and POST
# /users answered "Allow: GET, OPTIONS". This handler, registered before them, answers for the path.
@route("/users", http_method=[HttpMethod.OPTIONS], include_in_schema=False, sync_to_thread=False)
def users_options() -> Response:
    return Response(content=None, status_code=204, headers={"Allow": "GET, OPTIONS, POST"}, media_type=MediaType.TEXT)


@get("/users", guards=[require_admin], security=BEARER, tags=["users"], summary="API users (admin)",
     responses=problem_specs(401, 403, 500))
async def list_users(request: Request) -> dict[str, Any]:
    """Users, roles, whether active; never tokens."""
    users = request.app.state.services.users
    rows = await anyio.to_thread.run_sync(users.list)
    return {"users": [u.to_json() for u in rows]}


@post("/users", guards=[require_admin], security=BEARER, tags=["users"], summary="Create a user (admin)",
      status_code=201, responses=problem_specs(400, 401, 403, 409, 413, 422, 500))
async def add_user(request: Request, data: UserIn) -> dict[str, Any]:
    """Create a user; the response carries its token, shown this once (only a hash is stored). A name an
    active user holds: 409 (revoke it first)."""
    admin = current_user(request)
    users = request.app.state.services.users
    user, token = await anyio.to_thread.run_sync(lambda: _add(users, data.name, data.role, admin.name))
    return {**user.to_json(), "token": token}


@delete("/users/{name:str}", guards=[require_admin], security=BEARER, tags=["users"], summary="Revoke a user (admin)",
        status_code=200, responses=problem_specs(400, 401, 403, 404, 500))
async def revoke_user(request: Request, name: str) -> dict[str, Any]:
    """Revoke a user's token (effective within seconds on every replica)."""
    admin = current_user(request)
    users = request.app.state.services.users
    user = await anyio.to_thread.run_sync(lambda: users.revoke(name, by=admin.name))
    return user.to_json()


ROUTES = [list_models, get_model, users_options, list_users, add_user, revoke_user]
