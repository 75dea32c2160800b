"""scim2-tester (the python-scim project's SCIM 2.0 compliance checker) against idsync.

The app runs on a real uvicorn server (loopback, free port) on each backend; the checker
discovers it through /ServiceProviderConfig, /ResourceTypes and /Schemas with a bearer
token, then creates, reads, lists, searches, projects, replaces, patches (add, remove,
replace of every writable attribute, extension URN paths included) and deletes Users and
Groups. No result may be an error, critical or deviation, and none may be skipped.

Operators run the same checks with `python scripts/scim_compliance.py URL TOKEN`.
"""

from __future__ import annotations

from scim2_tester import Status

from idsync.app import create_app
from models.db.database import Database
from models.db.tokens import create_scim_token, get_or_create_org
from scripts.scim_compliance import describe, failures, run_checks
from tests.support.live_server import live_server
from tests.support.scim_client import make_settings

# Every check below must have run and succeeded for both resource types (a discovery
# failure makes scim2-tester stop early with few results, which must not pass silently).
EXPECTED_PER_RESOURCE = {
    "object_creation",
    "object_query",
    "object_query_without_id",
    "object_query_with_attributes",
    "object_list_with_attributes",
    "search_with_attributes",
    "object_replacement",
    "object_deletion",
    "check_add_attribute",
    "check_remove_attribute",
    "check_replace_attribute",
}
EXPECTED_DISCOVERY = {
    "service_provider_config_endpoint",
    "query_all_resource_types",
    "query_resource_type_by_id",
    "query_all_schemas",
    "access_schema_by_id",
    "random_url",
}


def test_scim2_tester_reports_no_error_or_deviation(database: Database) -> None:
    with database.write() as session:
        org = get_or_create_org(session, "scim2-tester")
        token = create_scim_token(session, org, "scim2-tester contract test")
    app = create_app(make_settings(), db=database)
    with live_server(app) as base:
        results = run_checks(f"{base}/scim/v2", token)

    failing = failures(results)
    report = "\n".join(describe(r) for r in failing)
    assert not failing, f"{len(failing)} of {len(results)} scim2-tester checks failed:\n{report}"

    succeeded = {(r.resource_type, r.title) for r in results if r.status == Status.SUCCESS}
    for title in EXPECTED_DISCOVERY:
        assert (None, title) in succeeded, f"discovery check {title} did not succeed"
    for resource_type in ("User", "Group"):
        for title in EXPECTED_PER_RESOURCE:
            assert (resource_type, title) in succeeded, f"{resource_type} {title} did not succeed"
    skipped = [describe(r) for r in results if r.status == Status.SKIPPED]
    assert not skipped, skipped


def test_scim2_tester_without_a_valid_token_gets_nowhere(database: Database) -> None:
    """The checker really authenticates: with a wrong token, discovery fails (401)."""
    app = create_app(make_settings(), db=database)
    with live_server(app) as base:
        results = run_checks(
            f"{base}/scim/v2", "idsync_scim_not-a-real-token", include_tags={"discovery"}
        )
    assert any(r.status == Status.ERROR for r in results), [describe(r) for r in results]
    assert not any(
        r.status == Status.SUCCESS and r.title == "service_provider_config_endpoint"
        for r in results
    )
