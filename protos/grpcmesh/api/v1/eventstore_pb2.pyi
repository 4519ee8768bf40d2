import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIRECTION_FORWARDS: _ClassVar[Direction]
    DIRECTION_BACKWARDS: _ClassVar[Direction]
DIRECTION_FORWARDS: Direction
DIRECTION_BACKWARDS: Direction

class ExpectedRevision(_message.Message):
    __slots__ = ("any", "no_stream", "stream_exists", "exact")
    ANY_FIELD_NUMBER: _ClassVar[int]
    NO_STREAM_FIELD_NUMBER: _ClassVar[int]
    STREAM_EXISTS_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    any: Empty
    no_stream: Empty
    stream_exists: Empty
    exact: int
    def __init__(self, any: _Optional[_Union[Empty, _Mapping]] = ..., no_stream: _Optional[_Union[Empty, _Mapping]] = ..., stream_exists: _Optional[_Union[Empty, _Mapping]] = ..., exact: _Optional[int] = ...) -> None: ...

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ProposedEvent(_message.Message):
    __slots__ = ("id", "type", "data", "content_type", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    data: bytes
    content_type: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., data: _Optional[bytes] = ..., content_type: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class AppendRequest(_message.Message):
    __slots__ = ("stream_id", "expected_revision", "events")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    expected_revision: ExpectedRevision
    events: _containers.RepeatedCompositeFieldContainer[ProposedEvent]
    def __init__(self, stream_id: _Optional[str] = ..., expected_revision: _Optional[_Union[ExpectedRevision, _Mapping]] = ..., events: _Optional[_Iterable[_Union[ProposedEvent, _Mapping]]] = ...) -> None: ...

class AppendResponse(_message.Message):
    __slots__ = ("next_revision", "position", "duplicate")
    NEXT_REVISION_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    next_revision: int
    position: int
    duplicate: bool
    def __init__(self, next_revision: _Optional[int] = ..., position: _Optional[int] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class RecordedEvent(_message.Message):
    __slots__ = ("id", "stream_id", "revision", "position", "type", "data", "content_type", "metadata", "recorded_at")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    stream_id: str
    revision: int
    position: int
    type: str
    data: bytes
    content_type: str
    metadata: _containers.ScalarMap[str, str]
    recorded_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., stream_id: _Optional[str] = ..., revision: _Optional[int] = ..., position: _Optional[int] = ..., type: _Optional[str] = ..., data: _Optional[bytes] = ..., content_type: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReadStreamRequest(_message.Message):
    __slots__ = ("stream_id", "direction", "from_revision", "max_count")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    FROM_REVISION_FIELD_NUMBER: _ClassVar[int]
    MAX_COUNT_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    direction: Direction
    from_revision: int
    max_count: int
    def __init__(self, stream_id: _Optional[str] = ..., direction: _Optional[_Union[Direction, str]] = ..., from_revision: _Optional[int] = ..., max_count: _Optional[int] = ...) -> None: ...

class ReadAllRequest(_message.Message):
    __slots__ = ("from_position", "max_count")
    FROM_POSITION_FIELD_NUMBER: _ClassVar[int]
    MAX_COUNT_FIELD_NUMBER: _ClassVar[int]
    from_position: int
    max_count: int
    def __init__(self, from_position: _Optional[int] = ..., max_count: _Optional[int] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("after_position", "stream_prefixes", "event_types", "batch_size")
    AFTER_POSITION_FIELD_NUMBER: _ClassVar[int]
    STREAM_PREFIXES_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    after_position: int
    stream_prefixes: _containers.RepeatedScalarFieldContainer[str]
    event_types: _containers.RepeatedScalarFieldContainer[str]
    batch_size: int
    def __init__(self, after_position: _Optional[int] = ..., stream_prefixes: _Optional[_Iterable[str]] = ..., event_types: _Optional[_Iterable[str]] = ..., batch_size: _Optional[int] = ...) -> None: ...

class EventBatch(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[RecordedEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[RecordedEvent, _Mapping]]] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ("event", "caught_up", "events")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    CAUGHT_UP_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    event: RecordedEvent
    caught_up: CaughtUp
    events: EventBatch
    def __init__(self, event: _Optional[_Union[RecordedEvent, _Mapping]] = ..., caught_up: _Optional[_Union[CaughtUp, _Mapping]] = ..., events: _Optional[_Union[EventBatch, _Mapping]] = ...) -> None: ...

class CaughtUp(_message.Message):
    __slots__ = ("position",)
    POSITION_FIELD_NUMBER: _ClassVar[int]
    position: int
    def __init__(self, position: _Optional[int] = ...) -> None: ...

class StreamMetadata(_message.Message):
    __slots__ = ("max_count", "max_age_seconds", "truncate_before")
    MAX_COUNT_FIELD_NUMBER: _ClassVar[int]
    MAX_AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATE_BEFORE_FIELD_NUMBER: _ClassVar[int]
    max_count: int
    max_age_seconds: int
    truncate_before: int
    def __init__(self, max_count: _Optional[int] = ..., max_age_seconds: _Optional[int] = ..., truncate_before: _Optional[int] = ...) -> None: ...

class DeleteStreamRequest(_message.Message):
    __slots__ = ("stream_id", "expected_revision")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    expected_revision: ExpectedRevision
    def __init__(self, stream_id: _Optional[str] = ..., expected_revision: _Optional[_Union[ExpectedRevision, _Mapping]] = ...) -> None: ...

class SetStreamMetadataRequest(_message.Message):
    __slots__ = ("stream_id", "metadata")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    metadata: StreamMetadata
    def __init__(self, stream_id: _Optional[str] = ..., metadata: _Optional[_Union[StreamMetadata, _Mapping]] = ...) -> None: ...

class GetStreamMetadataRequest(_message.Message):
    __slots__ = ("stream_id",)
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    def __init__(self, stream_id: _Optional[str] = ...) -> None: ...
