"""Hypothesis strategies: small random orgs, users and questions."""

from __future__ import annotations

from hypothesis import strategies as st

from models.access import (
    LEGACY_BUILTIN,
    V2_PREBUILT,
    LegacyRole,
    OrgAdminBinding,
    OrgConfig,
    ParentModelSubsets,
    PolicyStatement,
    RegisteredResource,
    ResourceGrant,
    ResourceRef,
    RoleBinding,
    Space,
    SpaceAssignment,
    SubsetCategory,
    SubsetLimit,
    SyncRef,
    V2Role,
    Workspace,
)
from models.access.grants import LEGACY_APPLICABLE, V2_GRANT_CODES

GROUPS = ("g0", "g1", "g2", "g3", "g4")
IDS = ("A", "B", "*")
ASK_IDS = ("A", "B", "C")
ROOTS = ("w0", "w1", "w2")
SPACES = ("s0", "s1", "s2", "s3")
LABELS = (("env", "prod"), ("env", "dev"), ("team", "x"))
SCOPES = sorted({s for s, _ in V2_GRANT_CODES if s != "workspace"})


def _grants_of(scope: str) -> list[str]:
    return sorted(n for s, n in V2_GRANT_CODES if s == scope and n != "manage_workspace")


@st.composite
def subset_limits(draw: st.DrawFn) -> SubsetLimit:
    chosen = draw(
        st.dictionaries(
            st.sampled_from(("region", "consent")),
            st.lists(st.sampled_from(("EU", "US", "email")), max_size=2),
            max_size=2,
        )
    )
    return SubsetLimit.of(chosen)


@st.composite
def v2_roles(draw: st.DrawFn, rid: str) -> V2Role:
    ws_grants = draw(st.frozensets(st.sampled_from(_grants_of("workspace")), max_size=3))
    rgs = []
    for _ in range(draw(st.integers(0, 4))):
        scope = draw(st.sampled_from(SCOPES))
        grants = draw(st.frozensets(st.sampled_from(_grants_of(scope)), min_size=1, max_size=4))
        limit = None
        if scope == "parent_model" and grants & {
            "view_parent_model_data",
            "configure_audiences_syncs",
        }:
            limit = draw(st.none() | subset_limits())
        rgs.append(ResourceGrant(scope, draw(st.sampled_from(IDS)), grants, limit))
    return V2Role(rid, rid, ws_grants, tuple(rgs))


@st.composite
def legacy_roles(draw: st.DrawFn, rid: str) -> LegacyRole:
    statements = []
    for _ in range(draw(st.integers(1, 3))):
        resource = draw(
            st.sampled_from(("*", "source", "model", "destination", "sync", "audience", "account"))
        )
        pool = ["*"] if resource == "*" else ["*", *sorted(LEGACY_APPLICABLE[resource])]
        actions = tuple(draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3)))
        conds = draw(
            st.lists(
                st.tuples(
                    st.sampled_from(("env", "team")),
                    st.frozensets(st.sampled_from(("prod", "dev", "x")), min_size=1),
                ),
                max_size=1,
            )
        )
        statements.append(PolicyStatement(actions, resource, tuple(conds)))
    return LegacyRole(rid, rid, statements=tuple(statements))


@st.composite
def org_configs(draw: st.DrawFn) -> OrgConfig:
    n_roots = draw(st.integers(1, 3))
    workspaces = [
        Workspace(
            ROOTS[i],
            permissions_model=draw(st.sampled_from(("v2", "v2", "legacy"))),
            spaces_enabled=draw(st.booleans()),
            approvals_required=draw(st.booleans()),
        )
        for i in range(n_roots)
    ]
    if draw(st.booleans()):
        workspaces.append(
            Workspace("env", parent_workspace_id=draw(st.sampled_from(ROOTS[:n_roots])))
        )
    ws_ids = [w.id for w in workspaces]
    # Space ids are unique per workspace: two roots may both have a Space "s1"
    spaces = [
        Space(s, w)
        for s, w in draw(
            st.sets(
                st.tuples(st.sampled_from(SPACES), st.sampled_from(ROOTS[:n_roots])), max_size=6
            )
        )
    ]
    custom: list[V2Role | LegacyRole] = [
        draw(v2_roles(f"c{i}")) for i in range(draw(st.integers(0, 3)))
    ]
    custom += [draw(legacy_roles(f"l{i}")) for i in range(draw(st.integers(0, 2)))]
    role_ids = [*V2_PREBUILT, *LEGACY_BUILTIN, *(r.id for r in custom), "ghost"]
    bindings = draw(
        st.lists(
            st.builds(
                RoleBinding,
                st.sampled_from(GROUPS),
                st.sampled_from(ws_ids),
                st.sampled_from(role_ids),
                st.sampled_from(("manual", "rule-1")),
            ),
            max_size=8,
        )
    )
    assignments = draw(
        st.lists(
            st.builds(
                SpaceAssignment,
                st.sampled_from(GROUPS),
                st.sampled_from(ws_ids),
                st.sampled_from([*SPACES, "nope"]),
            ),
            max_size=6,
        )
    )
    admins = draw(st.lists(st.builds(OrgAdminBinding, st.sampled_from(GROUPS)), max_size=1))
    cats = tuple(
        ParentModelSubsets(
            w, "A", (SubsetCategory("region", draw(st.booleans())), SubsetCategory("consent"))
        )
        for w in ROOTS[:n_roots]
        if draw(st.booleans())
    )
    resources = tuple(
        RegisteredResource(w, "sync", "A", frozenset({("env", "prod")})) for w in ROOTS[:n_roots]
    )
    return OrgConfig(
        workspaces=tuple(workspaces),
        spaces=tuple(spaces),
        roles=tuple(custom),
        org_admins=tuple(admins),
        role_bindings=tuple(bindings),
        space_assignments=tuple(assignments),
        subset_categories=cats,
        resources=resources,
    )


