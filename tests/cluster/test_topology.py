"""The topology itself: one Raft cluster, every host joined, sidecars registered at their host's address."""

from __future__ import annotations

from tests.cluster.topology import SERVERS, Topology


def test_hosts_form_one_cluster_and_sidecars_register_their_host_address(topology: Topology) -> None:
    leaders = {topology.leader(s) for s in SERVERS}
    assert len(leaders) == 1, leaders  # every server sees the same leader
    assert leaders != {""}
    peers = topology.consul(SERVERS[0], "/v1/status/peers")
    assert sorted(p.rsplit(":", 1)[0] for p in peers) == topology.address_of(list(SERVERS))
    for caller in topology.callers:
        assert topology.passing(caller, "echo") == topology.echo
    entries = topology.consul(topology.callers[0], "/v1/health/service/echo?passing=1")
    registered = sorted(e["Service"]["Address"] for e in entries)
    assert registered == topology.address_of(topology.echo)  # not 127.0.0.1: callers are elsewhere
    assert {e["Service"]["Port"] for e in entries} == {15000}
