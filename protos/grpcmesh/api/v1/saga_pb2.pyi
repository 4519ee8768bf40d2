import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SagaStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SAGA_STATUS_UNSPECIFIED: _ClassVar[SagaStatus]
    SAGA_STATUS_RUNNING: _ClassVar[SagaStatus]
    SAGA_STATUS_COMPLETED: _ClassVar[SagaStatus]
    SAGA_STATUS_COMPENSATING: _ClassVar[SagaStatus]
    SAGA_STATUS_COMPENSATED: _ClassVar[SagaStatus]
    SAGA_STATUS_FAILED: _ClassVar[SagaStatus]
    SAGA_STATUS_ABORTED: _ClassVar[SagaStatus]

class StepStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STEP_STATUS_UNSPECIFIED: _ClassVar[StepStatus]
    STEP_STATUS_PENDING: _ClassVar[StepStatus]
    STEP_STATUS_RUNNING: _ClassVar[StepStatus]
    STEP_STATUS_SUCCEEDED: _ClassVar[StepStatus]
    STEP_STATUS_FAILED: _ClassVar[StepStatus]
    STEP_STATUS_COMPENSATING: _ClassVar[StepStatus]
    STEP_STATUS_COMPENSATED: _ClassVar[StepStatus]
    STEP_STATUS_COMPENSATION_FAILED: _ClassVar[StepStatus]
SAGA_STATUS_UNSPECIFIED: SagaStatus
SAGA_STATUS_RUNNING: SagaStatus
SAGA_STATUS_COMPLETED: SagaStatus
SAGA_STATUS_COMPENSATING: SagaStatus
SAGA_STATUS_COMPENSATED: SagaStatus
SAGA_STATUS_FAILED: SagaStatus
SAGA_STATUS_ABORTED: SagaStatus
STEP_STATUS_UNSPECIFIED: StepStatus
STEP_STATUS_PENDING: StepStatus
STEP_STATUS_RUNNING: StepStatus
STEP_STATUS_SUCCEEDED: StepStatus
STEP_STATUS_FAILED: StepStatus
STEP_STATUS_COMPENSATING: StepStatus
STEP_STATUS_COMPENSATED: StepStatus
STEP_STATUS_COMPENSATION_FAILED: StepStatus

class StartSagaRequest(_message.Message):
    __slots__ = ("definition", "idempotency_key", "input")
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    definition: str
    idempotency_key: str
    input: _struct_pb2.Struct
    def __init__(self, definition: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., input: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class SagaStep(_message.Message):
    __slots__ = ("name", "status", "attempts", "result", "error", "compensation_attempts", "updated_at", "idempotency_key")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    COMPENSATION_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    status: StepStatus
    attempts: int
    result: _struct_pb2.Struct
    error: str
    compensation_attempts: int
    updated_at: _timestamp_pb2.Timestamp
    idempotency_key: str
    def __init__(self, name: _Optional[str] = ..., status: _Optional[_Union[StepStatus, str]] = ..., attempts: _Optional[int] = ..., result: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., error: _Optional[str] = ..., compensation_attempts: _Optional[int] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class Saga(_message.Message):
    __slots__ = ("saga_id", "definition", "idempotency_key", "status", "steps", "input", "error", "created_at", "updated_at", "version", "abort_reason")
    SAGA_ID_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ABORT_REASON_FIELD_NUMBER: _ClassVar[int]
    saga_id: str
    definition: str
    idempotency_key: str
    status: SagaStatus
    steps: _containers.RepeatedCompositeFieldContainer[SagaStep]
    input: _struct_pb2.Struct
    error: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    version: int
    abort_reason: str
    def __init__(self, saga_id: _Optional[str] = ..., definition: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., status: _Optional[_Union[SagaStatus, str]] = ..., steps: _Optional[_Iterable[_Union[SagaStep, _Mapping]]] = ..., input: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., error: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ..., abort_reason: _Optional[str] = ...) -> None: ...

class GetSagaRequest(_message.Message):
    __slots__ = ("saga_id",)
    SAGA_ID_FIELD_NUMBER: _ClassVar[int]
    saga_id: str
    def __init__(self, saga_id: _Optional[str] = ...) -> None: ...

class ListSagasRequest(_message.Message):
    __slots__ = ("status", "page_size", "page_token")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    status: SagaStatus
    page_size: int
    page_token: str
    def __init__(self, status: _Optional[_Union[SagaStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSagasResponse(_message.Message):
    __slots__ = ("sagas", "next_page_token")
    SAGAS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    sagas: _containers.RepeatedCompositeFieldContainer[Saga]
    next_page_token: str
    def __init__(self, sagas: _Optional[_Iterable[_Union[Saga, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class AbortSagaRequest(_message.Message):
    __slots__ = ("saga_id", "reason")
    SAGA_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    saga_id: str
    reason: str
    def __init__(self, saga_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SagaEvent(_message.Message):
    __slots__ = ("version", "at", "status", "step", "step_status", "attempt", "error")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    STEP_STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    version: int
    at: _timestamp_pb2.Timestamp
    status: SagaStatus
    step: str
    step_status: StepStatus
    attempt: int
    error: str
    def __init__(self, version: _Optional[int] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[SagaStatus, str]] = ..., step: _Optional[str] = ..., step_status: _Optional[_Union[StepStatus, str]] = ..., attempt: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class SagaHistory(_message.Message):
    __slots__ = ("saga_id", "events")
    SAGA_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    saga_id: str
    events: _containers.RepeatedCompositeFieldContainer[SagaEvent]
    def __init__(self, saga_id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[SagaEvent, _Mapping]]] = ...) -> None: ...
