"""Refusals -> gRPC statuses with google.rpc details (one table, one place).

INVALID_ARGUMENT carries BadRequest field violations; FAILED_PRECONDITION an
ErrorInfo (reason ILLEGAL_TRANSITION) with current_status, last_processor_id
and last_result_id; NOT_FOUND a ResourceInfo. A view's refusal (evidence)
carries an ErrorInfo whose reason is the envelope's error code and whose
metadata names the envelope's schema and asof.

``decode_details`` is the way back, for every reader of a refusal (the
gateway's bodies, the CLI's messages).
"""
from __future__ import annotations

import functools
import logging

import grpc
from google.protobuf import any_pb2, json_format
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from opsledger.server import errors

log = logging.getLogger("opsledger.rpc")
DOMAIN = "opsledger"
TRANSITION_KEYS = ("request_id", "current_status", "attempted", "last_processor_id", "last_result_id")

_CODES: dict[type, int] = {
    errors.InvalidArgument: code_pb2.INVALID_ARGUMENT,
    errors.NotFound: code_pb2.NOT_FOUND,
    errors.IllegalTransition: code_pb2.FAILED_PRECONDITION,
    errors.Unavailable: code_pb2.UNAVAILABLE,
    errors.Unauthenticated: code_pb2.UNAUTHENTICATED,
    errors.ResourceExhausted: code_pb2.RESOURCE_EXHAUSTED,
    errors.CycleRefused: code_pb2.FAILED_PRECONDITION,
    # Ran but could not be recorded: not retryable (AIP-194), unlike UNAVAILABLE.
    errors.NotRecorded: code_pb2.INTERNAL,
    errors.OutcomeUnknown: code_pb2.INTERNAL,
    errors.InvalidRef: code_pb2.INVALID_ARGUMENT,
    errors.ViewNotFound: code_pb2.NOT_FOUND,
}


# The status travels in the trailers (grpc-message, grpc-status-details-bin),
# which peers cap at 8 KiB by default: past it a refusal arrives as
# RESOURCE_EXHAUSTED instead of itself. So a refusal lists at most
# MAX_LISTED_VIOLATIONS violations, each clipped, then one saying how many
# more there were (worst case ~3 KiB of details, ~4 KiB base64).
MAX_LISTED_VIOLATIONS = 10
MAX_FIELD_CHARS = 128
MAX_DESCRIPTION_CHARS = 160
MAX_MESSAGE_CHARS = 600


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _base_field(name: str) -> str:
    return name.split("[", 1)[0].split(".", 1)[0]


def bounded_violations(violations: list[errors.Violation]) -> list[errors.Violation]:
    """The first MAX_LISTED_VIOLATIONS (clipped), then a count of the rest naming their fields."""
    listed = [errors.Violation(_clip(v.field, MAX_FIELD_CHARS), _clip(v.description, MAX_DESCRIPTION_CHARS))
              for v in violations[:MAX_LISTED_VIOLATIONS]]
    rest = violations[MAX_LISTED_VIOLATIONS:]
    if rest:
        fields = ", ".join(dict.fromkeys(_base_field(v.field) for v in rest))
        listed.append(errors.Violation(
            _clip(fields, MAX_FIELD_CHARS),
            f"{len(rest)} more violations not listed ({len(violations)} in all)",
        ))
    return listed


def _pack(detail) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(detail)
    return packed


def _details(exc: errors.OpsledgerError) -> list[any_pb2.Any]:
    if isinstance(exc, errors.InvalidArgument):
        return [_pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in bounded_violations(exc.violations)
        ]))]
    if isinstance(exc, errors.IllegalTransition):
        # ErrorInfo metadata holds strings only: a value the ticket does not
        # have yet (no result while OPEN) is left out, and HTTP shows it null.
        values = {key: getattr(exc, key) for key in TRANSITION_KEYS}
        return [_pack(error_details_pb2.ErrorInfo(
            reason="ILLEGAL_TRANSITION",
            domain=DOMAIN,
            metadata={k: v for k, v in values.items() if v},
        ))]
    if isinstance(exc, errors.ViewRefused):
        # metadata "schema" tells the gateway to answer in that view's envelope.
        info = _pack(error_details_pb2.ErrorInfo(
            reason=exc.code, domain=DOMAIN, metadata={"schema": exc.schema, "asof": exc.asof}))
        if exc.field:
            return [info, _pack(error_details_pb2.BadRequest(field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=exc.field, description=str(exc))]))]
        return [info]
    if isinstance(exc, errors.CycleRefused):
        return [_pack(error_details_pb2.ErrorInfo(reason="CONFIRM_REQUIRED", domain=DOMAIN))]
    if isinstance(exc, errors.OutcomeUnknown):
        return [_pack(error_details_pb2.ErrorInfo(reason="OUTCOME_UNKNOWN", domain=DOMAIN))]
    if isinstance(exc, errors.NotRecorded):
        return [_pack(error_details_pb2.ErrorInfo(reason=exc.reason, domain=DOMAIN, metadata=exc.metadata))]
    if isinstance(exc, errors.NotFound):
        return [_pack(error_details_pb2.ResourceInfo(
            resource_type=exc.resource_type, resource_name=exc.resource_name, description=str(exc)
        ))]
    return []


def to_status(exc: errors.OpsledgerError) -> grpc.Status:
    code = next(c for t, c in _CODES.items() if isinstance(exc, t))
    message = _clip(str(exc), MAX_MESSAGE_CHARS)
    if isinstance(exc, errors.InvalidArgument):
        listed = bounded_violations(exc.violations)
        message = _clip("; ".join(f"{v.field}: {v.description}" for v in listed), MAX_MESSAGE_CHARS)
    return rpc_status.to_status(status_pb2.Status(code=code, message=message, details=_details(exc)))


def refusals_to_status(method):
    """Servicer method decorator: a refusal becomes its status; a bug, INTERNAL."""

    @functools.wraps(method)
    async def wrapper(self, request, context):
        try:
            return await method(self, request, context)
        except errors.OpsledgerError as exc:
            status = to_status(exc)
            await context.abort(status.code, status.details, status.trailing_metadata)
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("internal error in %s", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")

    return wrapper


# The google.rpc detail kinds opsledger sends (see ``_details``).
DETAIL_KINDS = (error_details_pb2.BadRequest, error_details_pb2.ErrorInfo, error_details_pb2.ResourceInfo)


def decode_details(exc: grpc.RpcError) -> list[dict]:
    """The google.rpc details of a failed call as plain dicts, each with its ``@type``.

    Empty when the call carried none (or a status that does not match its code).
    """
    try:
        status = rpc_status.from_call(exc)
    except ValueError:
        return []
    out: list[dict] = []
    for packed in status.details if status is not None else ():
        for kind in DETAIL_KINDS:
            if packed.Is(kind.DESCRIPTOR):
                detail = kind()
                packed.Unpack(detail)
                item = json_format.MessageToDict(detail, preserving_proto_field_name=True)
                item["@type"] = kind.DESCRIPTOR.full_name
                out.append(item)
    return out
