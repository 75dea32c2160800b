"""config_loader: SQL rows -> models.access inputs, scoped to one organization."""

from __future__ import annotations

from sqlalchemy import event

from models.access.inputs import OrgAdminBinding, RoleBinding, SpaceAssignment
from models.access.roles import V2Role
from models.db.config_loader import load_org_config, load_user_inputs, users_in_groups
from models.db.config_tables import (
    ConfigSpace,
    ConfigWorkspace,
    CustomRole,
    OrgAdminBindingRow,
    RegisteredResourceRow,
    RoleBindingRow,
    SpaceAssignmentRow,
    SubsetCategoryRow,
)
from models.db.database import Database
from models.db.tables import Group, GroupMember, Organization, User


def _seed(database: Database) -> dict[str, str]:
    with database.write() as s:
        a = Organization(name="acme")
        b = Organization(name="globex")
        s.add_all([a, b])
        s.flush()
        g1 = Group(org_id=a.id, display_name="G1", display_name_norm="g1")
        g2 = Group(org_id=a.id, display_name="G2", display_name_norm="g2")
        gb = Group(org_id=b.id, display_name="G1", display_name_norm="g1")
        u1 = User(org_id=a.id, user_name="u1", user_name_norm="u1")
        u2 = User(org_id=a.id, user_name="u2", user_name_norm="u2", active=False)
        u3 = User(org_id=a.id, user_name="u3", user_name_norm="u3")
        ub = User(org_id=b.id, user_name="u1", user_name_norm="u1")
        s.add_all([g1, g2, gb, u1, u2, u3, ub])
        s.flush()
        s.add_all(
            [
                GroupMember(group_id=g1.id, user_id=u1.id, org_id=a.id),
                GroupMember(group_id=g2.id, user_id=u1.id, org_id=a.id),
                GroupMember(group_id=g2.id, user_id=u2.id, org_id=a.id),
                GroupMember(group_id=gb.id, user_id=ub.id, org_id=b.id),
            ]
        )
        s.add_all(
            [
                ConfigWorkspace(org_id=a.id, id="prod", spaces_enabled=True),
                ConfigWorkspace(org_id=b.id, id="prod", permissions_model="legacy"),
            ]
        )
        s.flush()
        s.add_all(
            [
                ConfigWorkspace(org_id=a.id, id="dev", parent_workspace_id="prod"),
                ConfigSpace(org_id=a.id, id="emea", workspace_id="prod", name="EMEA"),
                CustomRole(
                    org_id=a.id,
                    id="analyst",
                    name="Analyst",
                    model="v2",
                    definition={
                        "workspace_grants": ["access_agents"],
                        "resource_grants": [
                            {"scope": "source", "resource_id": "*", "grants": ["view_data"]}
                        ],
                    },
                ),
                CustomRole(
                    org_id=a.id,
                    id="broken",
                    name="B",
                    model="v2",
                    definition={"workspace_grants": ["nope"]},
                ),
                OrgAdminBindingRow(org_id=a.id, group_id=g2.id, source="manual"),
                RoleBindingRow(
                    org_id=a.id,
                    group_id=g1.id,
                    workspace_id="prod",
                    role_id="analyst",
                    source="r1",
                ),
                RoleBindingRow(
                    org_id=b.id,
                    group_id=gb.id,
                    workspace_id="prod",
                    role_id="legacy_admin",
                    source="manual",
                ),
                SubsetCategoryRow(
                    org_id=a.id,
                    workspace_id="prod",
                    parent_model_id="pm",
                    name="region",
                    required=True,
                ),
                RegisteredResourceRow(
                    org_id=a.id,
                    workspace_id="prod",
                    type="sync",
                    resource_id="s1",
                    labels={"environment": "production"},
                ),
            ]
        )
        s.flush()
        s.add(
            SpaceAssignmentRow(
                org_id=a.id, group_id=g1.id, workspace_id="prod", space_id="emea", source="manual"
            )
        )
        return {
            "a": a.id,
            "b": b.id,
            "g1": g1.id,
            "g2": g2.id,
            "gb": gb.id,
            "u1": u1.id,
            "u2": u2.id,
            "u3": u3.id,
            "ub": ub.id,
        }


def test_load_org_config_is_org_scoped(database: Database) -> None:
    ids = _seed(database)
    with database.read() as s:
        cfg = load_org_config(s, ids["a"])
    assert [w.id for w in cfg.workspaces] == ["dev", "prod"]
    assert cfg.workspace_by_id["dev"].parent_workspace_id == "prod"
    assert cfg.workspace_by_id["prod"].spaces_enabled
    assert [(s.id, s.workspace_id) for s in cfg.spaces] == [("emea", "prod")]
    assert [r.id for r in cfg.roles] == ["analyst"]  # "broken" is left out
    assert isinstance(cfg.roles[0], V2Role)
    assert cfg.org_admins == (OrgAdminBinding(ids["g2"], "manual"),)
    assert cfg.role_bindings == (RoleBinding(ids["g1"], "prod", "analyst", "r1"),)
    assert cfg.space_assignments == (SpaceAssignment(ids["g1"], "prod", "emea", "manual"),)
    assert cfg.categories_of("prod", "pm") == (("region", True),)
    assert cfg.labels_by_resource[("prod", "sync", "s1")] == frozenset(
        {("environment", "production")}
    )


def test_load_user_inputs_and_members(database: Database) -> None:
    ids = _seed(database)
    with database.read() as s:
        users = load_user_inputs(s, ids["a"], [ids["u1"], ids["u2"], ids["u3"], ids["ub"], "nope"])
        members = users_in_groups(s, ids["a"], [ids["g1"], ids["g2"], ids["gb"]])
    assert set(users) == {ids["u1"], ids["u2"], ids["u3"]}
    assert users[ids["u1"]].group_ids == {ids["g1"], ids["g2"]}
    assert users[ids["u1"]].active
    assert not users[ids["u2"]].active
    assert users[ids["u3"]].group_ids == frozenset()
    assert members == {ids["u1"], ids["u2"]}


def test_loader_query_count_is_constant(database: Database) -> None:
    ids = _seed(database)
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    engines = database.engines
    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    try:
        with database.read() as s:
            load_org_config(s, ids["a"])
            config_queries = len(statements)
            statements.clear()
            load_user_inputs(s, ids["a"], [ids["u1"], ids["u2"], ids["u3"]])
            user_queries = len(statements)
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)
    assert 0 < config_queries <= 8
    assert user_queries == 2
