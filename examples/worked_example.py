"""Seed the "acme" organization of docs/worked-example.md into a running idsync and print
the answers the document shows.

    .venv/bin/python examples/worked_example.py --url URL --scim-token T --admin-key K

0. Waits until the server answers GET /healthz.
1. The IdP's part, over SCIM (the token's organization must be acme): seven users and
   seven groups, found by userName / displayName when they exist already.
2. `idsync apply examples/acme.yaml --dry-run`, then the same for real, then once more
   (idempotent). `idsync` runs as `python -m idsync.cli` with this script's interpreter
   and environment, so it reaches the same database as the server when run from the
   same directory with the same settings (DATABASE_URL / IDSYNC_DATA_DIR).
3. The admin API's answers: a mapping rule's binding, two explains, approvals,
   environments and the legacy workspace, the legacy conflict report, one user's
   effective permissions.

Every block starts with a line `# <key>: <title>`; tests/integration/test_worked_example.py
compares the blocks with the document's. Needs only httpx (an idsync dependency).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

CONFIG = Path(__file__).resolve().parent / "acme.yaml"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

# user name -> (given name, family name)
USERS = {
    "pat": ("Pat", "Platform"),
    "mia": ("Mia", "Marketing"),
    "ana": ("Ana", "Analyst"),
    "dan": ("Dan", "Drafter"),
    "fay": ("Fay", "Finance"),
    "olga": ("Olga", "Oncall"),
    "sam": ("Sam", "Scientist"),
}
# displayName -> (externalId or None, member user names)
GROUPS: dict[str, tuple[str | None, list[str]]] = {
    "Platform admins": ("okta-platform-admins", ["pat"]),
    "Marketing Editors": (None, ["mia"]),
    "EU Analysts": (None, ["ana"]),
    "Finance Drafters": (None, ["dan", "fay"]),
    "Finance Approvers": (None, ["fay"]),
    "Ops Oncall": (None, ["olga"]),
    "ds-ops-viewer": (None, ["olga", "sam"]),
}
EMAIL_DOMAIN = "acme.example"


def block(key: str, title: str, body: str) -> None:
    print(f"# {key}: {title}")
    print(body.rstrip("\n"))
    print()


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def checked(response: httpx.Response) -> Any:
    if response.is_error:
        raise SystemExit(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text}"
        )
    return response.json() if response.content else None


def find_one(scim: httpx.Client, resource: str, attribute: str, value: str) -> str | None:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    found = checked(scim.get(f"/{resource}", params={"filter": f'{attribute} eq "{escaped}"'}))
    resources = found.get("Resources", [])
    return str(resources[0]["id"]) if resources else None


def provision(scim: httpx.Client) -> tuple[dict[str, str], dict[str, str]]:
    """The IdP's pushes; returns (user name -> id, group displayName -> id)."""
    users: dict[str, str] = {}
    for name, (given, family) in USERS.items():
        user_name = f"{name}@{EMAIL_DOMAIN}"
        existing = find_one(scim, "Users", "userName", user_name)
        if existing is None:
            user: dict[str, Any] = {
                "schemas": [USER_SCHEMA],
                "userName": user_name,
                "name": {"givenName": given, "familyName": family},
                "emails": [{"value": user_name, "primary": True}],
                "active": True,
            }
            existing = str(checked(scim.post("/Users", json=user))["id"])
        users[name] = existing
    groups: dict[str, str] = {}
    for display_name, (external_id, members) in GROUPS.items():
        member_refs = [{"value": users[member]} for member in members]
        existing = find_one(scim, "Groups", "displayName", display_name)
        if existing is None:
            group: dict[str, Any] = {
                "schemas": [GROUP_SCHEMA],
                "displayName": display_name,
                "members": member_refs,
            }
            if external_id is not None:
                group["externalId"] = external_id
            existing = str(checked(scim.post("/Groups", json=group))["id"])
        else:
            patch = {
                "schemas": [PATCH_SCHEMA],
                "Operations": [{"op": "replace", "path": "members", "value": member_refs}],
            }
            checked(scim.patch(f"/Groups/{existing}", json=patch))
        groups[display_name] = existing
    return users, groups


