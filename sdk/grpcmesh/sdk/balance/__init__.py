"""Load balancers: pick one endpoint among the healthy candidates of a cluster.

``round_robin`` and ``p2c_ewma`` (default); chosen per service by name.
"""

from __future__ import annotations

from grpcmesh.sdk.balance.base import Balancer, HasLoad, LoadStats
from grpcmesh.sdk.balance.p2c_ewma import P2CEwma
from grpcmesh.sdk.balance.round_robin import RoundRobin

__all__ = ["BALANCERS", "Balancer", "HasLoad", "LoadStats", "P2CEwma", "RoundRobin", "make_balancer"]

BALANCERS: dict[str, type[P2CEwma] | type[RoundRobin]] = {"p2c_ewma": P2CEwma, "round_robin": RoundRobin}


def make_balancer(name: str) -> Balancer:
    """A new balancer by config name; ``ValueError`` names the valid choices."""
    try:
        cls = BALANCERS[name]
    except KeyError:
        raise ValueError(f"unknown balancer {name!r}; choose one of {sorted(BALANCERS)}") from None
    return cls()
