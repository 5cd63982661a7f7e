from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TicketStatus(_message.Message):
    __slots__ = ()
    class Value(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        VALUE_UNSPECIFIED: _ClassVar[TicketStatus.Value]
        OPEN: _ClassVar[TicketStatus.Value]
        IN_PROGRESS: _ClassVar[TicketStatus.Value]
        DONE: _ClassVar[TicketStatus.Value]
        FAILED: _ClassVar[TicketStatus.Value]
    VALUE_UNSPECIFIED: TicketStatus.Value
    OPEN: TicketStatus.Value
    IN_PROGRESS: TicketStatus.Value
    DONE: TicketStatus.Value
    FAILED: TicketStatus.Value
    def __init__(self) -> None: ...

class RequestType(_message.Message):
    __slots__ = ()
    class Value(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        VALUE_UNSPECIFIED: _ClassVar[RequestType.Value]
        REQUEST_RECONCILE: _ClassVar[RequestType.Value]
        REQUEST_REPORTS: _ClassVar[RequestType.Value]
        ACKNOWLEDGE: _ClassVar[RequestType.Value]
        REQUEST_LIVE_CYCLE: _ClassVar[RequestType.Value]
    VALUE_UNSPECIFIED: RequestType.Value
    REQUEST_RECONCILE: RequestType.Value
    REQUEST_REPORTS: RequestType.Value
    ACKNOWLEDGE: RequestType.Value
    REQUEST_LIVE_CYCLE: RequestType.Value
    def __init__(self) -> None: ...

class TicketRequest(_message.Message):
    __slots__ = ("schema", "request_id", "requested_at", "request_type", "payload", "trace_id", "status", "idempotency_key")
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    schema: str
    request_id: str
    requested_at: str
    request_type: RequestType.Value
    payload: _struct_pb2.Struct
    trace_id: str
    status: TicketStatus.Value
    idempotency_key: str
    def __init__(self, schema: _Optional[str] = ..., request_id: _Optional[str] = ..., requested_at: _Optional[str] = ..., request_type: _Optional[_Union[RequestType.Value, str]] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., trace_id: _Optional[str] = ..., status: _Optional[_Union[TicketStatus.Value, str]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class TicketResult(_message.Message):
    __slots__ = ("schema", "result_id", "request_id", "processed_at", "status", "processor_id", "message", "artifacts")
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    RESULT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROCESSED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROCESSOR_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    schema: str
    result_id: str
    request_id: str
    processed_at: str
    status: TicketStatus.Value
    processor_id: str
    message: str
    artifacts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, schema: _Optional[str] = ..., result_id: _Optional[str] = ..., request_id: _Optional[str] = ..., processed_at: _Optional[str] = ..., status: _Optional[_Union[TicketStatus.Value, str]] = ..., processor_id: _Optional[str] = ..., message: _Optional[str] = ..., artifacts: _Optional[_Iterable[str]] = ...) -> None: ...

class BoardRow(_message.Message):
    __slots__ = ("request_id", "requested_at", "request_type", "payload", "trace_id", "current_status", "last_message", "last_processed_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENT_STATUS_FIELD_NUMBER: _ClassVar[int]
    LAST_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LAST_PROCESSED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    requested_at: str
    request_type: RequestType.Value
    payload: _struct_pb2.Struct
    trace_id: str
    current_status: TicketStatus.Value
    last_message: str
    last_processed_at: str
    def __init__(self, request_id: _Optional[str] = ..., requested_at: _Optional[str] = ..., request_type: _Optional[_Union[RequestType.Value, str]] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., trace_id: _Optional[str] = ..., current_status: _Optional[_Union[TicketStatus.Value, str]] = ..., last_message: _Optional[str] = ..., last_processed_at: _Optional[str] = ...) -> None: ...

class SubmitTicketRequest(_message.Message):
    __slots__ = ("schema", "request_type", "payload", "trace_id", "idempotency_key")
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    schema: str
    request_type: RequestType.Value
    payload: _struct_pb2.Struct
    trace_id: str
    idempotency_key: str
    def __init__(self, schema: _Optional[str] = ..., request_type: _Optional[_Union[RequestType.Value, str]] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., trace_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class SubmitTicketResponse(_message.Message):
    __slots__ = ("result", "request_id", "requested_at", "status", "appended")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    APPENDED_FIELD_NUMBER: _ClassVar[int]
    result: str
    request_id: str
    requested_at: str
    status: TicketStatus.Value
    appended: bool
    def __init__(self, result: _Optional[str] = ..., request_id: _Optional[str] = ..., requested_at: _Optional[str] = ..., status: _Optional[_Union[TicketStatus.Value, str]] = ..., appended: _Optional[bool] = ...) -> None: ...

class ConsumeTicketRequest(_message.Message):
    __slots__ = ("request_id", "processor_id", "message", "idempotency_key")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROCESSOR_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    processor_id: str
    message: str
    idempotency_key: str
    def __init__(self, request_id: _Optional[str] = ..., processor_id: _Optional[str] = ..., message: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ConsumeTicketResponse(_message.Message):
    __slots__ = ("result", "request_id", "new_status", "result_id")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_STATUS_FIELD_NUMBER: _ClassVar[int]
    RESULT_ID_FIELD_NUMBER: _ClassVar[int]
    result: str
    request_id: str
    new_status: TicketStatus.Value
    result_id: str
    def __init__(self, result: _Optional[str] = ..., request_id: _Optional[str] = ..., new_status: _Optional[_Union[TicketStatus.Value, str]] = ..., result_id: _Optional[str] = ...) -> None: ...

class CompleteTicketRequest(_message.Message):
    __slots__ = ("request_id", "status", "processor_id", "message", "artifacts", "idempotency_key")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROCESSOR_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    status: TicketStatus.Value
    processor_id: str
    message: str
    artifacts: _containers.RepeatedScalarFieldContainer[str]
    idempotency_key: str
    def __init__(self, request_id: _Optional[str] = ..., status: _Optional[_Union[TicketStatus.Value, str]] = ..., processor_id: _Optional[str] = ..., message: _Optional[str] = ..., artifacts: _Optional[_Iterable[str]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class CompleteTicketResponse(_message.Message):
    __slots__ = ("result", "request_id", "new_status", "result_id")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_STATUS_FIELD_NUMBER: _ClassVar[int]
    RESULT_ID_FIELD_NUMBER: _ClassVar[int]
    result: str
    request_id: str
    new_status: TicketStatus.Value
    result_id: str
    def __init__(self, result: _Optional[str] = ..., request_id: _Optional[str] = ..., new_status: _Optional[_Union[TicketStatus.Value, str]] = ..., result_id: _Optional[str] = ...) -> None: ...

class GetBoardRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "status", "request_type")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TYPE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    status: _containers.RepeatedScalarFieldContainer[TicketStatus.Value]
    request_type: _containers.RepeatedScalarFieldContainer[RequestType.Value]
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., status: _Optional[_Iterable[_Union[TicketStatus.Value, str]]] = ..., request_type: _Optional[_Iterable[_Union[RequestType.Value, str]]] = ...) -> None: ...

class GetBoardResponse(_message.Message):
    __slots__ = ("status", "schema", "asof", "row_count", "rows", "next_page_token", "total_count")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    ASOF_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    status: str
    schema: str
    asof: str
    row_count: int
    rows: _containers.RepeatedCompositeFieldContainer[BoardRow]
    next_page_token: str
    total_count: int
    def __init__(self, status: _Optional[str] = ..., schema: _Optional[str] = ..., asof: _Optional[str] = ..., row_count: _Optional[int] = ..., rows: _Optional[_Iterable[_Union[BoardRow, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_count: _Optional[int] = ...) -> None: ...

class GetTicketRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class GetTicketResponse(_message.Message):
    __slots__ = ("row", "request", "results", "result_refs")
    ROW_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    RESULT_REFS_FIELD_NUMBER: _ClassVar[int]
    row: BoardRow
    request: TicketRequest
    results: _containers.RepeatedCompositeFieldContainer[TicketResult]
    result_refs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, row: _Optional[_Union[BoardRow, _Mapping]] = ..., request: _Optional[_Union[TicketRequest, _Mapping]] = ..., results: _Optional[_Iterable[_Union[TicketResult, _Mapping]]] = ..., result_refs: _Optional[_Iterable[str]] = ...) -> None: ...

class ConsumeNextRequest(_message.Message):
    __slots__ = ("processor_id", "message", "request_types", "wait_seconds", "idempotency_key")
    PROCESSOR_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TYPES_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    processor_id: str
    message: str
    request_types: _containers.RepeatedScalarFieldContainer[RequestType.Value]
    wait_seconds: float
    idempotency_key: str
    def __init__(self, processor_id: _Optional[str] = ..., message: _Optional[str] = ..., request_types: _Optional[_Iterable[_Union[RequestType.Value, str]]] = ..., wait_seconds: _Optional[float] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ConsumeNextResponse(_message.Message):
    __slots__ = ("result", "claimed", "request_id", "new_status", "result_id", "ticket")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_STATUS_FIELD_NUMBER: _ClassVar[int]
    RESULT_ID_FIELD_NUMBER: _ClassVar[int]
    TICKET_FIELD_NUMBER: _ClassVar[int]
    result: str
    claimed: bool
    request_id: str
    new_status: TicketStatus.Value
    result_id: str
    ticket: BoardRow
    def __init__(self, result: _Optional[str] = ..., claimed: _Optional[bool] = ..., request_id: _Optional[str] = ..., new_status: _Optional[_Union[TicketStatus.Value, str]] = ..., result_id: _Optional[str] = ..., ticket: _Optional[_Union[BoardRow, _Mapping]] = ...) -> None: ...

class ReapStaleTicketsRequest(_message.Message):
    __slots__ = ("threshold_seconds", "max_clean", "dry_run")
    THRESHOLD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_CLEAN_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    threshold_seconds: int
    max_clean: int
    dry_run: bool
    def __init__(self, threshold_seconds: _Optional[int] = ..., max_clean: _Optional[int] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class ReaperReport(_message.Message):
    __slots__ = ("schema", "asof", "decision", "threshold_seconds", "stale_count", "cleaned_count", "cleaned_items", "evidence_refs")
    class Item(_message.Message):
        __slots__ = ("request_id", "request_type", "last_processed_at", "reason")
        REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
        REQUEST_TYPE_FIELD_NUMBER: _ClassVar[int]
        LAST_PROCESSED_AT_FIELD_NUMBER: _ClassVar[int]
        REASON_FIELD_NUMBER: _ClassVar[int]
        request_id: str
        request_type: RequestType.Value
        last_processed_at: str
        reason: str
        def __init__(self, request_id: _Optional[str] = ..., request_type: _Optional[_Union[RequestType.Value, str]] = ..., last_processed_at: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...
    class Decision(_message.Message):
        __slots__ = ()
        class Value(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
            __slots__ = ()
            VALUE_UNSPECIFIED: _ClassVar[ReaperReport.Decision.Value]
            NONE: _ClassVar[ReaperReport.Decision.Value]
            CLEANED: _ClassVar[ReaperReport.Decision.Value]
        VALUE_UNSPECIFIED: ReaperReport.Decision.Value
        NONE: ReaperReport.Decision.Value
        CLEANED: ReaperReport.Decision.Value
        def __init__(self) -> None: ...
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    ASOF_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STALE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CLEANED_COUNT_FIELD_NUMBER: _ClassVar[int]
    CLEANED_ITEMS_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_REFS_FIELD_NUMBER: _ClassVar[int]
    schema: str
    asof: str
    decision: ReaperReport.Decision.Value
    threshold_seconds: int
    stale_count: int
    cleaned_count: int
    cleaned_items: _containers.RepeatedCompositeFieldContainer[ReaperReport.Item]
    evidence_refs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, schema: _Optional[str] = ..., asof: _Optional[str] = ..., decision: _Optional[_Union[ReaperReport.Decision.Value, str]] = ..., threshold_seconds: _Optional[int] = ..., stale_count: _Optional[int] = ..., cleaned_count: _Optional[int] = ..., cleaned_items: _Optional[_Iterable[_Union[ReaperReport.Item, _Mapping]]] = ..., evidence_refs: _Optional[_Iterable[str]] = ...) -> None: ...

class ReapStaleTicketsResponse(_message.Message):
    __slots__ = ("report", "snapshot_ref")
    REPORT_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_REF_FIELD_NUMBER: _ClassVar[int]
    report: ReaperReport
    snapshot_ref: str
    def __init__(self, report: _Optional[_Union[ReaperReport, _Mapping]] = ..., snapshot_ref: _Optional[str] = ...) -> None: ...

class WatchTicketsRequest(_message.Message):
    __slots__ = ("after", "from_beginning", "status", "request_type")
    AFTER_FIELD_NUMBER: _ClassVar[int]
    FROM_BEGINNING_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TYPE_FIELD_NUMBER: _ClassVar[int]
    after: str
    from_beginning: bool
    status: _containers.RepeatedScalarFieldContainer[TicketStatus.Value]
    request_type: _containers.RepeatedScalarFieldContainer[RequestType.Value]
    def __init__(self, after: _Optional[str] = ..., from_beginning: _Optional[bool] = ..., status: _Optional[_Iterable[_Union[TicketStatus.Value, str]]] = ..., request_type: _Optional[_Iterable[_Union[RequestType.Value, str]]] = ...) -> None: ...

class TicketEvent(_message.Message):
    __slots__ = ("revision", "kind", "request_id", "request_type", "status", "request", "result")
    class Kind(_message.Message):
        __slots__ = ()
        class Value(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
            __slots__ = ()
            VALUE_UNSPECIFIED: _ClassVar[TicketEvent.Kind.Value]
            SUBMITTED: _ClassVar[TicketEvent.Kind.Value]
            TRANSITION: _ClassVar[TicketEvent.Kind.Value]
            PROGRESS: _ClassVar[TicketEvent.Kind.Value]
        VALUE_UNSPECIFIED: TicketEvent.Kind.Value
        SUBMITTED: TicketEvent.Kind.Value
        TRANSITION: TicketEvent.Kind.Value
        PROGRESS: TicketEvent.Kind.Value
        def __init__(self) -> None: ...
    REVISION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    revision: str
    kind: TicketEvent.Kind.Value
    request_id: str
    request_type: RequestType.Value
    status: TicketStatus.Value
    request: TicketRequest
    result: TicketResult
    def __init__(self, revision: _Optional[str] = ..., kind: _Optional[_Union[TicketEvent.Kind.Value, str]] = ..., request_id: _Optional[str] = ..., request_type: _Optional[_Union[RequestType.Value, str]] = ..., status: _Optional[_Union[TicketStatus.Value, str]] = ..., request: _Optional[_Union[TicketRequest, _Mapping]] = ..., result: _Optional[_Union[TicketResult, _Mapping]] = ...) -> None: ...