def wait_until_serving(base: str, seconds: float = 60) -> None:
    """Wait for GET /healthz (the server may just have been started next to this script;
    the example needs the API only, not the worker or Redis that /readyz also asks for)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"idsync at {base} does not answer after {seconds:.0f} s")
        time.sleep(0.2)


def idsync_apply(*extra: str) -> str:
    result = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "idsync.cli", "apply", str(CONFIG), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"idsync apply {' '.join(extra)} failed:\n{result.stderr}")
    return result.stdout


def explain(admin: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = checked(admin.post("/api/v1/explain", json=body))
    return answer


def request_and_answer(method: str, path: str, body: Any, answer: Any) -> str:
    request = f"{method} {path}" + ("" if body is None else f"\n{as_json(body)}")
    return f"{request}\n\n{as_json(answer)}"


def summary(label: str, answer: dict[str, Any]) -> str:
    verdict = "allowed" if answer["allowed"] else f"denied ({answer['reason']})"
    lines = [f"{label}: {verdict}"]
    if answer["missing"]:
        lines.append(f"  missing: {'; '.join(answer['missing'])}")
    lines.append(f"  rules: {', '.join(answer['rules'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url", required=True, help="idsync's base URL, e.g. http://127.0.0.1:8000"
    )
    parser.add_argument("--scim-token", required=True, help="a SCIM token of the acme org")
    parser.add_argument("--admin-key", required=True, help="an admin API key of the acme org")
    args = parser.parse_args(argv)
    base = args.url.rstrip("/")
    wait_until_serving(base)
    scim = httpx.Client(
        base_url=f"{base}/scim/v2",
        headers={"Authorization": f"Bearer {args.scim_token}"},
        timeout=30,
    )
    admin = httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {args.admin_key}"}, timeout=30
    )
    with scim, admin:
        users, groups = provision(scim)
        names = {user_id: name for name, user_id in users.items()}
        ids = [f"user  {name:<18} {user_id}" for name, user_id in users.items()]
        ids += [f"group {name:<18} {group_id}" for name, group_id in groups.items()]
        block("ids", "ids as assigned in this run", "\n".join(ids))

        dry_run = idsync_apply("--dry-run")
        block("dry-run", "idsync apply examples/acme.yaml --dry-run", dry_run)
        applied = idsync_apply()
        diff = dry_run.splitlines()[:-1]
        if diff and applied.splitlines()[:-1] == diff:
            applied = "(the dry run's lines)\n" + applied.splitlines()[-1]
        block("apply", "idsync apply examples/acme.yaml", applied)
        block("apply-again", "idsync apply examples/acme.yaml (again)", idsync_apply())

        path = "/api/v1/bindings?source=ds-groups"
        block(
            "rule-binding",
            "the binding the mapping rule made",
            request_and_answer("GET", path, None, checked(admin.get(path))),
        )

        ana_eu: dict[str, Any] = {
            "user": users["ana"],
            "workspace": "marketing",
            "grant": "view_parent_model_data",
            "resource": {
                "type": "audience",
                "id": "customers",
                "space_id": "emea",
                "subsets": {"region": ["EU"]},
            },
        }
        block(
            "explain-allow",
            "ana, audience using region = EU",
            request_and_answer("POST", "/api/v1/explain", ana_eu, explain(admin, ana_eu)),
        )
        ana_us = {**ana_eu, "resource": {**ana_eu["resource"], "subsets": {"region": ["US"]}}}
        block(
            "explain-deny",
            "ana, audience using region = US",
            request_and_answer("POST", "/api/v1/explain", ana_us, explain(admin, ana_us)),
        )

        approve = {
            "workspace": "finance",
            "source": "snowflake",
            "destination": "braze",
            "action": "approve",
        }
        who_can_body = {
            "workspace": "finance",
            "grant": "approve_syncs",
            "resource": {"type": "destination", "id": "braze"},
        }
        who_can = checked(admin.post("/api/v1/who-can", json=who_can_body))
        pat_dev = {
            "user": users["pat"],
            "workspace": "marketing-dev",
            "grant": "manage_workspace",
        }

        def olga_start(sync_id: str) -> dict[str, Any]:
            # No labels in the question: idsync uses the ones registered in acme.yaml.
            return {
                "user": users["olga"],
                "workspace": "ops",
                "grant": "start",
                "resource": {"type": "sync", "id": sync_id},
            }

        lines = [
            summary(
                "dan approves sync snowflake -> braze in finance",
                explain(admin, {**approve, "user": users["dan"]}),
            ),
            summary(
                "fay approves sync snowflake -> braze in finance",
                explain(admin, {**approve, "user": users["fay"]}),
            ),
            "who-can approve_syncs on destination:braze in finance: "
            + ", ".join(sorted(names[user_id] for user_id in who_can["users"])),
            summary("pat manages workspace marketing-dev", explain(admin, pat_dev)),
            summary(
                "olga starts sync nightly-export in ops",
                explain(admin, olga_start("nightly-export")),
            ),
            summary(
                "olga starts sync scratch-export in ops",
                explain(admin, olga_start("scratch-export")),
            ),
        ]
        block("more-answers", "approvals, environments and the legacy workspace", "\n".join(lines))

        path = "/api/v1/reports/legacy-conflicts"
        block(
            "legacy-conflicts",
            "the legacy conflict report",
            request_and_answer("GET", path, None, checked(admin.get(path))),
        )
        path = f"/api/v1/users/{users['mia']}/permissions"
        block(
            "permissions",
            "mia's effective permissions",
            request_and_answer("GET", path, None, checked(admin.get(path))),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
