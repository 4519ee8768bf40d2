"""The domain side of CQRS / event sourcing: aggregates, events, rules. Pure Python, no I/O.

Like the ``eventsourcing`` library, the domain never talks to storage: an
:class:`~grpcmesh.services.cqrs.aggregate.Aggregate` is rebuilt from its history,
decides by recording new events, and the command bus persists them.
"""

from grpcmesh.services.cqrs.aggregate import Aggregate, DomainError
from grpcmesh.services.cqrs.codec import EventCodec
from grpcmesh.services.cqrs.handlers import CommandHandler, Violations
from grpcmesh.services.cqrs.queries import Projection, QueryHandler

__all__ = [
    "Aggregate",
    "CommandHandler",
    "DomainError",
    "EventCodec",
    "Projection",
    "QueryHandler",
    "Violations",
]
