"""Organizations spread over every master of the test cluster, and the check that each
organization's keys all live in its own slot (shared by the cluster tests)."""

from __future__ import annotations

import re

from redis.cluster import RedisCluster

from models.access.inputs import ResourceRef
from models.access.refs import SyncRef
from models.cache.client import Check, Query, SpacesAnswer, SpacesQuery, SyncCheck
from models.cache.layout import OrgKeys
from models.db.database import Database
from tests.integration.cache.world import World
from tests.support.redis_cluster import MASTERS, LocalCluster

_ORG_KEY = re.compile(rb"^idsync:\{([^{}]+)\}:")


def _node(cluster: RedisCluster, org_id: str) -> str:
    node = cluster.get_node_from_key(OrgKeys.of(org_id).meta)  # type: ignore[no-untyped-call]
    assert node is not None
    return str(node.name)


def orgs_on_every_master(db: Database, cluster: RedisCluster) -> list[World]:
    """One populated organization per master (org ids are random: draw until each
    master holds one)."""
    by_node: dict[str, World] = {}
    for _ in range(200):
        w = World.create(db)
        by_node.setdefault(_node(cluster, w.org_id), w)
        if len(by_node) == MASTERS:
            break
    assert len(by_node) == MASTERS, "no organization landed on some master"
    worlds = list(by_node.values())
    for w in worlds:
        w.workspace("ws1", spaces_enabled=True)
        w.workspace("ws2")
        w.team("eng", ["alice", "bob"], "ws1", "editor")
        w.team("ops", ["carol"], "ws2", "admin")
    return worlds


def questions(w: World) -> list[Query]:
    qs: list[Query] = []
    for n in ("alice", "bob", "carol", "nobody"):
        user = w.users.get(n, n)
        for ws in ("ws1", "ws2"):
            qs.append(Check(user, ws, "create_sources"))
            qs.append(Check(user, ws, "manage_workspace"))
            qs.append(Check(user, ws, "view_data", ResourceRef("source", "src1")))
            qs.append(SyncCheck(user, ws, SyncRef.of("s1", "d1", "sp1"), "configure"))
            qs.append(SpacesQuery(user, ws))
    return qs


def decisions(results: list[object]) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for r in results:
        if isinstance(r, SpacesAnswer):
            out.append(("spaces", r.spaces))
        else:
            out.append((getattr(r, "status", None), getattr(r, "reason", None)))
    return out


def assert_keys_in_their_org_slot(cluster: LocalCluster, worlds: list[World]) -> None:
    """Every key on every master is an organization's key, in that organization's slot,
    and the organizations' keys are spread over every master."""
    orgs = {w.org_id.encode() for w in worlds}
    nodes_of_org: dict[bytes, set[int]] = {}
    for node in cluster.nodes:
        c = node.client()
        try:
            keys = list(c.scan_iter(count=1000))
            for key in keys:
                m = _ORG_KEY.match(key)
                assert m is not None and m.group(1) in orgs, f"{key!r} is no organization's"
                meta = b"idsync:{" + m.group(1) + b"}:meta"
                slot = c.execute_command("CLUSTER", "KEYSLOT", key)  # type: ignore[no-untyped-call]
                assert slot == c.execute_command("CLUSTER", "KEYSLOT", meta)  # type: ignore[no-untyped-call]
                nodes_of_org.setdefault(m.group(1), set()).add(node.port)
        finally:
            c.close()
    assert set(nodes_of_org) == orgs
    assert all(len(ports) == 1 for ports in nodes_of_org.values())
    assert len({p for ports in nodes_of_org.values() for p in ports}) == MASTERS
