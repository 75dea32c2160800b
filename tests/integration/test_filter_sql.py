"""Filters and sorts compiled to SQL, executed on SQLite AND PostgreSQL (same expectations).

Rows are inserted directly through the ORM; every query is scoped to organization A the
way the listing code does it, and organization B holds look-alike rows that must never
show up in those results.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, text

from models.db.database import Database
from models.db.reads import reading
from models.db.tables import Group, GroupMember, Organization, User
from scim.errors import InvalidFilter, InvalidValue
from scim.filter import ValuePath, compile_filter, compile_sort, matches, parse_filter
from scim.filter.keyed import keyed_lookup
from scim.listing import SearchParams, search
from scim.schemas import (
    ENTERPRISE_USER,
    ENTERPRISE_USER_SCHEMA,
    GROUP_RESOURCE,
    USER_RESOURCE,
    USER_SCHEMA,
    Attribute,
    ResourceType,
    Schema,
    SchemaExtension,
)
from scim.users import groups_column, groups_from_column

TEST_EXT = "urn:example:params:scim:schemas:extension:test:2.0:User"
# A resource type with numeric and dateTime attributes (the standard schemas have none),
# stored like any extension: attrs[TEST_EXT][name].
TEST_USER = ResourceType(
    id="User",
    name="User",
    endpoint="/Users",
    description="User with test extension",
    schema=USER_SCHEMA,
    extensions=(
        SchemaExtension(ENTERPRISE_USER_SCHEMA),
        SchemaExtension(
            Schema(
                TEST_EXT,
                "Test",
                "numbers and dates",
                (
                    Attribute("level", "integer"),
                    Attribute("score", "decimal"),
                    Attribute("hiredAt", "dateTime"),
                ),
            )
        ),
    ),
)


def _at(month: int, day: int) -> datetime:
    return datetime(2024, month, day, 12, 0, tzinfo=UTC)


USERS: dict[str, dict[str, Any]] = {
    "u1": {
        "userName": "BJensen",
        "externalId": "EXT-1",
        "displayName": "Babs Jensen",
        "active": True,
        "created": _at(1, 10),
        "updated": _at(3, 1),
        "attrs": {
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "title": "Tour Guide",
            "userType": "Employee",
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": True},
                {"value": "babs@home.org", "type": "home"},
            ],
            ENTERPRISE_USER: {
                "employeeNumber": "701984",
                "department": "Tour Operations",
                "manager": {"value": "u2", "displayName": "Jim Smith"},
            },
            TEST_EXT: {"level": 3, "score": 4.5, "hiredAt": "2020-01-01T09:00:00+02:00"},
        },
    },
    "u2": {
        "userName": "jsmith",
        "externalId": "ext-2",
        "displayName": "Jim Smith",
        "active": False,
        "created": _at(2, 10),
        "updated": _at(2, 11),
        "attrs": {
            "name": {"givenName": "Jim", "familyName": "Smith"},
            "userType": "Contractor",
            "emails": [
                {"value": "jim@Example.org", "type": "home"},
                {"value": "j.smith@corp.example.com", "type": "work"},
            ],
            ENTERPRISE_USER: {"employeeNumber": "42", "department": "Eng"},
            TEST_EXT: {"level": 10, "score": -1.25, "hiredAt": "2020-01-01T08:00:00Z"},
        },
    },
    "u3": {
        "userName": "alice_100%",
        "externalId": None,
        "displayName": None,
        "active": True,
        "created": _at(3, 10),
        "updated": _at(4, 1),
        "attrs": {
            "name": {"givenName": "Alice"},
            "title": "",
            "emails": [],
            "phoneNumbers": [{"value": "+1 555 0100", "type": "mobile"}],
            TEST_EXT: {"level": 0},
        },
    },
    "u4": {
        "userName": "zed\\back",
        "externalId": "a*b?[c]",
        "displayName": "Zed",
        "active": True,
        "created": _at(4, 10),
        "updated": _at(4, 11),
        "attrs": {
            "title": "Manager",
            "emails": [
                {"value": "zed@work.example", "type": "work"},
                {"value": "Zed@Example.com", "type": "work", "primary": True},
            ],
        },
    },
    "u5": {
        "userName": "mixedCase",
        "externalId": None,
        "displayName": None,
        "active": True,
        "created": _at(5, 1),
        "updated": _at(5, 2),
        "attrs": {"title": "manager", "emails": None},
    },
}
GROUPS: dict[str, tuple[str, str | None, list[str]]] = {
    "g1": ("Admins", "G-1", ["u1", "u2"]),
    "g2": ("Tour Guides", None, ["u1"]),
    "g3": ("Empty", "g-3", []),
}


@pytest.fixture
def db(database: Database) -> Database:
    return _seed(database)


@pytest.fixture
def pg_db(pg_database: Database) -> Database:
    return _seed(pg_database)


def _seed(database: Database) -> Database:
    with database.write() as session:
        org_a = Organization(id="org-a", name="acme")
        org_b = Organization(id="org-b", name="globex")
        session.add_all([org_a, org_b])
        session.flush()
        for uid, spec in USERS.items():
            session.add(_user("org-a", uid, spec))
            # Organization B: the same documents under other ids (must never leak).
            session.add(_user("org-b", f"b-{uid}", spec))
        session.flush()
        for gid, (name, external_id, _) in GROUPS.items():
            for org, prefix in (("org-a", ""), ("org-b", "b-")):
                session.add(
                    Group(
                        id=prefix + gid,
                        org_id=org,
                        display_name=name,
                        display_name_norm=name.lower(),
                        external_id=external_id,
                        attrs={"displayName": name},
                        created_at=_at(1, int(gid[1])),
                        updated_at=_at(1, int(gid[1])),
                    )
                )
        session.flush()
        for gid, (_, _, members) in GROUPS.items():
            for uid in members:
                session.add(GroupMember(group_id=gid, user_id=uid, org_id="org-a"))
                session.add(GroupMember(group_id=f"b-{gid}", user_id=f"b-{uid}", org_id="org-b"))
    return database


def _user(org: str, uid: str, spec: dict[str, Any]) -> User:
    attrs = dict(spec["attrs"])
    attrs["userName"] = spec["userName"]
    for key, name in (("externalId", "externalId"), ("displayName", "displayName")):
        if spec[key] is not None:
            attrs[name] = spec[key]
    return User(
        id=uid,
        org_id=org,
        user_name=spec["userName"],
        user_name_norm=spec["userName"].lower(),
        external_id=spec["externalId"],
        display_name=spec["displayName"],
        active=spec["active"],
        attrs=attrs,
        created_at=spec["created"],
        updated_at=spec["updated"],
        version=int(uid[-1]),
    )


def _user_ids(database: Database, flt: str, resource: ResourceType = USER_RESOURCE) -> set[str]:
    condition = compile_filter(parse_filter(flt), resource, dialect_name=database.dialect)
    with database.read() as session:
        rows = session.scalars(select(User.id).where(User.org_id == "org-a", condition))
        return set(rows)


def _group_ids(database: Database, flt: str) -> set[str]:
    condition = compile_filter(parse_filter(flt), GROUP_RESOURCE, dialect_name=database.dialect)
    with database.read() as session:
        rows = session.scalars(select(Group.id).where(Group.org_id == "org-a", condition))
        return set(rows)


ALL = {"u1", "u2", "u3", "u4", "u5"}
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

USER_CASES: list[tuple[str, set[str]]] = [
    # userName: indexed norm column, case-insensitive
    ('userName eq "bjensen"', {"u1"}),
    ('USERNAME EQ "BJENSEN"', {"u1"}),
    ('userName ne "bjensen"', ALL - {"u1"}),
    ('userName co "SMI"', {"u2"}),
    ('userName sw "J"', {"u2"}),
    ('userName ew "CASE"', {"u5"}),
    ('userName co "_"', {"u3"}),
    ('userName co "%"', {"u3"}),
    ('userName co "e_1"', {"u3"}),
    ('userName co "n_e"', set()),
    ('userName co "\\\\"', {"u4"}),
    ('userName gt "m"', {"u5", "u4"}),
    ('userName le "bjensen"', {"u1", "u3"}),
    ("userName pr", ALL),
    # externalId: caseExact column
    ('externalId eq "EXT-1"', {"u1"}),
    ('externalId eq "ext-1"', set()),
    ('externalId sw "ext"', {"u2"}),
    ('externalId co "*b?"', {"u4"}),
    ('externalId co "[c]"', {"u4"}),
    ('externalId co "?"', {"u4"}),
    ("externalId pr", {"u1", "u2", "u4"}),
    ("not (externalId pr)", {"u3", "u5"}),
    ("externalId eq null", {"u3", "u5"}),
    ("externalId ne null", {"u1", "u2", "u4"}),
    # id
    ('id eq "u3"', {"u3"}),
    ('id eq "U3"', set()),
    # displayName: nullable column, case-insensitive
    ('displayName eq "babs jensen"', {"u1"}),
    ('displayName ne "Zed"', ALL - {"u4"}),
    # JSON strings, caseExact=false, absent/empty handling
    ('title eq "manager"', {"u4", "u5"}),
    ('title eq "MANAGER"', {"u4", "u5"}),
    ("title pr", {"u1", "u4", "u5"}),
    ('title ne "Manager"', {"u1", "u2", "u3"}),
    ('not (title eq "Manager")', {"u1", "u2", "u3"}),
    ('not (title co "guide")', ALL - {"u1"}),
    ('not (not (title co "guide"))', {"u1"}),
    ('title co ""', {"u1", "u3", "u4", "u5"}),
    ('title gt "n"', {"u1"}),
    ('name.givenName sw "b"', {"u1"}),
    ("name.familyName pr", {"u1", "u2"}),
    ("name pr", {"u1", "u2", "u3"}),
    ('urn:ietf:params:scim:schemas:core:2.0:User:name.familyName eq "SMITH"', {"u2"}),
    # boolean
    ("active eq true", ALL - {"u2"}),
    ("active eq false", {"u2"}),
    ("active ne true", {"u2"}),
    ("not (active eq false)", ALL - {"u2"}),
    # precedence and parentheses
    ('userType eq "Employee" or userType eq "Contractor" and active eq true', {"u1"}),
    ('(userType eq "Employee" or userType eq "Contractor") and active eq false', {"u2"}),
    ('title pr and not (title eq "manager") or userName eq "jsmith"', {"u1", "u2"}),
    # multi-valued: any element; bare attribute compares .value
    ('emails co "example.com"', {"u1", "u2", "u4"}),
    ('emails.value ew "@EXAMPLE.COM"', {"u1", "u4"}),
    ('emails.type eq "home"', {"u1", "u2"}),
    ('emails.type ne "work"', {"u1", "u2"}),
    ('not (emails.type eq "work")', {"u3", "u5"}),
    ("emails pr", {"u1", "u2", "u4"}),
    ("emails.primary eq true", {"u1", "u4"}),
    ('phoneNumbers.type eq "mobile"', {"u3"}),
    # value paths: all conditions on the SAME element
    ('emails[type eq "home" and value co "example.com"]', set()),
    ('emails.type eq "home" and emails.value co "example.com"', {"u1", "u2"}),
    ('emails[type eq "work" and value co "example.com"]', {"u1", "u2", "u4"}),
    ('emails[type eq "work" and primary eq true]', {"u1", "u4"}),
    ('emails[type eq "work" and not (primary eq true)]', {"u2", "u4"}),
    ('emails[type eq "home" or primary eq true]', {"u1", "u2", "u4"}),
    ('emails[value sw "zed@" and value ew ".com"]', {"u4"}),
    ('emails[not (value co "example")]', {"u1"}),
    ('name[givenName eq "jim" or familyName eq "jensen"]', {"u1", "u2"}),
    # Entra's form: some work email has this value
    ('emails[type eq "work"].value eq "bjensen@example.com"', {"u1"}),
    ('emails[type eq "home"].value eq "bjensen@example.com"', set()),
    ('emails[type eq "work"].value co "zed"', {"u4"}),
    # enterprise extension, URN-qualified and bare
    (f'{ENT}:employeeNumber eq "701984"', {"u1"}),
    (f'{ENT.upper()}:EMPLOYEENUMBER eq "42"', {"u2"}),
    ('employeeNumber eq "42"', {"u2"}),
    (f"{ENT}:department pr", {"u1", "u2"}),
    (f'not ({ENT}:department eq "eng")', ALL - {"u2"}),
    (f'{ENT}:manager.value eq "u2"', {"u1"}),
    (f"{ENT}:manager pr", {"u1"}),
    # groups: EXISTS on scim_group_members
    ('groups.value eq "g1"', {"u1", "u2"}),
    ('groups eq "g2"', {"u1"}),
    ('groups[value eq "g2"]', {"u1"}),
    ('groups.display eq "tour guides"', {"u1"}),
    ('groups[display co "admin" and type eq "direct"]', {"u1", "u2"}),
    ("groups pr", {"u1", "u2"}),
    ('not (groups.value eq "g1")', {"u3", "u4", "u5"}),
    # meta
    ('meta.created gt "2024-02-10T12:00:00Z"', {"u3", "u4", "u5"}),
    ('meta.created ge "2024-02-10T12:00:00Z"', {"u2", "u3", "u4", "u5"}),
    (
        'meta.created ge "2024-02-01T00:00:00Z" and meta.created lt "2024-04-01T00:00:00Z"',
        {"u2", "u3"},
    ),
    ('meta.lastModified le "2024-03-01T13:00:00+01:00"', {"u1", "u2"}),
    ('meta.lastModified eq "2024-02-11T12:00:00Z"', {"u2"}),
    ('meta.resourceType eq "User"', ALL),
    ('meta.resourceType eq "Group"', set()),
    ('meta.version eq "W/\\"2\\""', {"u2"}),
    ("meta pr", ALL),
]

TEST_EXT_CASES: list[tuple[str, set[str]]] = [
    # numbers compare numerically (10 > 3), not as text
    ("level gt 2", {"u1", "u2"}),
    ("level eq 3.0", {"u1"}),
    ("level le 0", {"u3"}),
    ("level ne 3", {"u2", "u3", "u4", "u5"}),
    (f"{TEST_EXT}:score lt 0", {"u2"}),
    ("score ge -1.25e0", {"u1", "u2"}),
    # dateTimes compare as instants (09:00+02:00 is before 08:00Z)
    ('hiredAt gt "2020-01-01T07:30:00Z"', {"u2"}),
    ('hiredAt lt "2020-01-01T08:00:00Z"', {"u1"}),
    ('hiredAt eq "2020-01-01T07:00:00Z"', {"u1"}),
    ("hiredAt pr", {"u1", "u2"}),
]

GROUP_CASES: list[tuple[str, set[str]]] = [
    ('displayName eq "admins"', {"g1"}),
    ('displayName co "GUIDE"', {"g2"}),
    ('displayName ne "Admins"', {"g2", "g3"}),
    ('externalId eq "G-1"', {"g1"}),
    ("externalId pr", {"g1", "g3"}),
    ('members.value eq "u2"', {"g1"}),
    ('members[value eq "u1"]', {"g1", "g2"}),
    ('members eq "u1" and not (members eq "u2")', {"g2"}),
    ('members[display eq "jim smith"]', {"g1"}),
    ('members.display eq "bjensen"', set()),
    ('members.display eq "Babs Jensen"', {"g1", "g2"}),
    ('members.type eq "User"', {"g1", "g2"}),
    ("members pr", {"g1", "g2"}),
    ("not (members pr)", {"g3"}),
    ('meta.created lt "2024-01-02T13:00:00Z"', {"g1", "g2"}),
    ('meta.resourceType eq "Group"', {"g1", "g2", "g3"}),
]


@pytest.mark.parametrize(("flt", "expected"), USER_CASES, ids=[c[0] for c in USER_CASES])
def test_user_filters(db: Database, flt: str, expected: set[str]) -> None:
    assert _user_ids(db, flt) == expected


@pytest.mark.parametrize(("flt", "expected"), TEST_EXT_CASES, ids=[c[0] for c in TEST_EXT_CASES])
def test_numeric_and_datetime_json_attributes(db: Database, flt: str, expected: set[str]) -> None:
    assert _user_ids(db, flt, TEST_USER) == expected


@pytest.mark.parametrize(("flt", "expected"), GROUP_CASES, ids=[c[0] for c in GROUP_CASES])
def test_group_filters(db: Database, flt: str, expected: set[str]) -> None:
    assert _group_ids(db, flt) == expected


def test_filter_adds_no_org_scoping_and_scoped_queries_never_leak(db: Database) -> None:
    condition = compile_filter(
        parse_filter('userName eq "bjensen" or groups.value eq "b-g2"'),
        USER_RESOURCE,
        dialect_name=db.dialect,
    )
    with db.read() as session:
        unscoped = set(session.scalars(select(User.id).where(condition)))
        scoped_b = set(session.scalars(select(User.id).where(User.org_id == "org-b", condition)))
    assert unscoped == {"u1", "b-u1"}
    assert scoped_b == {"b-u1"}
    assert _user_ids(db, 'groups.value eq "b-g1"') == set()


@pytest.mark.parametrize(
    "flt",
    [
        'nickName2 eq "x"',
        'name.middle eq "x"',
        'urn:example:unknown:2.0:User:foo eq "x"',
        'password eq "x"',
        "active gt true",
        'active eq "yes"',
        'meta.created gt "yesterday"',
        'meta.created co "2024"',
        "title eq 5",
        'name eq "x"',
        'addresses eq "x"',
        'groups.$ref eq "x"',
        'meta.location eq "x"',
        "title gt null",
    ],
)
def test_invalid_filters_raise_invalid_filter(db: Database, flt: str) -> None:
    with pytest.raises(InvalidFilter):
        compile_filter(parse_filter(flt), USER_RESOURCE, dialect_name=db.dialect)


def _sorted_ids(
    database: Database,
    sort_by: str | None,
    order: str | None = None,
    resource: ResourceType = USER_RESOURCE,
) -> list[str]:
    clauses = compile_sort(sort_by, order, resource, dialect_name=database.dialect)
    table = User if resource.schema.id == USER_SCHEMA.id else Group
    with database.read() as session:
        query = select(table.id).where(table.org_id == "org-a").order_by(*clauses)
        return list(session.scalars(query))


SORT_CASES: list[tuple[str | None, str | None, list[str]]] = [
    (None, None, ["u1", "u2", "u3", "u4", "u5"]),
    (None, "descending", ["u5", "u4", "u3", "u2", "u1"]),
    ("userName", None, ["u3", "u1", "u2", "u5", "u4"]),
    ("USERNAME", "descending", ["u4", "u5", "u2", "u1", "u3"]),
    ("externalId", "ascending", ["u1", "u4", "u2", "u3", "u5"]),
    ("externalId", "descending", ["u5", "u3", "u2", "u4", "u1"]),
    ("title", None, ["u3", "u4", "u5", "u1", "u2"]),
    ("name.givenName", None, ["u3", "u1", "u2", "u4", "u5"]),
    ("meta.lastModified", "descending", ["u5", "u4", "u3", "u1", "u2"]),
    ("emails", None, ["u1", "u2", "u4", "u3", "u5"]),
    ("emails.type", "descending", ["u5", "u3", "u4", "u1", "u2"]),
    ("groups.display", None, ["u1", "u2", "u3", "u4", "u5"]),
    (f"{ENT}:employeeNumber", None, ["u2", "u1", "u3", "u4", "u5"]),
    ("active", "descending", ["u5", "u4", "u3", "u1", "u2"]),
]


@pytest.mark.parametrize(("sort_by", "order", "expected"), SORT_CASES)
def test_sort(db: Database, sort_by: str | None, order: str | None, expected: list[str]) -> None:
    assert _sorted_ids(db, sort_by, order) == expected


def test_sort_groups(db: Database) -> None:
    assert _sorted_ids(db, "displayName", None, GROUP_RESOURCE) == ["g1", "g3", "g2"]
    assert _sorted_ids(db, "members", None, GROUP_RESOURCE) == ["g1", "g2", "g3"]


@pytest.mark.parametrize(
    ("sort_by", "order"),
    [("nope", None), ("name", None), ("userName[", None), ("password", None), ("userName", "up")],
)
def test_invalid_sort_raises_invalid_value(db: Database, sort_by: str, order: str | None) -> None:
    with pytest.raises(InvalidValue):
        compile_sort(sort_by, order, USER_RESOURCE, dialect_name=db.dialect)


def test_user_name_eq_uses_the_org_user_name_norm_index(pg_db: Database) -> None:
    db = pg_db
    condition = compile_filter(
        parse_filter('userName eq "BJensen"'), USER_RESOURCE, dialect_name="postgresql"
    )
    query = select(User.id).where(User.org_id == "org-a", condition)
    compiled = query.compile(db.engine, compile_kwargs={"literal_binds": True})
    with db.engine.connect() as conn:
        # A handful of rows would be seq-scanned anyway: ask whether the index CAN serve it.
        conn.execute(text("ANALYZE scim_users"))
        conn.execute(text("SET enable_seqscan = off"))
        plan = "\n".join(row[0] for row in conn.execute(text(f"EXPLAIN {compiled}")))
    assert "uq_scim_users_org_id_user_name_norm" in plan, plan


VALUE_PATH_CASES = [case for case in USER_CASES if case[0].startswith(("emails[", "name["))]


@pytest.mark.parametrize(
    ("flt", "expected"), VALUE_PATH_CASES, ids=[c[0] for c in VALUE_PATH_CASES]
)
def test_in_memory_matcher_agrees_with_sql(flt: str, expected: set[str]) -> None:
    """`matches` (PATCH value paths) gives the SQL answers on the same documents."""
    node = parse_filter(flt)
    assert isinstance(node, ValuePath)
    attr = USER_SCHEMA.attr(node.path.attr)
    assert attr is not None
    found = set()
    for uid, spec in USERS.items():
        values = spec["attrs"].get(attr.name)
        elements = values if attr.multi_valued else [values]
        if any(isinstance(e, dict) and matches(node.filter, e, attr) for e in elements or []):
            found.add(uid)
    assert found == expected


# --- the listing code, which answers `attr eq "…"` on a column from a prebuilt statement


KEYED_CASES: list[tuple[ResourceType, str, set[str]]] = [
    (USER_RESOURCE, 'userName eq "bjensen"', {"u1"}),
    (USER_RESOURCE, 'USERNAME EQ "BJENSEN"', {"u1"}),
    (USER_RESOURCE, f'{USER_SCHEMA.id}:userName eq "BJensen"', {"u1"}),
    (USER_RESOURCE, 'externalId eq "EXT-1"', {"u1"}),
    (USER_RESOURCE, 'externalId eq "ext-1"', set()),  # caseExact
    (USER_RESOURCE, 'id eq "u3"', {"u3"}),
    (USER_RESOURCE, 'id eq "b-u3"', set()),  # another organization's row
    (USER_RESOURCE, 'userName eq "nobody"', set()),
    (GROUP_RESOURCE, 'displayName eq "ADMINS"', {"g1"}),
    (GROUP_RESOURCE, 'externalId eq "G-1"', {"g1"}),
]
GENERAL_CASES: list[tuple[ResourceType, str]] = [
    (USER_RESOURCE, 'userName ne "bjensen"'),
    (USER_RESOURCE, 'userName co "jensen"'),
    (USER_RESOURCE, 'displayName eq "babs jensen"'),  # caseExact=false on a raw column
    (USER_RESOURCE, 'title eq "Tour Guide"'),  # held in the JSON document
    (USER_RESOURCE, 'emails.value eq "bjensen@example.com"'),  # multi-valued
    (USER_RESOURCE, "active eq true"),  # not a string
    (USER_RESOURCE, 'userName eq "bjensen" and active eq true'),
    (USER_RESOURCE, f'{ENT}:employeeNumber eq "701984"'),
    (USER_RESOURCE, 'meta.created eq "2024-01-10T12:00:00Z"'),
    (GROUP_RESOURCE, 'members.value eq "u1"'),
]


def _listed(
    database: Database, resource: ResourceType, flt: str, total: int | None = None, **params: Any
) -> set[str]:
    """The ids `search` lists; `total`: the totalResults to expect (default: as listed)."""
    with reading(database) as conn:
        found, rows, extras = search(
            conn,
            resource,
            "org-a",
            SearchParams(filter=flt, **params),
            default_count=100,
            max_results=100,
            extra=groups_column if resource is USER_RESOURCE else None,
        )
    ids = {row.id for row in rows}
    assert found == (len(ids) if total is None else total)
    if extras is not None:  # each user's groups ride along, exactly
        for row, value in zip(rows, extras, strict=True):
            mine = {gid for gid, (_, _, members) in GROUPS.items() if row.id in members}
            assert {gid for gid, _ in groups_from_column(value)} == mine
    return ids


@pytest.mark.parametrize(
    ("resource", "flt", "expected"), KEYED_CASES, ids=[f"{c[0].id}:{c[1]}" for c in KEYED_CASES]
)
def test_keyed_lookups_take_the_prebuilt_statement_and_agree(
    db: Database, resource: ResourceType, flt: str, expected: set[str]
) -> None:
    assert keyed_lookup(parse_filter(flt), resource, db.dialect) is not None  # type: ignore[arg-type]
    assert _listed(db, resource, flt) == expected
    table = User if resource is USER_RESOURCE else Group
    general = compile_filter(parse_filter(flt), resource, dialect_name=db.dialect)
    with db.read() as session:
        assert set(session.scalars(select(table.id).where(table.org_id == "org-a", general))) == (
            expected
        )
    # paging and sorting through the same statement
    assert _listed(db, resource, flt, total=len(expected), start_index=2) == set()
    assert _listed(db, resource, flt, total=len(expected), count=0) == set()


@pytest.mark.parametrize(
    ("resource", "flt"), GENERAL_CASES, ids=[f"{c[0].id}:{c[1]}" for c in GENERAL_CASES]
)
def test_other_filters_take_the_general_compiler(
    db: Database, resource: ResourceType, flt: str
) -> None:
    assert keyed_lookup(parse_filter(flt), resource, db.dialect) is None  # type: ignore[arg-type]
    table = User if resource is USER_RESOURCE else Group
    general = compile_filter(parse_filter(flt), resource, dialect_name=db.dialect)
    with db.read() as session:
        expected = set(session.scalars(select(table.id).where(table.org_id == "org-a", general)))
    assert _listed(db, resource, flt) == expected


@pytest.mark.parametrize(("sort_by", "order", "expected"), SORT_CASES)
def test_pages_keep_the_sort_order(
    db: Database, sort_by: str | None, order: str | None, expected: list[str]
) -> None:
    """Pages of two through `search`: concatenated, they are the sorted list."""
    if sort_by is None:
        expected = sorted(expected)  # sortOrder without sortBy: the default order
    listed: list[str] = []
    with reading(db) as conn:
        for start in (1, 3, 5):
            params = SearchParams(sort_by=sort_by, sort_order=order, start_index=start, count=2)
            total, rows, extras = search(
                conn,
                USER_RESOURCE,
                "org-a",
                params,
                default_count=2,
                max_results=2,
                extra=groups_column,
            )
            assert total == len(expected)
            assert extras is not None  # each user's groups ride along with the page
            for row, value in zip(rows, extras, strict=True):
                mine = {gid for gid, (_, _, members) in GROUPS.items() if row.id in members}
                assert {gid for gid, _ in groups_from_column(value)} == mine
            listed += [row.id for row in rows]
    assert listed == expected
