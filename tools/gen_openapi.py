"""Generate the OpenAPI 3 document of the REST surface from the protos' HTTP annotations.

    python tools/gen_openapi.py           write gateway/openapi.json
    python tools/gen_openapi.py --check   exit 1 when gateway/openapi.json differs from a fresh one

The document describes what the gateway's gRPC-JSON transcoder really serves, so it
follows the transcoder's settings in gateway/envoy.yaml.tmpl rather than general
protobuf conventions: lowerCamelCase JSON names, enums by name, int64 as strings,
Timestamps as RFC 3339, every field without presence printed even when zero (so it
is required in responses), errors as a JSON google.rpc.Status (or plain text when
Envoy itself answers). Methods without an HTTP annotation are served by the
transcoder's auto mapping at POST /<package>.<Service>/<Method>: server streams
appear there as newline-delimited JSON; unannotated unary and client-streaming
methods are internal and left out. Which paths need no credential comes from the
auth service's public-path list, which is what the gateway's check applies.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
# Work from a plain checkout too, before the package is installed (as gen_protos does).
sys.path.insert(0, str(REPO_ROOT))

from google.api import annotations_pb2, http_pb2  # noqa: E402
from google.protobuf import descriptor_pb2  # noqa: E402

from cift.protogen import ProtoGenError, build_descriptor_set  # noqa: E402
from services.auth.config import DEFAULT_PUBLIC_PATHS  # noqa: E402

OUTPUT_PATH = REPO_ROOT / "gateway" / "openapi.json"

# The services the gateway transcodes, in the order of the document's tags.
SERVICES = (
    "cift.auth.v1.AuthService",
    "cift.marketdata.v1.MarketDataService",
    "cift.execution.v1.ExecutionService",
    "cift.risk.v1.RiskService",
    "cift.backtest.v1.BacktestService",
)
NDJSON = "application/x-ndjson"
ERROR_SCHEMA = "google.rpc.Status"

Json = dict[str, Any]
FDP = descriptor_pb2.FieldDescriptorProto

# Field number paths in SourceCodeInfo (descriptor.proto's field numbers).
_MESSAGE_TYPE, _ENUM_TYPE, _SERVICE = 4, 5, 6
_NESTED_MESSAGE, _NESTED_ENUM, _FIELD, _METHOD = 3, 4, 2, 2

_INT32_BOUNDS = {"minimum": -(2**31), "maximum": 2**31 - 1}
_UINT32_BOUNDS = {"minimum": 0, "maximum": 2**32 - 1}
_SCALARS: Mapping[int, Json] = {
    FDP.TYPE_STRING: {"type": "string"},
    FDP.TYPE_BOOL: {"type": "boolean"},
    FDP.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FDP.TYPE_FLOAT: {"type": "number", "format": "float"},
    FDP.TYPE_INT32: {"type": "integer", "format": "int32", **_INT32_BOUNDS},
    FDP.TYPE_SINT32: {"type": "integer", "format": "int32", **_INT32_BOUNDS},
    FDP.TYPE_SFIXED32: {"type": "integer", "format": "int32", **_INT32_BOUNDS},
    FDP.TYPE_UINT32: {"type": "integer", "format": "int64", **_UINT32_BOUNDS},
    FDP.TYPE_FIXED32: {"type": "integer", "format": "int64", **_UINT32_BOUNDS},
    # proto3 JSON writes 64-bit integers as strings (JavaScript numbers lose precision).
    FDP.TYPE_INT64: {"type": "string", "format": "int64", "pattern": "^-?[0-9]{1,19}$"},
    FDP.TYPE_SINT64: {"type": "string", "format": "int64", "pattern": "^-?[0-9]{1,19}$"},
    FDP.TYPE_SFIXED64: {"type": "string", "format": "int64", "pattern": "^-?[0-9]{1,19}$"},
    FDP.TYPE_UINT64: {"type": "string", "format": "uint64", "pattern": "^[0-9]{1,20}$"},
    FDP.TYPE_FIXED64: {"type": "string", "format": "uint64", "pattern": "^[0-9]{1,20}$"},
    FDP.TYPE_BYTES: {"type": "string", "format": "byte"},
}
# Well-known types have their own JSON forms.
_WELL_KNOWN: Mapping[str, Json] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
    },
    "google.protobuf.StringValue": {"type": "string"},
    "google.protobuf.BoolValue": {"type": "boolean"},
    "google.protobuf.DoubleValue": {"type": "number"},
    "google.protobuf.FloatValue": {"type": "number"},
    "google.protobuf.Int32Value": {"type": "integer", "format": "int32"},
    "google.protobuf.UInt32Value": {"type": "integer", "format": "int64"},
    "google.protobuf.Int64Value": {"type": "string", "format": "int64"},
    "google.protobuf.UInt64Value": {"type": "string", "format": "uint64"},
    "google.protobuf.BytesValue": {"type": "string", "format": "byte"},
}
_TEMPLATE_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)(=[^}]*)?\}")


class OpenApiError(Exception):
    """The protos use something this generator cannot describe truthfully."""


@dataclass(frozen=True)
class Message:
    proto: descriptor_pb2.DescriptorProto
    description: str
    field_descriptions: Mapping[str, str]


@dataclass(frozen=True)
class Method:
    service: str
    proto: descriptor_pb2.MethodDescriptorProto
    description: str

    @property
    def grpc_path(self) -> str:
        return f"/{self.service}/{self.proto.name}"

    @property
    def rule(self) -> http_pb2.HttpRule | None:
        if not self.proto.options.HasExtension(annotations_pb2.http):
            return None
        rule: http_pb2.HttpRule = self.proto.options.Extensions[annotations_pb2.http]
        return rule


def _comment(location: descriptor_pb2.SourceCodeInfo.Location | None) -> str:
    if location is None:
        return ""
    lines = [line.strip() for line in location.leading_comments.strip().splitlines()]
    return "\n".join(lines).strip()


class Descriptors:
    """Messages, enums and methods of a descriptor set, with their comments."""

    def __init__(self, descriptor_set: descriptor_pb2.FileDescriptorSet) -> None:
        self.messages: dict[str, Message] = {}
        self.enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        self.methods: dict[str, list[Method]] = {}
        self.service_descriptions: dict[str, str] = {}
        for file in descriptor_set.file:
            locations = {tuple(loc.path): loc for loc in file.source_code_info.location}
            prefix = f".{file.package}" if file.package else ""
            for index, message in enumerate(file.message_type):
                self._add_message(message, prefix, (_MESSAGE_TYPE, index), locations)
            for enum in file.enum_type:
                self.enums[f"{prefix}.{enum.name}"] = enum
            for s_index, service in enumerate(file.service):
                name = f"{file.package}.{service.name}"
                self.service_descriptions[name] = _comment(locations.get((_SERVICE, s_index)))
                self.methods[name] = [
                    Method(name, method, _comment(locations.get((_SERVICE, s_index, _METHOD, m))))
                    for m, method in enumerate(service.method)
                ]

    def _add_message(
        self,
        message: descriptor_pb2.DescriptorProto,
        prefix: str,
        path: tuple[int, ...],
        locations: Mapping[tuple[int, ...], descriptor_pb2.SourceCodeInfo.Location],
    ) -> None:
        name = f"{prefix}.{message.name}"
        fields = {
            field.name: _comment(locations.get((*path, _FIELD, index)))
            for index, field in enumerate(message.field)
        }
        self.messages[name] = Message(message, _comment(locations.get(path)), fields)
        for index, nested in enumerate(message.nested_type):
            self._add_message(nested, name, (*path, _NESTED_MESSAGE, index), locations)
        for enum in message.enum_type:
            self.enums[f"{name}.{enum.name}"] = enum

    def message(self, type_name: str) -> Message:
        try:
            return self.messages[type_name]
        except KeyError:
            raise OpenApiError(f"message {type_name} is not in the descriptor set") from None


def schema_name(type_name: str) -> str:
    return type_name.lstrip(".")


def _ref(type_name: str) -> Json:
    return {"$ref": f"#/components/schemas/{schema_name(type_name)}"}


def _is_map(descriptors: Descriptors, field: FDP) -> bool:
    if field.type != FDP.TYPE_MESSAGE or field.label != FDP.LABEL_REPEATED:
        return False
    entry = descriptors.messages.get(field.type_name)
    return entry is not None and entry.proto.options.map_entry


def _has_presence(field: FDP) -> bool:
    """Fields the JSON printer leaves out when unset, even printing zero values."""
    return field.label != FDP.LABEL_REPEATED and (
        field.type == FDP.TYPE_MESSAGE or field.HasField("oneof_index")
    )


class SchemaBuilder:
    """JSON Schemas of messages: named components for responses, inline ones for requests.

    Responses are described strictly (every field without presence is required, no
    other property is allowed) because the transcoder prints exactly that; requests
    loosely (nothing required), because a client may leave any field out.
    """

    def __init__(self, descriptors: Descriptors) -> None:
        self.descriptors = descriptors
        self.components: dict[str, Json] = {}

    def field_schema(self, field: FDP, *, response: bool) -> Json:
        if _is_map(self.descriptors, field):
            entry = self.descriptors.message(field.type_name).proto
            value = next(f for f in entry.field if f.name == "value")
            return {
                "type": "object",
                "additionalProperties": self._single(value, response=response),
            }
        single = self._single(field, response=response)
        if field.label == FDP.LABEL_REPEATED:
            return {"type": "array", "items": single}
        return single

    def _single(self, field: FDP, *, response: bool) -> Json:
        if field.type == FDP.TYPE_ENUM:
            enum = self.descriptors.enums.get(field.type_name)
            if enum is None:
                raise OpenApiError(f"enum {field.type_name} is not in the descriptor set")
            return {"type": "string", "enum": [value.name for value in enum.value]}
        if field.type in (FDP.TYPE_MESSAGE, FDP.TYPE_GROUP):
            name = schema_name(field.type_name)
            if name in _WELL_KNOWN:
                return dict(_WELL_KNOWN[name])
            if response:
                self.component(field.type_name)
                return _ref(field.type_name)
            return self.message_schema(field.type_name, response=False)
        try:
            return dict(_SCALARS[field.type])
        except KeyError:
            raise OpenApiError(f"field {field.name} has an unsupported type {field.type}") from None

    def component(self, type_name: str) -> str:
        name = schema_name(type_name)
        if name not in self.components:
            self.components[name] = {}  # placed first, so recursive messages terminate
            self.components[name] = self.message_schema(type_name, response=True)
        return name

    def message_schema(
        self, type_name: str, *, response: bool, leave_out: Iterable[str] = ()
    ) -> Json:
        message = self.descriptors.message(type_name)
        skipped = set(leave_out)
        properties: Json = {}
        required: list[str] = []
        for field in message.proto.field:
            if field.name in skipped:
                continue
            schema = self.field_schema(field, response=response)
            description = message.field_descriptions.get(field.name, "")
            if description:
                # A $ref cannot carry siblings in OpenAPI 3.0: wrap it.
                schema = (
                    {"allOf": [schema], "description": description}
                    if "$ref" in schema
                    else {**schema, "description": description}
                )
            properties[field.json_name] = schema
            if response and not _has_presence(field):
                required.append(field.json_name)
        described: Json = {"type": "object", "properties": properties}
        if required:
            described["required"] = required
        described["additionalProperties"] = False
        if message.description:
            described["description"] = message.description
        return described


def _path_variables(template: str) -> list[str]:
    return [match.group(1) for match in _TEMPLATE_VARIABLE.finditer(template)]


def _openapi_path(template: str) -> str:
    return _TEMPLATE_VARIABLE.sub(lambda match: "{" + match.group(1) + "}", template)


def _query_parameters(
    builder: SchemaBuilder, type_name: str, leave_out: set[str], prefix: str = ""
) -> list[Json]:
    """Every field a GET/DELETE request may carry in its query string (nested ones dotted)."""
    message = builder.descriptors.message(type_name)
    parameters: list[Json] = []
    for field in message.proto.field:
        if not prefix and field.name in leave_out:
            continue
        name = f"{prefix}{field.json_name}"
        nested = field.type == FDP.TYPE_MESSAGE and schema_name(field.type_name) not in _WELL_KNOWN
        if nested and field.label != FDP.LABEL_REPEATED:
            parameters += _query_parameters(builder, field.type_name, leave_out, f"{name}.")
            continue
        if nested or _is_map(builder.descriptors, field):
            raise OpenApiError(
                f"{type_name}.{field.name} cannot travel in a query string; "
                "give its method a request body"
            )
        parameter: Json = {
            "name": name,
            "in": "query",
            "required": False,
            "schema": builder.field_schema(field, response=False),
        }
        if field.label == FDP.LABEL_REPEATED:
            parameter |= {"style": "form", "explode": True}
        description = message.field_descriptions.get(field.name, "")
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _error_responses() -> Json:
    return {
        "default": {
            "description": (
                "An error: the gRPC status as JSON (code, message, details), or plain text "
                "when the gateway itself refuses the request (401 without a valid "
                "credential, 404 unknown path, 413 body too large, 429 rate limited)."
            ),
            "content": {
                "application/json": {"schema": _ref(ERROR_SCHEMA)},
                "text/plain": {"schema": {"type": "string"}},
            },
        }
    }


def _operation(method: Method, public: bool) -> Json:
    summary, _, details = method.description.partition("\n\n")
    operation: Json = {
        "operationId": f"{method.service}.{method.proto.name}",
        "tags": [method.service],
        "summary": summary.replace("\n", " "),
    }
    if details:
        operation["description"] = details
    if public:
        operation["security"] = []
    return operation


def _unary_operation(
    builder: SchemaBuilder, method: Method, rule: http_pb2.HttpRule, template: str, public: bool
) -> Json:
    operation = _operation(method, public)
    request = builder.descriptors.message(method.proto.input_type)
    fields = {field.name: field for field in request.proto.field}
    variables = _path_variables(template)
    parameters: list[Json] = []
    for variable in variables:
        if variable not in fields:
            raise OpenApiError(f"{method.grpc_path}: path variable {variable} is not a field")
        parameter: Json = {
            "name": variable,
            "in": "path",
            "required": True,
            "schema": builder.field_schema(fields[variable], response=False),
        }
        description = request.field_descriptions.get(variable, "")
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    if rule.body == "*":
        body = builder.message_schema(method.proto.input_type, response=False, leave_out=variables)
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    elif rule.body:
        # The body is one message field of the request (CreateBacktest's `spec`): the
        # JSON body is that message, any other fields travel in the query string.
        field = fields.get(rule.body)
        if field is None or field.type != FDP.TYPE_MESSAGE or field.label == FDP.LABEL_REPEATED:
            raise OpenApiError(
                f'{method.grpc_path}: body must be "*" or a message field, not {rule.body!r}'
            )
        body = builder.message_schema(field.type_name, response=False)
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
        parameters += _query_parameters(builder, method.proto.input_type, {*variables, rule.body})
    else:
        parameters += _query_parameters(builder, method.proto.input_type, set(variables))
    if parameters:
        operation["parameters"] = parameters
    builder.component(method.proto.output_type)
    operation["responses"] = {
        "200": {
            "description": "The response message.",
            "content": {"application/json": {"schema": _ref(method.proto.output_type)}},
        },
        **_error_responses(),
    }
    return operation


def _stream_operation(builder: SchemaBuilder, method: Method, public: bool) -> Json:
    operation = _operation(method, public)
    operation["description"] = (
        (operation.get("description", "") + "\n\n").lstrip()
        + "A server stream: the response is newline-delimited JSON, one message per line "
        "as events happen, and stays open until the client closes it (the gateway labels "
        "it application/json). Over gRPC and gRPC-Web it is an ordinary server stream."
    )
    operation["x-cift-server-stream"] = True
    body = builder.message_schema(method.proto.input_type, response=False)
    operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    builder.component(method.proto.output_type)
    operation["responses"] = {
        "200": {
            "description": "One response message per line.",
            "content": {NDJSON: {"schema": _ref(method.proto.output_type)}},
        },
        **_error_responses(),
    }
    return operation


def _http_binding(rule: http_pb2.HttpRule) -> tuple[str, str]:
    verb = rule.WhichOneof("pattern")
    if verb not in ("get", "put", "post", "delete", "patch"):
        raise OpenApiError(f"unsupported HTTP binding {verb!r}")
    if rule.additional_bindings:
        raise OpenApiError("additional_bindings are not supported")
    template: str = getattr(rule, verb)
    return verb, template


def build_document(
    descriptor_set: descriptor_pb2.FileDescriptorSet,
    public_paths: Iterable[str] = DEFAULT_PUBLIC_PATHS,
) -> Json:
    """The OpenAPI document for the transcoded services of `descriptor_set`."""
    descriptors = Descriptors(descriptor_set)
    builder = SchemaBuilder(descriptors)
    public = set(public_paths)
    paths: dict[str, Json] = {}
    for service in SERVICES:
        if service not in descriptors.methods:
            raise OpenApiError(f"service {service} is not in the descriptor set")
        for method in descriptors.methods[service]:
            rule = method.rule
            if rule is not None:
                verb, template = _http_binding(rule)
                path = _openapi_path(template)
                operation = _unary_operation(builder, method, rule, template, template in public)
            elif method.proto.server_streaming and not method.proto.client_streaming:
                verb, path = "post", method.grpc_path
                operation = _stream_operation(builder, method, method.grpc_path in public)
            else:
                continue  # internal: the gateway does not route it
            if verb in paths.setdefault(path, {}):
                raise OpenApiError(f"{verb.upper()} {path} is bound twice")
            paths[path][verb] = operation
    builder.components[ERROR_SCHEMA] = {
        "type": "object",
        "description": "A gRPC status: the code (google.rpc.Code), a sentence, and details.",
        "properties": {
            "code": {"type": "integer", "format": "int32"},
            "message": {"type": "string"},
            "details": {"type": "array", "items": _WELL_KNOWN["google.protobuf.Any"]},
        },
        "required": ["code", "message"],
    }
    paths["/healthz"] = {
        "get": {
            "operationId": "gateway.Health",
            "tags": ["gateway"],
            "summary": "Whether every service has a healthy replica behind this gateway.",
            "security": [],
            "responses": {
                "200": {"description": "Every service can be reached."},
                "503": {"description": "Some service has no healthy replica."},
            },
        }
    }
    tags = [{"name": s, "description": descriptors.service_descriptions[s]} for s in SERVICES]
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "CIFT Markets REST API",
            "version": "v1",
            "description": (
                "Paper-trading brokerage API, transcoded by the Envoy gateway from the gRPC "
                "services (the same methods are served over gRPC and gRPC-Web). Money, prices "
                "and quantities are decimal strings; enums are written by their full names; "
                "64-bit integers are strings. Send `authorization: Bearer <access token>` "
                "(from /v1/auth/login) or `x-api-key: <key>`."
            ),
        },
        "tags": [*tags, {"name": "gateway", "description": "The gateway itself."}],
        "security": [{"bearerAuth": []}, {"apiKey": []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
            "schemas": dict(sorted(builder.components.items())),
        },
    }


def render(document: Json) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def fresh_document() -> str:
    """The document as generated from protos/ now."""
    with tempfile.TemporaryDirectory(prefix="cift-openapi-") as tmp:
        descriptor_path = build_descriptor_set(Path(tmp) / "cift.pb")
        descriptor_set = descriptor_pb2.FileDescriptorSet.FromString(descriptor_path.read_bytes())
    return render(build_document(descriptor_set))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"fail when {OUTPUT_PATH.relative_to(REPO_ROOT)} differs from a fresh document",
    )
    args = parser.parse_args(argv)
    try:
        fresh = fresh_document()
    except (OpenApiError, ProtoGenError) as error:
        print(f"gen_openapi: {error}", file=sys.stderr)
        return 1
    relative = OUTPUT_PATH.relative_to(REPO_ROOT)
    if args.check:
        current = OUTPUT_PATH.read_text() if OUTPUT_PATH.is_file() else ""
        if current != fresh:
            print(f"{relative} is out of date (run `python tools/gen_openapi.py`)", file=sys.stderr)
            return 1
        print(f"{relative} is up to date.")
        return 0
    OUTPUT_PATH.write_text(fresh)
    print(f"wrote {relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
