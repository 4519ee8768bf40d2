"""Durable saga orchestrator: ordered gRPC steps through the mesh, retries, compensations, resume.

Register :class:`SagaDefinition` objects (see :mod:`.definitions`), run ``grpcmesh saga``;
the engine (:mod:`.engine`) persists every transition in a :class:`.store.base.SagaStore`
before it makes the next call, and resumes unfinished sagas after a restart.
"""

from grpcmesh.services.saga.definitions import Call, SagaDefinition, Step, StepContext, StepRetry

__all__ = ["Call", "SagaDefinition", "Step", "StepContext", "StepRetry"]
