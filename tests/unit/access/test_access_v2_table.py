"""Contract §2.2: every row of the pre-built role table, with and without approval flows."""

from __future__ import annotations

import pytest

from models.access import ResourceRef
from tests.unit.access.builders import one_role, user

# The contract's table, verbatim: grant | admin | editor | draft editor | viewer
TABLE = """
create_sources                      | Y | Y | - | -
create_destinations                 | Y | Y | - | -
source:view_data                    | Y | Y | Y | -
source:draft_models_syncs           | Y | Y | Y | -
source:approve_models_syncs         | Y | Y | - | -
source:configure_schema             | Y | - | - | -
source:manage_source                | Y | - | - | -
destination:trigger_syncs           | Y | Y | - | -
destination:draft_syncs             | Y | Y | Y | -
destination:approve_syncs           | Y | Y | - | -
destination:manage_destination      | Y | - | - | -
parent_model:view_parent_model_data | Y | Y | Y | -
parent_model:configure_audiences_syncs | Y | Y | Y | -
parent_model:trigger_audience_syncs | Y | Y | - | -
parent_model:approve_audience_syncs | Y | - | - | -
access_agents                       | Y | Y | - | -
configure_agents                    | Y | - | - | -
create_event_sources                | Y | Y | - | -
create_event_warehouse_destinations | Y | Y | - | -
create_event_streaming_destinations | Y | Y | - | -
create_event_contracts              | Y | Y | - | -
create_event_functions              | Y | Y | - | -
manage_workspace                    | Y | - | - | -
"""
ROLES = ("admin", "editor", "draft_editor", "viewer")


def _rows() -> list[tuple[str, str | None, str, bool]]:
    out = []
    for line in TABLE.strip().splitlines():
        cells = [c.strip() for c in line.split("|")]
        scope, _, grant = cells[0].rpartition(":")
        for role, mark in zip(ROLES, cells[1:], strict=True):
            out.append((role, scope or None, grant, mark == "Y"))
    return out


def _ref(scope: str | None) -> ResourceRef | None:
    return None if scope is None else ResourceRef(scope, "R1")


@pytest.mark.parametrize(("role", "scope", "grant", "expected"), _rows())
def test_prebuilt_row_with_approvals(
    role: str, scope: str | None, grant: str, expected: bool
) -> None:
    am = one_role(role, approvals=True)
    assert am.check(user("g1"), "w1", grant, _ref(scope)) is expected
    # '*' grants cover every id, including ones created later
    if scope is not None:
        assert am.check(user("g1"), "w1", grant, ResourceRef(scope, "new-id")) is expected


# Without approval flows "draft + approve" is the single configure_* grant.
NO_APPROVALS = {
    ("source", "configure_models_syncs"): {"admin": True, "editor": True},
    ("destination", "configure_syncs"): {"admin": True, "editor": True},
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("key", sorted(NO_APPROVALS))
def test_prebuilt_without_approvals_configure(role: str, key: tuple[str, str]) -> None:
    scope, grant = key
    expected = NO_APPROVALS[key].get(role, False)
    am = one_role(role, approvals=False)
    assert am.check(user("g1"), "w1", grant, ResourceRef(scope, "X")) is expected
    # asking about a half in a workspace without approvals means asking about configure_*
    half = "draft_models_syncs" if scope == "source" else "draft_syncs"
    assert am.check(user("g1"), "w1", half, ResourceRef(scope, "X")) is expected


@pytest.mark.parametrize("role", ROLES)
def test_approvals_configure_equals_both_halves(role: str) -> None:
    am = one_role(role, approvals=True)
    u = user("g1")
    for scope, configure, draft, approve in (
        ("source", "configure_models_syncs", "draft_models_syncs", "approve_models_syncs"),
        ("destination", "configure_syncs", "draft_syncs", "approve_syncs"),
    ):
        ref = ResourceRef(scope, "X")
        both = am.check(u, "w1", draft, ref) and am.check(u, "w1", approve, ref)
        assert am.check(u, "w1", configure, ref) is both


@pytest.mark.parametrize("role", ROLES)
def test_only_admin_holds_journeys_and_events_resources(role: str) -> None:
    am = one_role(role)
    u = user("g1")
    for ref, grant in (
        (ResourceRef("parent_model", "P"), "configure_journeys"),
        (ResourceRef("parent_model", "P"), "publish_journeys"),
        (ResourceRef("event_source", "E"), "access_data"),
        (ResourceRef("event_warehouse_destination", "E"), "run"),
        (ResourceRef("event_function", "E"), "edit"),
    ):
        assert am.check(u, "w1", grant, ref) is (role == "admin")


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads(role: str) -> None:
    assert one_role(role).check(user("g1"), "w1", "read") is True
    assert one_role(role).check(user("g2"), "w1", "read") is False
