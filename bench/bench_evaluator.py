"""Benchmark: effective permissions for 100k users x 20 workspaces (models.access).

    python bench/bench_evaluator.py            # 100k users
    python bench/bench_evaluator.py --quick    # 5k users, smoke

Measures, in one run, on one core:

* fast path: users -> group-set key -> ``Compiler.compile`` + ``encode_workspace_map``
  once per distinct group set (the worker's path), users/s;
* raw compile rate per distinct group set (cold and warm per-group caches);
* the reference evaluator (with provenance) per user, no dedup;
* a naive per-check baseline: every check re-evaluates from the config;
* cache sizes: blob per group set, per-user pointer.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.access import (
    Compiler,
    OrgAdminBinding,
    OrgConfig,
    ParentModelSubsets,
    ResourceGrant,
    ResourceRef,
    RoleBinding,
    Space,
    SpaceAssignment,
    SubsetCategory,
    SubsetLimit,
    User,
    V2Role,
    Workspace,
    decide_check,
    encode_workspace_map,
    evaluate_groups,
    evaluate_workspace,
    group_set_key,
    parse_legacy_role,
)
from models.access.grants import LEGACY_APPLICABLE, V2_GRANT_CODES

N_GROUPS = 2000
N_TEAMS = 400


def build_config(rnd: random.Random) -> OrgConfig:
    workspaces: list[Workspace] = []
    for i in range(18):
        legacy = i >= 14
        workspaces.append(
            Workspace(
                f"ws{i:02d}",
                permissions_model="legacy" if legacy else "v2",
                spaces_enabled=(i % 3 == 0),
                approvals_required=(i % 4 == 1),
            )
        )
    workspaces += [
        Workspace("ws00-dev", parent_workspace_id="ws00"),
        Workspace("ws01-stg", parent_workspace_id="ws01"),
    ]
    spaces = [
        Space(f"{w.id}-sp{j}", w.id) for w in workspaces if w.spaces_enabled for j in range(3)
    ]
    custom_v2 = [
        V2Role(
            f"custom-v2-{k}",
            f"Custom {k}",
            frozenset({"access_agents"} if k % 2 else set()),
            (
                ResourceGrant(
                    "source", f"src{k}", frozenset({"view_data", "configure_models_syncs"})
                ),
                ResourceGrant(
                    "destination", f"dst{k}", frozenset({"configure_syncs", "trigger_syncs"})
                ),
                ResourceGrant("destination", "*", frozenset({"trigger_syncs"})),
            ),
        )
        for k in range(4)
    ]
    custom_v2.append(
        V2Role(
            "custom-v2-eu",
            "EU marketers",
            resource_grants=(
                ResourceGrant(
                    "parent_model",
                    "pm1",
                    frozenset({"view_parent_model_data", "configure_audiences_syncs"}),
                    SubsetLimit.of({"region": ["EU"]}),
                ),
                ResourceGrant("destination", "*", frozenset({"configure_syncs"})),
            ),
        )
    )
    custom_legacy = [
        parse_legacy_role(
            "custom-legacy-prod",
            "Prod operator",
            {
                "statements": [
                    {"actions": ["read"], "resource": "*"},
                    {
                        "actions": ["start", "update"],
                        "resource": "sync",
                        "conditions": {"labels": {"environment": "production"}},
                    },
                ]
            },
        )
    ]
    v2_roles = ["admin", "editor", "editor", "draft_editor", "viewer", "viewer", "viewer"]
    v2_roles += [r.id for r in custom_v2]
    legacy_roles = [
        "legacy_admin",
        "legacy_workspace_editor",
        "legacy_sync_editor",
        "legacy_audience_editor",
        "legacy_workspace_viewer",
        "legacy_workspace_viewer",
        "legacy_model_sync_editor",
        "custom-legacy-prod",
    ]
    bindings: list[RoleBinding] = []
    assignments: list[SpaceAssignment] = []
    roots = [w for w in workspaces if w.parent_workspace_id is None]
    for g in range(N_GROUPS):
        gid = f"grp{g:04d}"
        for w in rnd.sample(roots, rnd.choice((0, 1, 1, 1, 2, 2, 3))):
            pool = legacy_roles if w.permissions_model == "legacy" else v2_roles
            src = "manual" if rnd.random() < 0.5 else f"rule-{rnd.randrange(5)}"
            bindings.append(RoleBinding(gid, w.id, rnd.choice(pool), src))
            if w.spaces_enabled:
                assignments.append(SpaceAssignment(gid, w.id, f"{w.id}-sp{rnd.randrange(3)}"))
    # an all-staff group: viewer in several workspaces
    for w in roots[:6]:
        bindings.append(RoleBinding("all-staff", w.id, "viewer"))
    return OrgConfig(
        workspaces=tuple(workspaces),
        spaces=tuple(spaces),
        roles=(*custom_v2, *custom_legacy),
        org_admins=(OrgAdminBinding("platform-admins", "rule-admins"),),
        role_bindings=tuple(bindings),
        space_assignments=tuple(assignments),
        subset_categories=tuple(
            ParentModelSubsets(w.id, "pm1", (SubsetCategory("region", True),)) for w in roots
        ),
    )


def build_users(rnd: random.Random, n: int) -> list[User]:
    groups = [f"grp{g:04d}" for g in range(N_GROUPS)]
    weights = [1 / (i + 1) ** 0.9 for i in range(N_GROUPS)]
    teams = [
        tuple(rnd.choices(groups, weights=weights, k=rnd.choice((1, 2, 2, 3))))
        for _ in range(N_TEAMS)
    ]
    team_weights = [1 / (i + 1) ** 0.8 for i in range(N_TEAMS)]
    users = []
    for u in range(n):
        gs = set(rnd.choices(teams, weights=team_weights)[0])
        if rnd.random() < 0.6:
            gs.add("all-staff")
        if rnd.random() < 0.25:
            gs.add(rnd.choices(groups, weights=weights)[0])
        if rnd.random() < 0.0005:
            gs.add("platform-admins")
        users.append(
            User(f"user{u:06d}", active=rnd.random() > 0.02, group_ids=frozenset(list(gs)[:5]))
        )
    return users


def questions(config: OrgConfig, ws: Workspace) -> list[tuple[str, ResourceRef | None]]:
    root = config.workspace_by_id[config.roots[ws.id] or ws.id]
    if root.permissions_model == "legacy":
        return [
            (a, ResourceRef(t, "r1"))
            for t, acts in sorted(LEGACY_APPLICABLE.items())
            for a in sorted(acts)
        ]
    out: list[tuple[str, ResourceRef | None]] = []
    for scope, name in sorted(V2_GRANT_CODES):
        out.append((name, None if scope == "workspace" else ResourceRef(scope, "src1")))
    return out


def fast_path(
    users: list[User], config: OrgConfig
) -> tuple[float, dict[frozenset[str], bytes], dict[str, str]]:
    compiler = Compiler(config)
    blobs: dict[frozenset[str], bytes] = {}
    pointers: dict[str, str] = {}
    t0 = time.perf_counter()
    for u in users:
        if not u.can_act:
            pointers[u.id] = ""
            continue
        key = u.group_ids
        if key not in blobs:
            blobs[key] = encode_workspace_map(compiler.compile(key))
        pointers[u.id] = group_set_key(key)
    return time.perf_counter() - t0, blobs, pointers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5k users (smoke)")
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    n_users = args.users or (5_000 if args.quick else 100_000)
    rnd = random.Random(args.seed)
    config = build_config(rnd)
    users = build_users(rnd, n_users)
    n_ws = len(config.workspaces)
    distinct = {u.group_ids for u in users if u.can_act}
    print(f"org: {n_ws} workspaces, {len(config.role_bindings)} role bindings, {N_GROUPS} groups")
    print(f"users: {n_users}, distinct group sets: {len(distinct)}")

    elapsed, blobs, pointers = fast_path(users, config)
    fast_rate = n_users / elapsed
    print(f"\nfast path (dedup + compile + encode): {elapsed:.2f}s  -> {fast_rate:,.0f} users/s")

    sets = sorted(distinct, key=sorted)
    cold = Compiler(config)
    t0 = time.perf_counter()
    for s in sets:
        encode_workspace_map(cold.compile(s))
    cold_t = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s in sets:
        encode_workspace_map(cold.compile(s))
    warm_t = time.perf_counter() - t0
    print(
        f"raw compile+encode per group set: cold {len(sets) / cold_t:,.0f}/s, "
        f"warm {len(sets) / warm_t:,.0f}/s"
    )

    sample = users[: max(200, n_users // 200)]
    t0 = time.perf_counter()
    for u in sample:
        if u.can_act:
            evaluate_groups(u.group_ids, config)
    ref_rate = len(sample) / (time.perf_counter() - t0)
    print(f"reference evaluator (provenance, no dedup): {ref_rate:,.0f} users/s")

    naive_sample = sample[:100]
    qs = {w.id: questions(config, w) for w in config.workspaces}
    n_checks = 0
    t0 = time.perf_counter()
    for u in naive_sample:
        if not u.can_act:
            continue
        for w in config.workspaces:
            for grant, ref in qs[w.id]:
                decide_check(evaluate_workspace(u.group_ids, config, w.id), config, grant, ref)
                n_checks += 1
    naive_t = time.perf_counter() - t0
    naive_rate = len(naive_sample) / naive_t
    print(
        f"naive per-check baseline: {naive_rate:,.1f} users/s "
        f"({n_checks / naive_t:,.0f} checks/s, "
        f"{n_checks // len(naive_sample)} checks/user)"
    )
    print(f"\nspeed-up fast path / naive per-check: {fast_rate / naive_rate:,.0f}x")
    print(f"target >= 20,000 users/s: {'OK' if fast_rate >= 20_000 else 'MISSED'}")

    sizes = sorted(len(b) for b in blobs.values())
    per_user = [len(blobs[u.group_ids]) for u in users if u.can_act]
    pointer = max(len(p) for p in pointers.values())
    print("\ncache size (bytes):")
    print(
        f"  group-set blob (all {n_ws} workspaces): p50 {statistics.median(sizes):.0f}, "
        f"p95 {sizes[int(len(sizes) * 0.95) - 1]}, max {sizes[-1]}"
    )
    print(f"  per-user pointer: {pointer} (group-set key); blob shared by users with equal groups")
    print(
        f"  blob for a user (no sharing): p50 {statistics.median(per_user):.0f}, "
        f"p95 {sorted(per_user)[int(len(per_user) * 0.95) - 1]}"
    )
    total = sum(sizes) + sum(len(p) for p in pointers.values())
    print(
        f"  total for {n_users} users: {total / 1e6:.1f} MB "
        f"({total / n_users:.0f} B/user amortized)"
    )


if __name__ == "__main__":
    main()
