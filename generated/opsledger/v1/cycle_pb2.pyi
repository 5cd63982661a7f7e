from google.api import annotations_pb2 as _annotations_pb2
from opsledger.v1 import view_pb2 as _view_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CycleResult(_message.Message):
    __slots__ = ()
    class Value(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        VALUE_UNSPECIFIED: _ClassVar[CycleResult.Value]
        OK: _ClassVar[CycleResult.Value]
        FAILED: _ClassVar[CycleResult.Value]
    VALUE_UNSPECIFIED: CycleResult.Value
    OK: CycleResult.Value
    FAILED: CycleResult.Value
    def __init__(self) -> None: ...

class CycleDecision(_message.Message):
    __slots__ = ()
    class Value(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        VALUE_UNSPECIFIED: _ClassVar[CycleDecision.Value]
        COMPLETED: _ClassVar[CycleDecision.Value]
        PARTIAL: _ClassVar[CycleDecision.Value]
        BLOCKED: _ClassVar[CycleDecision.Value]
    VALUE_UNSPECIFIED: CycleDecision.Value
    COMPLETED: CycleDecision.Value
    PARTIAL: CycleDecision.Value
    BLOCKED: CycleDecision.Value
    def __init__(self) -> None: ...

class CycleReason(_message.Message):
    __slots__ = ()
    class Value(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        VALUE_UNSPECIFIED: _ClassVar[CycleReason.Value]
        SUCCESS: _ClassVar[CycleReason.Value]
        BUNDLE_FAIL: _ClassVar[CycleReason.Value]
        RECO_FAIL: _ClassVar[CycleReason.Value]
        SUMMARY_FAIL: _ClassVar[CycleReason.Value]
        PUSH_FAIL: _ClassVar[CycleReason.Value]
        BUNDLE_STALE: _ClassVar[CycleReason.Value]
        RECO_BLOCKED: _ClassVar[CycleReason.Value]
        SYSTEM_ERROR: _ClassVar[CycleReason.Value]
    VALUE_UNSPECIFIED: CycleReason.Value
    SUCCESS: CycleReason.Value
    BUNDLE_FAIL: CycleReason.Value
    RECO_FAIL: CycleReason.Value
    SUMMARY_FAIL: CycleReason.Value
    PUSH_FAIL: CycleReason.Value
    BUNDLE_STALE: CycleReason.Value
    RECO_BLOCKED: CycleReason.Value
    SYSTEM_ERROR: CycleReason.Value
    def __init__(self) -> None: ...

class BundleDecision(_message.Message):
    __slots__ = ()
    class Value(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        VALUE_UNSPECIFIED: _ClassVar[BundleDecision.Value]
        PASS: _ClassVar[BundleDecision.Value]
        WARN: _ClassVar[BundleDecision.Value]
        FAIL: _ClassVar[BundleDecision.Value]
        NO_BUNDLE: _ClassVar[BundleDecision.Value]
    VALUE_UNSPECIFIED: BundleDecision.Value
    PASS: BundleDecision.Value
    WARN: BundleDecision.Value
    FAIL: BundleDecision.Value
    NO_BUNDLE: BundleDecision.Value
    def __init__(self) -> None: ...

class RecoDecision(_message.Message):
    __slots__ = ()
    class Value(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        VALUE_UNSPECIFIED: _ClassVar[RecoDecision.Value]
        GENERATED: _ClassVar[RecoDecision.Value]
        EMPTY_RECO: _ClassVar[RecoDecision.Value]
        BLOCKED: _ClassVar[RecoDecision.Value]
    VALUE_UNSPECIFIED: RecoDecision.Value
    GENERATED: RecoDecision.Value
    EMPTY_RECO: RecoDecision.Value
    BLOCKED: RecoDecision.Value
    def __init__(self) -> None: ...

class RecoReason(_message.Message):
    __slots__ = ()
    class Value(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        VALUE_UNSPECIFIED: _ClassVar[RecoReason.Value]
        SUCCESS: _ClassVar[RecoReason.Value]
        NO_BUNDLE: _ClassVar[RecoReason.Value]
        BUNDLE_FAIL: _ClassVar[RecoReason.Value]
        BUNDLE_STALE: _ClassVar[RecoReason.Value]
        SYSTEM_ERROR: _ClassVar[RecoReason.Value]
    VALUE_UNSPECIFIED: RecoReason.Value
    SUCCESS: RecoReason.Value
    NO_BUNDLE: RecoReason.Value
    BUNDLE_FAIL: RecoReason.Value
    BUNDLE_STALE: RecoReason.Value
    SYSTEM_ERROR: RecoReason.Value
    def __init__(self) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("schema", "cycle_id", "asof", "result", "decision", "reason", "bundle", "reco", "ops_summary", "push", "snapshot_ref", "evidence_refs", "integrity")
    class Bundle(_message.Message):
        __slots__ = ("latest_ref", "decision", "stale", "valid", "evidence_refs", "error")
        LATEST_REF_FIELD_NUMBER: _ClassVar[int]
        DECISION_FIELD_NUMBER: _ClassVar[int]
        STALE_FIELD_NUMBER: _ClassVar[int]
        VALID_FIELD_NUMBER: _ClassVar[int]
        EVIDENCE_REFS_FIELD_NUMBER: _ClassVar[int]
        ERROR_FIELD_NUMBER: _ClassVar[int]
        latest_ref: str
        decision: BundleDecision.Value
        stale: bool
        valid: bool
        evidence_refs: _containers.RepeatedScalarFieldContainer[str]
        error: str
        def __init__(self, latest_ref: _Optional[str] = ..., decision: _Optional[_Union[BundleDecision.Value, str]] = ..., stale: _Optional[bool] = ..., valid: _Optional[bool] = ..., evidence_refs: _Optional[_Iterable[str]] = ..., error: _Optional[str] = ...) -> None: ...
    class Reco(_message.Message):
        __slots__ = ("latest_ref", "snapshot_ref", "decision", "reason", "evidence_refs", "error")
        LATEST_REF_FIELD_NUMBER: _ClassVar[int]
        SNAPSHOT_REF_FIELD_NUMBER: _ClassVar[int]
        DECISION_FIELD_NUMBER: _ClassVar[int]
        REASON_FIELD_NUMBER: _ClassVar[int]
        EVIDENCE_REFS_FIELD_NUMBER: _ClassVar[int]
        ERROR_FIELD_NUMBER: _ClassVar[int]
        latest_ref: str
        snapshot_ref: str
        decision: RecoDecision.Value
        reason: RecoReason.Value
        evidence_refs: _containers.RepeatedScalarFieldContainer[str]
        error: str
        def __init__(self, latest_ref: _Optional[str] = ..., snapshot_ref: _Optional[str] = ..., decision: _Optional[_Union[RecoDecision.Value, str]] = ..., reason: _Optional[_Union[RecoReason.Value, str]] = ..., evidence_refs: _Optional[_Iterable[str]] = ..., error: _Optional[str] = ...) -> None: ...
    class OpsSummary(_message.Message):
        __slots__ = ("latest_ref", "snapshot_ref", "error")
        LATEST_REF_FIELD_NUMBER: _ClassVar[int]
        SNAPSHOT_REF_FIELD_NUMBER: _ClassVar[int]
        ERROR_FIELD_NUMBER: _ClassVar[int]
        latest_ref: str
        snapshot_ref: str
        error: str
        def __init__(self, latest_ref: _Optional[str] = ..., snapshot_ref: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...
    class Push(_message.Message):
        __slots__ = ("preview_ref", "send_receipt_ref", "delivery_actual", "error")
        PREVIEW_REF_FIELD_NUMBER: _ClassVar[int]
        SEND_RECEIPT_REF_FIELD_NUMBER: _ClassVar[int]
        DELIVERY_ACTUAL_FIELD_NUMBER: _ClassVar[int]
        ERROR_FIELD_NUMBER: _ClassVar[int]
        preview_ref: str
        send_receipt_ref: str
        delivery_actual: str
        error: str
        def __init__(self, preview_ref: _Optional[str] = ..., send_receipt_ref: _Optional[str] = ..., delivery_actual: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...
    class Integrity(_message.Message):
        __slots__ = ("payload_sha256",)
        PAYLOAD_SHA256_FIELD_NUMBER: _ClassVar[int]
        payload_sha256: str
        def __init__(self, payload_sha256: _Optional[str] = ...) -> None: ...
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    CYCLE_ID_FIELD_NUMBER: _ClassVar[int]
    ASOF_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    RECO_FIELD_NUMBER: _ClassVar[int]
    OPS_SUMMARY_FIELD_NUMBER: _ClassVar[int]
    PUSH_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_REF_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_REFS_FIELD_NUMBER: _ClassVar[int]
    INTEGRITY_FIELD_NUMBER: _ClassVar[int]
    schema: str
    cycle_id: str
    asof: str
    result: CycleResult.Value
    decision: CycleDecision.Value
    reason: CycleReason.Value
    bundle: Receipt.Bundle
    reco: Receipt.Reco
    ops_summary: Receipt.OpsSummary
    push: Receipt.Push
    snapshot_ref: str
    evidence_refs: _containers.RepeatedScalarFieldContainer[str]
    integrity: Receipt.Integrity
    def __init__(self, schema: _Optional[str] = ..., cycle_id: _Optional[str] = ..., asof: _Optional[str] = ..., result: _Optional[_Union[CycleResult.Value, str]] = ..., decision: _Optional[_Union[CycleDecision.Value, str]] = ..., reason: _Optional[_Union[CycleReason.Value, str]] = ..., bundle: _Optional[_Union[Receipt.Bundle, _Mapping]] = ..., reco: _Optional[_Union[Receipt.Reco, _Mapping]] = ..., ops_summary: _Optional[_Union[Receipt.OpsSummary, _Mapping]] = ..., push: _Optional[_Union[Receipt.Push, _Mapping]] = ..., snapshot_ref: _Optional[str] = ..., evidence_refs: _Optional[_Iterable[str]] = ..., integrity: _Optional[_Union[Receipt.Integrity, _Mapping]] = ...) -> None: ...

class RunCycleRequest(_message.Message):
    __slots__ = ("confirm", "idempotency_key")
    CONFIRM_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    confirm: bool
    idempotency_key: str
    def __init__(self, confirm: _Optional[bool] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class RunCycleResponse(_message.Message):
    __slots__ = ("receipt",)
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    receipt: Receipt
    def __init__(self, receipt: _Optional[_Union[Receipt, _Mapping]] = ...) -> None: ...

class GetLatestCycleRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetLatestCycleResponse(_message.Message):
    __slots__ = ("schema", "asof", "status", "row_count", "rows", "snapshots", "error")
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    ASOF_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    schema: str
    asof: str
    status: str
    row_count: int
    rows: _containers.RepeatedCompositeFieldContainer[Receipt]
    snapshots: _containers.RepeatedScalarFieldContainer[str]
    error: _view_pb2.ViewError
    def __init__(self, schema: _Optional[str] = ..., asof: _Optional[str] = ..., status: _Optional[str] = ..., row_count: _Optional[int] = ..., rows: _Optional[_Iterable[_Union[Receipt, _Mapping]]] = ..., snapshots: _Optional[_Iterable[str]] = ..., error: _Optional[_Union[_view_pb2.ViewError, _Mapping]] = ...) -> None: ...

class RecoReport(_message.Message):
    __slots__ = ("schema", "report_id", "created_at", "source_bundle", "decision", "reason", "recommendations", "summary", "constraints_applied", "evidence_refs", "integrity")
    class SourceBundle(_message.Message):
        __slots__ = ("bundle_id", "strategy_name", "strategy_version", "latest_ref", "created_at", "bundle_decision", "integrity")
        BUNDLE_ID_FIELD_NUMBER: _ClassVar[int]
        STRATEGY_NAME_FIELD_NUMBER: _ClassVar[int]
        STRATEGY_VERSION_FIELD_NUMBER: _ClassVar[int]
        LATEST_REF_FIELD_NUMBER: _ClassVar[int]
        CREATED_AT_FIELD_NUMBER: _ClassVar[int]
        BUNDLE_DECISION_FIELD_NUMBER: _ClassVar[int]
        INTEGRITY_FIELD_NUMBER: _ClassVar[int]
        bundle_id: str
        strategy_name: str
        strategy_version: str
        latest_ref: str
        created_at: str
        bundle_decision: BundleDecision.Value
        integrity: RecoReport.Integrity
        def __init__(self, bundle_id: _Optional[str] = ..., strategy_name: _Optional[str] = ..., strategy_version: _Optional[str] = ..., latest_ref: _Optional[str] = ..., created_at: _Optional[str] = ..., bundle_decision: _Optional[_Union[BundleDecision.Value, str]] = ..., integrity: _Optional[_Union[RecoReport.Integrity, _Mapping]] = ...) -> None: ...
    class Recommendation(_message.Message):
        __slots__ = ("ticker", "name", "action", "weight_pct", "signal_score", "rationale")
        class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
            __slots__ = ()
            ACTION_UNSPECIFIED: _ClassVar[RecoReport.Recommendation.Action]
            BUY: _ClassVar[RecoReport.Recommendation.Action]
            SELL: _ClassVar[RecoReport.Recommendation.Action]
            HOLD: _ClassVar[RecoReport.Recommendation.Action]
        ACTION_UNSPECIFIED: RecoReport.Recommendation.Action
        BUY: RecoReport.Recommendation.Action
        SELL: RecoReport.Recommendation.Action
        HOLD: RecoReport.Recommendation.Action
        TICKER_FIELD_NUMBER: _ClassVar[int]
        NAME_FIELD_NUMBER: _ClassVar[int]
        ACTION_FIELD_NUMBER: _ClassVar[int]
        WEIGHT_PCT_FIELD_NUMBER: _ClassVar[int]
        SIGNAL_SCORE_FIELD_NUMBER: _ClassVar[int]
        RATIONALE_FIELD_NUMBER: _ClassVar[int]
        ticker: str
        name: str
        action: RecoReport.Recommendation.Action
        weight_pct: float
        signal_score: float
        rationale: str
        def __init__(self, ticker: _Optional[str] = ..., name: _Optional[str] = ..., action: _Optional[_Union[RecoReport.Recommendation.Action, str]] = ..., weight_pct: _Optional[float] = ..., signal_score: _Optional[float] = ..., rationale: _Optional[str] = ...) -> None: ...
    class Summary(_message.Message):
        __slots__ = ("total_positions", "buy_count", "sell_count", "hold_count", "cash_pct")
        TOTAL_POSITIONS_FIELD_NUMBER: _ClassVar[int]
        BUY_COUNT_FIELD_NUMBER: _ClassVar[int]
        SELL_COUNT_FIELD_NUMBER: _ClassVar[int]
        HOLD_COUNT_FIELD_NUMBER: _ClassVar[int]
        CASH_PCT_FIELD_NUMBER: _ClassVar[int]
        total_positions: int
        buy_count: int
        sell_count: int
        hold_count: int
        cash_pct: float
        def __init__(self, total_positions: _Optional[int] = ..., buy_count: _Optional[int] = ..., sell_count: _Optional[int] = ..., hold_count: _Optional[int] = ..., cash_pct: _Optional[float] = ...) -> None: ...
    class Constraints(_message.Message):
        __slots__ = ("max_position_pct", "max_positions", "min_cash_pct")
        MAX_POSITION_PCT_FIELD_NUMBER: _ClassVar[int]
        MAX_POSITIONS_FIELD_NUMBER: _ClassVar[int]
        MIN_CASH_PCT_FIELD_NUMBER: _ClassVar[int]
        max_position_pct: float
        max_positions: int
        min_cash_pct: float
        def __init__(self, max_position_pct: _Optional[float] = ..., max_positions: _Optional[int] = ..., min_cash_pct: _Optional[float] = ...) -> None: ...
    class Integrity(_message.Message):
        __slots__ = ("payload_sha256",)
        PAYLOAD_SHA256_FIELD_NUMBER: _ClassVar[int]
        payload_sha256: str
        def __init__(self, payload_sha256: _Optional[str] = ...) -> None: ...
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_BUNDLE_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATIONS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_APPLIED_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_REFS_FIELD_NUMBER: _ClassVar[int]
    INTEGRITY_FIELD_NUMBER: _ClassVar[int]
    schema: str
    report_id: str
    created_at: str
    source_bundle: RecoReport.SourceBundle
    decision: RecoDecision.Value
    reason: RecoReason.Value
    recommendations: _containers.RepeatedCompositeFieldContainer[RecoReport.Recommendation]
    summary: RecoReport.Summary
    constraints_applied: RecoReport.Constraints
    evidence_refs: _containers.RepeatedScalarFieldContainer[str]
    integrity: RecoReport.Integrity
    def __init__(self, schema: _Optional[str] = ..., report_id: _Optional[str] = ..., created_at: _Optional[str] = ..., source_bundle: _Optional[_Union[RecoReport.SourceBundle, _Mapping]] = ..., decision: _Optional[_Union[RecoDecision.Value, str]] = ..., reason: _Optional[_Union[RecoReason.Value, str]] = ..., recommendations: _Optional[_Iterable[_Union[RecoReport.Recommendation, _Mapping]]] = ..., summary: _Optional[_Union[RecoReport.Summary, _Mapping]] = ..., constraints_applied: _Optional[_Union[RecoReport.Constraints, _Mapping]] = ..., evidence_refs: _Optional[_Iterable[str]] = ..., integrity: _Optional[_Union[RecoReport.Integrity, _Mapping]] = ...) -> None: ...

class GetLatestRecoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetLatestRecoResponse(_message.Message):
    __slots__ = ("status", "report")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    status: str
    report: RecoReport
    def __init__(self, status: _Optional[str] = ..., report: _Optional[_Union[RecoReport, _Mapping]] = ...) -> None: ...
