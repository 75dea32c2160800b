"""Layer: pure. Mapping rules (contract §5): SCIM group attributes -> bindings.

A rule matches a group's ``externalId`` or ``displayName`` by exact value,
prefix, or an RE2 regular expression (whole-attribute match, rule
``mapping.regex_full_match``) whose named captures ``workspace``, ``role`` and
``space`` fill the binding's targets. Every produced binding carries the rule id
as its ``source``. Targets that do not exist are reported as problems (rule
``mapping.report_missing_targets``), never dropped silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, Literal

import re2

from .errors import UnsafePatternError, ValidationError
from .inputs import OrgAdminBinding, OrgConfig, RoleBinding, SpaceAssignment

Attribute = Literal["externalId", "displayName"]
MatchKind = Literal["exact", "prefix", "regex"]
BindingKind = Literal["workspace_role", "space", "org_admin"]

CAPTURE_NAMES: Final[frozenset[str]] = frozenset({"workspace", "role", "space"})
MAX_PATTERN_LENGTH: Final = 1000
MAX_PROGRAM_MEMORY: Final = 1 << 20
MAX_PROGRAM_SIZE: Final = 500
"""RE2 instructions a pattern may compile to (``programsize``). RE2 is linear in the
value, but the constant grows with the program: a 9,000-instruction pattern such as
``(?:[^!]{0,10}){1,99}!z1`` costs ~4-7 ms per 500-character name (its DFA does not
fit ``MAX_PROGRAM_MEMORY``, so RE2 falls back to its NFA), while patterns up to 500
instructions measured at most ~0.1 ms (a few ms between 600 and 1,000)."""


@dataclass(frozen=True, slots=True)
class ScimGroup:
    id: str
    display_name: str
    external_id: str | None = None


@dataclass(frozen=True, slots=True)
class MappingRule:
    """A rule; targets left as None come from the regex capture of the same name."""

    id: str
    attribute: Attribute
    match: MatchKind
    pattern: str
    kind: BindingKind = "workspace_role"
    workspace: str | None = None
    role: str | None = None
    space: str | None = None
    ignore_case: bool = False


@dataclass(frozen=True, slots=True)
class MappingProblem:
    rule_id: str
    group_id: str | None
    field: str
    message: str
    rule: str = "mapping.report_missing_targets"


@dataclass(frozen=True, slots=True)
class MappingResult:
    org_admins: tuple[OrgAdminBinding, ...]
    role_bindings: tuple[RoleBinding, ...]
    space_assignments: tuple[SpaceAssignment, ...]
    problems: tuple[MappingProblem, ...]
    rules: tuple[str, ...] = ()
    """Decision rules that applied (for the admin API's dry-run / explain view)."""
    evaluations: int = 0
    """Regular expressions run (one per regex rule and group with a value): the cost."""


def _options(ignore_case: bool) -> re2.Options:
    opts = re2.Options()
    opts.log_errors = False
    opts.max_mem = MAX_PROGRAM_MEMORY
    opts.case_sensitive = not ignore_case
    return opts


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str, ignore_case: bool = False) -> Any:
    """Compile with RE2 (linear time, no backtracking); raise UnsafePatternError."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise UnsafePatternError("pattern", f"longer than {MAX_PATTERN_LENGTH} characters")
    try:
        compiled = re2.compile(pattern, options=_options(ignore_case))
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode(errors="replace")
        raise UnsafePatternError(
            "pattern", f"not a safe (RE2) regular expression: {detail}"
        ) from exc
    size = int(compiled.programsize)
    if size > MAX_PROGRAM_SIZE:
        raise UnsafePatternError(
            "pattern",
            f"too costly: compiles to {size} RE2 instructions, the limit is {MAX_PROGRAM_SIZE}"
            " (counted repetitions such as {1,64} and Unicode classes such as \\pL are large;"
            " prefer + and classes such as [^-])",
        )
    return compiled


def validate_mapping_rule(rule: MappingRule) -> None:
    """Validation at rule creation (admin API 4xx); raises ValidationError naming the field."""
    if not rule.id.strip():
        raise ValidationError("id", "must be a non-empty string")
    if rule.attribute not in ("externalId", "displayName"):
        raise ValidationError("attribute", "must be 'externalId' or 'displayName'")
    if rule.match not in ("exact", "prefix", "regex"):
        raise ValidationError("match", "must be 'exact', 'prefix' or 'regex'")
    if rule.kind not in ("workspace_role", "space", "org_admin"):
        raise ValidationError("kind", "must be 'workspace_role', 'space' or 'org_admin'")
    if not rule.pattern:
        raise ValidationError("pattern", "must not be empty")
    captures: frozenset[str] = frozenset()
    if rule.match == "regex":
        compiled = compile_pattern(rule.pattern, rule.ignore_case)
        names = frozenset(compiled.groupindex)
        unknown = names - CAPTURE_NAMES
        if unknown:
            raise ValidationError(
                "pattern",
                f"unknown named capture {sorted(unknown)[0]!r} (use workspace, role, space)",
            )
        captures = names
    needed = {"workspace_role": ("workspace", "role"), "space": ("space",), "org_admin": ()}
    for target in needed[rule.kind]:
        fixed = getattr(rule, target)
        if fixed is None and target not in captures:
            raise ValidationError(target, f"needed by a {rule.kind} rule: give it or capture it")
        if fixed is not None and target in captures:
            raise ValidationError(target, "given both as a fixed value and as a named capture")
    if rule.kind == "space" and rule.workspace is not None and "workspace" in captures:
        # optional for a space rule: the workspace whose Space is meant
        raise ValidationError("workspace", "given both as a fixed value and as a named capture")


def _attribute(rule: MappingRule, group: ScimGroup) -> str | None:
    return group.external_id if rule.attribute == "externalId" else group.display_name


def match_rule(rule: MappingRule, group: ScimGroup) -> dict[str, str] | None:
    """Captures (possibly empty) when ``rule`` matches ``group``; None otherwise."""
    value = _attribute(rule, group)
    if value is None:
        return None
    if rule.match == "regex":
        m = compile_pattern(rule.pattern, rule.ignore_case).fullmatch(value)
        if m is None:
            return None
        return {k: v for k, v in m.groupdict().items() if v is not None}
    a, b = (
        (value.casefold(), rule.pattern.casefold()) if rule.ignore_case else (value, rule.pattern)
    )
    ok = a == b if rule.match == "exact" else a.startswith(b)
    return {} if ok else None


def _resolve(kind: str, value: str, config: OrgConfig) -> list[str]:
    if kind == "workspace":
        if value in config.workspace_by_id:
            return [value]
        return sorted(w.id for w in config.workspaces if w.name == value)
    if value in config.role_by_id:
        return [value]
    return sorted(r.id for r in config.role_by_id.values() if r.name.casefold() == value.casefold())


def apply_mapping_rules(
    rules: Sequence[MappingRule], groups: Iterable[ScimGroup], config: OrgConfig
) -> MappingResult:
    """Bindings the rules produce for ``groups``, plus problems for unresolvable targets."""
    admins: set[OrgAdminBinding] = set()
    bindings: set[RoleBinding] = set()
    spaces: set[SpaceAssignment] = set()
    problems: list[MappingProblem] = []
    applied: set[str] = set()
    group_list = sorted(groups, key=lambda g: g.id)
    usable = _compilable(rules, problems)
    for rule in usable:
        for group in group_list:
            captures = match_rule(rule, group)
            if rule.match == "regex":
                applied.add("mapping.regex_full_match")
            if captures is None:
                continue
            if rule.kind == "org_admin":
                admins.add(OrgAdminBinding(group.id, rule.id))
                continue
            if rule.kind == "space":
                space = _space_target(rule, group.id, captures, config)
                if isinstance(space, MappingProblem):
                    problems.append(space)
                else:
                    spaces.add(SpaceAssignment(group.id, space[0], space[1], rule.id))
                continue
            made = _role_binding(rule, group.id, captures, config, applied)
            if isinstance(made, RoleBinding):
                bindings.add(made)
            else:
                problems.extend(made)
    return MappingResult(
        tuple(sorted(admins, key=lambda b: (b.group_id, b.source))),
        tuple(sorted(bindings, key=lambda b: (b.group_id, b.workspace_id, b.role_id, b.source))),
        tuple(sorted(spaces, key=lambda b: (b.group_id, b.workspace_id, b.space_id, b.source))),
        tuple(problems),
        tuple(sorted(applied | ({"mapping.report_missing_targets"} if problems else set()))),
        sum(
            _attribute(rule, group) is not None
            for rule in usable
            if rule.match == "regex"
            for group in group_list
        ),
    )


def _role_binding(
    rule: MappingRule,
    group_id: str,
    captures: dict[str, str],
    config: OrgConfig,
    applied: set[str],
) -> RoleBinding | list[MappingProblem]:
    """The role binding a workspace_role rule makes for a group, or its problems."""
    targets: dict[str, str] = {}
    problems: list[MappingProblem] = []
    for name in ("workspace", "role"):
        raw = getattr(rule, name) or captures.get(name)
        if raw is None:
            problems.append(MappingProblem(rule.id, group_id, name, "no value captured"))
            continue
        found = _resolve(name, raw, config)
        if len(found) != 1:
            what = "no" if not found else "more than one"
            problems.append(
                MappingProblem(rule.id, group_id, name, f"{what} {name} matches {raw!r}")
            )
            continue
        targets[name] = found[0]
    if problems:
        return problems
    ws = config.workspace_by_id[targets["workspace"]]
    role = config.role_by_id[targets["role"]]
    if ws.parent_workspace_id is not None:
        msg = f"{ws.id!r} is an environment; bind its parent workspace"
        return [MappingProblem(rule.id, group_id, "workspace", msg)]
    role_id = role.id
    if role.model != ws.permissions_model:
        alias = _legacy_alias(role.id, ws.permissions_model, config)
        if alias is None:
            msg = f"{role.model} role {role.id!r} in a {ws.permissions_model} workspace"
            return [MappingProblem(rule.id, group_id, "role", msg)]
        role_id = alias
        applied.add("mapping.prebuilt_alias_in_legacy")
    return RoleBinding(group_id, ws.id, role_id, rule.id)


def _space_target(
    rule: MappingRule, group_id: str, captures: dict[str, str], config: OrgConfig
) -> tuple[str, str] | MappingProblem:
    """``(workspace id, Space id)`` a space rule names for a group, or the problem.

    Space ids are unique per workspace: the rule's ``workspace`` (fixed or captured, id
    or name) says whose Space is meant; without it the Space id (or name) must be
    unique in the organization."""
    raw = rule.space or captures.get("space")
    if raw is None:
        return MappingProblem(rule.id, group_id, "space", "no value captured")
    raw_ws = rule.workspace or captures.get("workspace")
    candidates = config.spaces
    where = ""
    if raw_ws is not None:
        found = _resolve("workspace", raw_ws, config)
        if len(found) != 1:
            what = "no" if not found else "more than one"
            return MappingProblem(
                rule.id, group_id, "workspace", f"{what} workspace matches {raw_ws!r}"
            )
        candidates = tuple(s for s in config.spaces if s.workspace_id == found[0])
        where = f" in workspace {found[0]!r}"
    matches = [s for s in candidates if s.id == raw] or [s for s in candidates if s.name == raw]
    if len(matches) == 1:
        return matches[0].workspace_id, matches[0].id
    if not matches:
        return MappingProblem(rule.id, group_id, "space", f"no space matches {raw!r}{where}")
    in_ws = ", ".join(sorted({s.workspace_id for s in matches}))
    return MappingProblem(
        rule.id,
        group_id,
        "space",
        f"more than one space matches {raw!r} (in workspaces {in_ws}): name the workspace "
        "(the rule's workspace, or a (?P<workspace>...) capture)",
    )


def _compilable(rules: Iterable[MappingRule], problems: list[MappingProblem]) -> list[MappingRule]:
    """The rules that can run. A stored regex rule that no longer compiles within the
    limits (it predates them) is reported in ``problems``, not raised or retried per group."""
    out: list[MappingRule] = []
    for rule in rules:
        if rule.match == "regex":
            try:
                compile_pattern(rule.pattern, rule.ignore_case)
            except UnsafePatternError as exc:
                problems.append(MappingProblem(rule.id, None, exc.field, exc.message))
                continue
        out.append(rule)
    return out


def _legacy_alias(role_id: str, model: str, config: OrgConfig) -> str | None:
    """A captured v2 pre-built name in a legacy workspace means its legacy counterpart
    (admin -> legacy_admin, editor -> legacy_workspace_editor, viewer -> legacy_workspace_viewer,
    draft_editor -> legacy_draft_contributor), so one rule can serve both kinds of workspace."""
    aliases = {
        "admin": "legacy_admin",
        "editor": "legacy_workspace_editor",
        "viewer": "legacy_workspace_viewer",
        "draft_editor": "legacy_draft_contributor",
    }
    if model == "legacy" and role_id in aliases:
        return aliases[role_id]
    return None
