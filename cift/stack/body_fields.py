"""The gateway's unknown-field check: gateway/body_fields.lua with its table of REST bodies.

Envoy's JSON transcoder drops body fields the request message lacks; the Lua filter
refuses them instead (400 naming the field). Its table comes from the OpenAPI document,
which tools/gen_openapi.py generates from the protos and which declares each request
body `additionalProperties: false`: the filter enforces what the document promises.
Each field is accepted under its JSON name and its proto name, as the transcoder does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cift.stack.errors import StackError

LUA_PATH = Path(__file__).resolve().parents[2] / "gateway" / "body_fields.lua"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VARIABLE = re.compile(r"\{([^}]*)\}")
# Characters with a meaning in Lua patterns, escaped with % in a literal path part.
_LUA_MAGIC = re.compile(r"([\^$()%.\[\]*+\-?])")
_BODY_METHODS = ("post", "put", "patch", "delete")

Json = Mapping[str, Any]


def proto_name(json_name: str) -> str:
    """The proto field name whose default JSON name is `json_name` (lowerCamel → snake)."""
    return re.sub(r"([A-Z])", lambda match: "_" + match.group(1).lower(), json_name)


def _resolve(schema: Json, schemas: Json) -> Json:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return _resolve(schemas[ref.rsplit("/", 1)[-1]], schemas)
    return schema


def lua_node(schema: Json, schemas: Json) -> str:
    """The Lua table of what a JSON value of `schema` may hold (see body_fields.lua)."""
    schema = _resolve(schema, schemas)
    if schema.get("type") == "array" and isinstance(schema.get("items"), Mapping):
        return "{a=" + lua_node(schema["items"], schemas) + "}"
    if schema.get("type") != "object":
        return "ANY"
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        return "{m=" + lua_node(extra, schemas) + "}"
    properties = schema.get("properties")
    if extra is not False or not isinstance(properties, Mapping):
        return "ANY"  # free-form (google.protobuf.Struct)
    fields = []
    for name, field in properties.items():
        if not _NAME.fullmatch(name):
            raise StackError(f"OpenAPI field name {name!r} is not an identifier")
        node = lua_node(field, schemas)
        for alias in dict.fromkeys((name, proto_name(name))):
            fields.append(f'["{alias}"]={node}')
    return "{f={" + ",".join(fields) + "}}"


def lua_path_pattern(template: str) -> str:
    """An anchored Lua pattern matching the paths of an OpenAPI path template."""
    parts = _VARIABLE.split(template)
    pattern = "".join(
        _LUA_MAGIC.sub(r"%\1", part) if index % 2 == 0 else ("[^/]+" if "**" not in part else ".+")
        for index, part in enumerate(parts)
    )
    return f"^{pattern}$"


def lua_routes(document: Json) -> list[str]:
    """One `{method, path pattern, body node}` per operation that takes a JSON body;
    routes with fewer path variables first, so a literal path wins over a template."""
    schemas = document.get("components", {}).get("schemas", {})
    routes = []
    for template, operations in document.get("paths", {}).items():
        for method in _BODY_METHODS:
            operation = operations.get(method)
            if not isinstance(operation, Mapping) or "requestBody" not in operation:
                continue
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            routes.append(
                (
                    template.count("{"),
                    f'{{"{method.upper()}","{lua_path_pattern(template)}",'
                    f"{lua_node(schema, schemas)}}}",
                )
            )
    return [route for _, route in sorted(routes, key=lambda route: route[0])]


def lua_source(document: Json, lua_path: Path = LUA_PATH) -> str:
    """The filter's whole Lua source: the tables, then gateway/body_fields.lua."""
    try:
        code = lua_path.read_text()
    except OSError as exc:
        raise StackError(f"cannot read the gateway's Lua filter {lua_path}: {exc}") from None
    table = ",\n".join(lua_routes(document))
    return f"local ANY = {{}}\nlocal ROUTES = {{\n{table},\n}}\n\n{code}"


def yaml_block(text: str, indent: int) -> str:
    """`text` as the lines of a YAML literal block scalar indented by `indent` spaces."""
    pad = " " * indent
    return "\n".join(pad + line if line else "" for line in text.splitlines())
