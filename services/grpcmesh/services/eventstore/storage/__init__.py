"""Persistence of the event store: the ``Storage`` port (``base``) and one module per adapter.

Adapters import only the port, never each other; ``grpcmesh.services.eventstore.factory``
picks one from a URL.
"""
