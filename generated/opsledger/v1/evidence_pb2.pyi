from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from opsledger.v1 import view_pb2 as _view_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EvidenceSource(_message.Message):
    __slots__ = ("kind", "path", "line")
    KIND_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    path: str
    line: int
    def __init__(self, kind: _Optional[str] = ..., path: _Optional[str] = ..., line: _Optional[int] = ...) -> None: ...

class EvidenceRow(_message.Message):
    __slots__ = ("ref", "data", "source")
    REF_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ref: str
    data: _struct_pb2.Value
    source: EvidenceSource
    def __init__(self, ref: _Optional[str] = ..., data: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., source: _Optional[_Union[EvidenceSource, _Mapping]] = ...) -> None: ...

class ResolveEvidenceRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class ResolveEvidenceResponse(_message.Message):
    __slots__ = ("status", "schema", "asof", "row_count", "rows", "error")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    ASOF_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    status: str
    schema: str
    asof: str
    row_count: int
    rows: _containers.RepeatedCompositeFieldContainer[EvidenceRow]
    error: _view_pb2.ViewError
    def __init__(self, status: _Optional[str] = ..., schema: _Optional[str] = ..., asof: _Optional[str] = ..., row_count: _Optional[int] = ..., rows: _Optional[_Iterable[_Union[EvidenceRow, _Mapping]]] = ..., error: _Optional[_Union[_view_pb2.ViewError, _Mapping]] = ...) -> None: ...
