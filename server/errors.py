"""Typed refusals shared by the core and the shells.

The core raises these; the gRPC shell turns each into a status with rich
details (google.rpc) and the gateway into the legacy HTTP body. Every refusal
names the field and the rule.
"""
from __future__ import annotations

from dataclasses import dataclass


class StartupRefused(Exception):
    """A start-up that stops on something an operator must fix first.

    ``str()`` names the cause; ``fix`` says what to do (the CLI prints both
    as one line).
    """

    fix = "see the server log"


class OpsledgerError(Exception):
    """Base of every refusal a caller can see."""


@dataclass
class Violation:
    field: str
    description: str


class InvalidArgument(OpsledgerError):
    def __init__(self, violations: list[Violation]) -> None:
        self.violations = violations
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))

    @classmethod
    def one(cls, field_name: str, description: str) -> InvalidArgument:
        return cls([Violation(field_name, description)])


class NotFound(OpsledgerError):
    def __init__(self, message: str, resource_type: str = "ticket", resource_name: str = "") -> None:
        self.resource_type = resource_type
        self.resource_name = resource_name
        super().__init__(message)


@dataclass
class IllegalTransition(OpsledgerError):
    """A transition the state machine does not allow; nothing was written."""

    request_id: str
    current_status: str
    attempted: str
    last_processor_id: str = ""
    last_result_id: str = ""

    def __post_init__(self) -> None:
        super().__init__(
            f"ticket {self.request_id} is {self.current_status}: cannot {self.attempted}"
        )


class Unavailable(OpsledgerError):
    """Nothing was done and a retry is safe (the store cannot write now).

    Only for refusals made before any effect: clients retry this code.
    """


class NotRecorded(OpsledgerError):
    """The work ran (its files exist) but its record could not be written.

    Not UNAVAILABLE (AIP-193/194): repeating the call repeats the work. The
    shell answers INTERNAL with an ErrorInfo naming what did happen.
    """

    def __init__(self, message: str, reason: str, metadata: dict[str, str]) -> None:
        self.reason = reason
        self.metadata = metadata
        super().__init__(message)


class OutcomeUnknown(OpsledgerError):
    """A write failed and what it wrote could not be taken back: it may be
    recorded. Not UNAVAILABLE (a retry could do it twice): INTERNAL, and the
    caller reads the ticket before deciding anything."""


class Unauthenticated(OpsledgerError):
    pass


class ResourceExhausted(OpsledgerError):
    pass


class CycleRefused(OpsledgerError):
    """RunCycle without confirm."""


class ViewRefused(OpsledgerError):
    """A view (``<NAME>_V1`` envelope) refused; the gateway answers in the envelope.

    ``code`` is the envelope's error code, ``field`` the request field at fault.
    """

    def __init__(self, code: str, message: str, schema: str, asof: str, field_name: str = "") -> None:
        self.code = code
        self.schema = schema
        self.asof = asof
        self.field = field_name
        super().__init__(message)


class InvalidRef(ViewRefused):
    """An evidence ref that breaks a rule (INVALID_ARGUMENT)."""


class ViewNotFound(ViewRefused):
    """A valid ref with nothing behind it (NOT_FOUND)."""
