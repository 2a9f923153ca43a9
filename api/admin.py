"""Models (registry metadata and stage history) and user management (admin)."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from litestar import Request, delete, get, post

from api.auth import BEARER, OPTIONAL_BEARER, current_user, read_guard, require_admin
from api.openapi import problem_specs, query_param
from api.problems import Problem
from api.schemas import ModelsDoc, UserIn

STAGES = ("candidate", "production", "retired")


def _registry(request: Request):
    reg = request.app.state.services.registry
    if reg is None:
        raise Problem(404, "this installation has no model registry")
    return reg


@get("/models", guards=[read_guard], security=OPTIONAL_BEARER, tags=["models"], summary="Registered models",
     responses=problem_specs(400, 401, 403, 404))
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


@get("/models/{version:str}", guards=[read_guard], security=OPTIONAL_BEARER, tags=["models"], summary="One model version",
     responses=problem_specs(401, 403, 404))
async def get_model(request: Request, version: str) -> dict[str, Any]:
    """One model version: metadata, metrics, checkpoint sha256 and its stage history."""
    reg = _registry(request)
    rec = await anyio.to_thread.run_sync(lambda: reg.get(version))
    return rec.to_json()


@get("/users", guards=[require_admin], security=BEARER, tags=["users"], summary="API users (admin)",
     responses=problem_specs(401, 403))
async def list_users(request: Request) -> dict[str, Any]:
    """Users, roles, whether active; never tokens."""
    users = request.app.state.services.users
    rows = await anyio.to_thread.run_sync(users.list)
    return {"users": [u.to_json() for u in rows]}


@post("/users", guards=[require_admin], security=BEARER, tags=["users"], summary="Create a user (admin)",
      status_code=201, responses=problem_specs(400, 401, 403, 413, 422))
async def add_user(request: Request, data: UserIn) -> dict[str, Any]:
    """Create a user; the response carries its token, shown this once (only a hash is stored)."""
    admin = current_user(request)
    users = request.app.state.services.users
    user, token = await anyio.to_thread.run_sync(lambda: users.add(data.name, data.role, by=admin.name))
    return {**user.to_json(), "token": token}


@delete("/users/{name:str}", guards=[require_admin], security=BEARER, tags=["users"], summary="Revoke a user (admin)",
        status_code=200, responses=problem_specs(401, 403, 404))
async def revoke_user(request: Request, name: str) -> dict[str, Any]:
    """Revoke a user's token (effective within seconds on every replica)."""
    admin = current_user(request)
    users = request.app.state.services.users
    user = await anyio.to_thread.run_sync(lambda: users.revoke(name, by=admin.name))
    return user.to_json()


ROUTES = [list_models, get_model, list_users, add_user, revoke_user]
