"""Consistency report of an org config (for the admin API and the reconcile job).

Nothing here raises: each problem names the offending object and field, the
evaluator simply ignores what is reported (and says so in ``explain``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .catalogue import BUILTIN_ROLES
from .errors import ValidationError
from .inputs import OrgConfig
from .roles import validate_role


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    kind: str
    id: str
    field: str
    message: str


def config_problems(config: OrgConfig) -> tuple[ConfigProblem, ...]:
    """Every inconsistency of ``config`` (dangling ids, model mismatches, env cycles...)."""
    out: list[ConfigProblem] = []
    seen: set[str] = set()
    for ws in config.workspaces:
        if ws.id in seen:
            out.append(ConfigProblem("workspace", ws.id, "id", "duplicate workspace id"))
        seen.add(ws.id)
        if config.roots.get(ws.id) is None:
            out.append(
                ConfigProblem(
                    "workspace", ws.id, "parent_workspace_id", "missing parent or environment cycle"
                )
            )
    for role in config.roles:
        if role.id in BUILTIN_ROLES:
            out.append(ConfigProblem("role", role.id, "id", "reserved for a built-in role"))
            continue
        try:
            validate_role(role)
        except ValidationError as exc:
            out.append(ConfigProblem("role", role.id, exc.field, exc.message))
    for sp in config.spaces:
        if sp.workspace_id not in config.workspace_by_id:
            out.append(ConfigProblem("space", sp.id, "workspace_id", "unknown workspace"))
    for i, rb in enumerate(config.role_bindings):
        ident = f"{rb.group_id}/{rb.workspace_id}/{rb.role_id}#{i}"
        bws = config.workspace_by_id.get(rb.workspace_id)
        brole = config.role_by_id.get(rb.role_id)
        if bws is None:
            out.append(ConfigProblem("role_binding", ident, "workspace_id", "unknown workspace"))
        elif bws.parent_workspace_id is not None:
            out.append(
                ConfigProblem(
                    "role_binding",
                    ident,
                    "workspace_id",
                    "environments inherit their parent's bindings; this one is ignored",
                )
            )
        if brole is None:
            out.append(ConfigProblem("role_binding", ident, "role_id", "unknown role"))
        elif bws is not None and brole.model != bws.permissions_model:
            out.append(
                ConfigProblem(
                    "role_binding",
                    ident,
                    "role_id",
                    f"{brole.model} role in a {bws.permissions_model} workspace is ignored",
                )
            )
    for i, sa in enumerate(config.space_assignments):
        if (sa.workspace_id, sa.space_id) not in config.space_by_key:
            out.append(
                ConfigProblem(
                    "space_assignment",
                    f"{sa.group_id}/{sa.workspace_id}/{sa.space_id}#{i}",
                    "space_id",
                    f"no Space {sa.space_id!r} in workspace {sa.workspace_id!r}",
                )
            )
    return tuple(out)
