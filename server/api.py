"""The API as the protos declare it: services, HTTP rules, which RPCs write.

The one place the ``google.api.http`` options are read. The gateway makes
its routes (and OpenAPI paths) from them and the auth interceptor its list
of writing RPCs, so neither knows a route by name and a new annotated RPC
is a new route with the right auth rule.
"""
from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor, message_factory

_TEMPLATE_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?:=\*)?\}")


@dataclass(frozen=True)
class HttpRoute:
    service: str  # full name, e.g. opsledger.v1.TicketService
    method: descriptor.MethodDescriptor
    verb: str  # GET, POST, ...
    template: str  # google.api.http path, e.g. /api/tickets/{request_id}
    body: str  # "" (no body), "*" (whole request)

    @property
    def full_method(self) -> str:
        return f"/{self.service}/{self.method.name}"

    @property
    def key(self) -> str:
        return f"{self.service}.{self.method.name}"

    @property
    def path_params(self) -> list[str]:
        return _TEMPLATE_VAR.findall(self.template)

    @property
    def starlette_path(self) -> str:
        return _TEMPLATE_VAR.sub(lambda m: "{" + m.group(1) + "}", self.template)

    @property
    def is_literal(self) -> bool:
        return not self.path_params

    def request_class(self):
        return message_factory.GetMessageClass(self.method.input_type)

    def response_class(self):
        return message_factory.GetMessageClass(self.method.output_type)


def _verb_and_path(rule: http_pb2.HttpRule) -> tuple[str, str] | None:
    kind = rule.WhichOneof("pattern")
    if kind is None:
        return None
    if kind == "custom":
        return rule.custom.kind.upper(), rule.custom.path
    return kind.upper(), getattr(rule, kind)


def routes_of(services: list[descriptor.ServiceDescriptor]) -> list[HttpRoute]:
    """Every annotated method (and its additional_bindings); literal paths first."""
    out: list[HttpRoute] = []
    for service in services:
        for method in service.methods:
            options = method.GetOptions()
            if not options.HasExtension(annotations_pb2.http):
                continue
            rule = options.Extensions[annotations_pb2.http]
            for r in (rule, *rule.additional_bindings):
                vp = _verb_and_path(r)
                if vp is not None:
                    out.append(HttpRoute(service.full_name, method, vp[0], vp[1], r.body))
    # Literal paths win over templates: /api/tickets/latest is never a ticket id.
    return sorted(out, key=lambda r: (not r.is_literal, r.template))


def package_services(package: str = "opsledger.v1") -> list[descriptor.ServiceDescriptor]:
    """Every service of the generated package (each *_pb2 module found on import)."""
    pkg = importlib.import_module(package)
    services = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.endswith("_pb2"):
            module = importlib.import_module(f"{package}.{info.name}")
            services += list(module.DESCRIPTOR.services_by_name.values())
    return sorted(services, key=lambda s: s.full_name)


def mutating_methods() -> frozenset[str]:
    """Full gRPC method names that change something: every RPC whose HTTP verb is not GET."""
    return frozenset(r.full_method for r in routes_of(package_services()) if r.verb != "GET")
