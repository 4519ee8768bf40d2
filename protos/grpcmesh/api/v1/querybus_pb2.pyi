from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import any_pb2 as _any_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QueryRequest(_message.Message):
    __slots__ = ("payload", "min_position")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    MIN_POSITION_FIELD_NUMBER: _ClassVar[int]
    payload: _any_pb2.Any
    min_position: int
    def __init__(self, payload: _Optional[_Union[_any_pb2.Any, _Mapping]] = ..., min_position: _Optional[int] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("result", "position")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    result: _any_pb2.Any
    position: int
    def __init__(self, result: _Optional[_Union[_any_pb2.Any, _Mapping]] = ..., position: _Optional[int] = ...) -> None: ...