group_sets = st.frozensets(st.sampled_from(GROUPS), max_size=4)


@st.composite
def refs(draw: st.DrawFn) -> ResourceRef | None:
    kind = draw(st.sampled_from(("none", "v2", "audience", "legacy")))
    space = draw(st.none() | st.sampled_from(SPACES))
    if kind == "none":
        return None
    rid = draw(st.none() | st.sampled_from(ASK_IDS))
    if kind == "audience":
        subsets = draw(
            st.none()
            | st.dictionaries(
                st.sampled_from(("region", "consent", "tier")),
                st.lists(st.sampled_from(("EU", "US", "email")), min_size=1, max_size=2),
                max_size=2,
            )
        )
        return ResourceRef.audience(rid or "A", space, subsets)
    if kind == "v2":
        scope = draw(st.sampled_from(SCOPES))
        return ResourceRef(scope, rid, space_id=space, space_scoped=draw(st.booleans()))
    rtype = draw(st.sampled_from(sorted(LEGACY_APPLICABLE)))
    labels = draw(st.none() | st.frozensets(st.sampled_from(LABELS), max_size=2))
    return ResourceRef(rtype, rid, space_id=space, labels=labels)


@st.composite
def questions(draw: st.DrawFn) -> tuple[str, ResourceRef | None]:
    ref = draw(refs())
    if ref is None:
        pool = ["read", *_grants_of("workspace"), "manage_workspace"]
    elif ref.type == "audience":
        pool = _grants_of("parent_model")
    elif (ref.type in LEGACY_APPLICABLE and ref.labels is not None) or ref.type in (
        "model",
        "sync",
        "audience",
        "account",
    ):
        pool = sorted(LEGACY_APPLICABLE[ref.type]) if ref.type in LEGACY_APPLICABLE else ["read"]
    else:
        pool = ["read", *_grants_of(ref.type)]
        if ref.type in LEGACY_APPLICABLE:
            pool += sorted(LEGACY_APPLICABLE[ref.type])
    return draw(st.sampled_from(pool)), ref


@st.composite
def sync_questions(draw: st.DrawFn) -> tuple[SyncRef, str]:
    kind = draw(st.sampled_from(("source", "audience")))
    space = draw(st.none() | st.sampled_from(SPACES))
    if kind == "audience":
        subsets = draw(
            st.none()
            | st.dictionaries(
                st.sampled_from(("region",)),
                st.lists(st.sampled_from(("EU", "US")), min_size=1),
                max_size=1,
            )
        )
        source = ResourceRef.audience(draw(st.sampled_from(ASK_IDS)), None, subsets)
        action = draw(
            st.sampled_from(
                ("configure", "draft", "approve", "delete", "trigger", "view_data", "read")
            )
        )
    else:
        source = ResourceRef("source", draw(st.sampled_from(ASK_IDS)))
        action = draw(
            st.sampled_from(
                (
                    "configure",
                    "draft",
                    "approve",
                    "delete",
                    "trigger",
                    "view_data",
                    "read",
                    "start",
                    "enable",
                    "update",
                    "testrow",
                )
            )
        )
    sync = SyncRef(
        source,
        ResourceRef("destination", draw(st.sampled_from(ASK_IDS))),
        space,
        id=draw(st.none() | st.sampled_from(("A", "Z"))),
        model=draw(st.none() | st.just(ResourceRef("model", "M"))),
    )
    return sync, action
