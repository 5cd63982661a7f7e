"""Which calls the server takes on: budgets by kind, health never refused.

A ConsumeNext long-poll (wait_seconds > 0) mostly waits on a future; it
should not take a slot that reads and writes need. So calls count against
one of two budgets:

- ``max_calls``: every call that is not a waiting long-poll;
- ``max_long_polls``: ConsumeNext with wait_seconds > 0, and every server
  stream (WatchTickets: it mostly waits too), large by default.

Streams of requests (reflection) are left to the connection limits.

grpc.health.v1.Health counts against neither: an orchestrator that cannot
get an answer would restart a healthy server. A call over its budget is
RESOURCE_EXHAUSTED naming the budget. (grpc.aio's own
``maximum_concurrent_rpcs`` counts every call alike, health included, so
the server does not use it.)
"""
from __future__ import annotations

from dataclasses import dataclass

import grpc

from opsledger.server.interceptors import HEALTH_PREFIX

LONG_POLL_METHOD = "/opsledger.v1.TicketService/ConsumeNext"


@dataclass
class Budget:
    name: str
    limit: int
    in_use: int = 0


class Admission(grpc.aio.ServerInterceptor):
    """Concurrency budgets (one event loop: plain counters need no lock)."""

    def __init__(self, max_calls: int, max_long_polls: int, metrics=None) -> None:
        self.calls = Budget("calls", max_calls)
        self.long_polls = Budget("long-polls", max_long_polls)
        self.gauge = metrics.in_progress if metrics is not None else None

    def budget_for(self, method: str, request) -> Budget:
        if method == LONG_POLL_METHOD and getattr(request, "wait_seconds", 0) > 0:
            return self.long_polls
        return self.calls

    async def _enter(self, budget: Budget, context) -> None:
        if budget.in_use >= budget.limit:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"server busy: {budget.limit} {budget.name} already in progress; retry with backoff",
            )
        budget.in_use += 1
        if self.gauge is not None:
            self.gauge.labels(budget.name).set(budget.in_use)

    def _leave(self, budget: Budget) -> None:
        budget.in_use -= 1
        if self.gauge is not None:
            self.gauge.labels(budget.name).set(budget.in_use)

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or details.method.startswith(HEALTH_PREFIX):
            return handler
        if handler.unary_stream is not None:
            return self._stream(handler)
        if handler.unary_unary is None:
            return handler
        inner = handler.unary_unary
        method = details.method

        async def admitted(request, context):
            budget = self.budget_for(method, request)
            await self._enter(budget, context)
            try:
                return await inner(request, context)
            finally:
                self._leave(budget)

        return grpc.unary_unary_rpc_method_handler(
            admitted, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _stream(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        inner = handler.unary_stream

        async def admitted(request, context):
            await self._enter(self.long_polls, context)
            try:
                answer = inner(request, context)
                if hasattr(answer, "__aiter__"):
                    async for message in answer:
                        yield message
                else:  # a coroutine that writes with context.write
                    await answer
            finally:
                self._leave(self.long_polls)

        return grpc.unary_stream_rpc_method_handler(
            admitted, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
