"""Layer: pure. Consistency report of an org config (for the admin API and the reconcile job).

Nothing here raises: each problem names the offending object and field, the
evaluator simply ignores what is reported (and says so in ``explain``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .catalogue import BUILTIN_ROLES
from .errors import ValidationError
from .inputs import OrgConfig
from .roles import V2Role, validate_role
from .subsets import unknown_limit_categories


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
    out.extend(subset_limit_problems(config))
    return tuple(out)


def subset_limit_problems(config: OrgConfig) -> list[ConfigProblem]:
    """Bound roles whose subset limits name a category the (root) workspace lacks for
    that parent model: a role bound before the categories existed, categories deleted
    or renamed later, or a binding a mapping rule made (the admin API refuses the rest
    at write time)."""
    out: list[ConfigProblem] = []
    seen: set[tuple[str, str]] = set()
    for rb in config.role_bindings:
        role = config.role_by_id.get(rb.role_id)
        root = config.roots.get(rb.workspace_id)
        if not isinstance(role, V2Role) or root is None or (root, role.id) in seen:
            continue
        seen.add((root, role.id))
        names: dict[str, list[str]] = {}
        for (ws, pm), cats in config.categories_by_model.items():
            if ws == root:
                names.setdefault(pm, []).extend(c for c, _ in cats)
        grants = [(g.scope, g.resource_id, g.subset_limit) for g in role.resource_grants]
        for bad in unknown_limit_categories(grants, names):
            out.append(ConfigProblem("role", role.id, bad.field, bad.message(root)))
    return out
