"""Saga state storage: the :class:`~.base.SagaStore` port and its adapters."""

from grpcmesh.services.saga.store.base import SagaStore, VersionConflict
from grpcmesh.services.saga.store.factory import make_store

__all__ = ["SagaStore", "VersionConflict", "make_store"]
