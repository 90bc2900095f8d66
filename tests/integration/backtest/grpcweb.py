"""A gRPC-Web client as a browser's library speaks it, for tests through the gateway.

gRPC-Web (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md) is an
HTTP/1.1 POST of length-prefixed frames: a flag byte (0 for a message, 0x80 for
the trailers), a 4-byte big-endian length, the bytes. The status arrives in the
trailer frame, or in the headers of a trailers-only answer (an error before any
message).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

import requests
from google.protobuf.message import Message

TRAILER_FLAG = 0x80


@dataclass(frozen=True)
class GrpcWebAnswer:
    http_status: int
    messages: list[bytes]
    grpc_status: int
    grpc_message: str


def _frame(payload: bytes, flag: int = 0) -> bytes:
    return bytes([flag]) + len(payload).to_bytes(4, "big") + payload


def _trailers(block: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in block.decode().split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return fields


def call(
    gateway_url: str,
    method: str,
    request: Message,
    *,
    token: str | None = None,
    timeout_s: float = 120.0,
) -> GrpcWebAnswer:
    """POST one gRPC-Web call (`method` is "/package.Service/Method") and read it to the end."""
    headers = {
        "content-type": "application/grpc-web+proto",
        "accept": "application/grpc-web+proto",
        "x-grpc-web": "1",
    }
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    response = requests.post(
        gateway_url + method,
        data=_frame(request.SerializeToString()),
        headers=headers,
        timeout=timeout_s,
    )
    body = response.content
    messages: list[bytes] = []
    trailers = {k.lower(): v for k, v in response.headers.items()}
    offset = 0
    while offset + 5 <= len(body):
        flag = body[offset]
        length = int.from_bytes(body[offset + 1 : offset + 5], "big")
        payload = body[offset + 5 : offset + 5 + length]
        offset += 5 + length
        if flag & TRAILER_FLAG:
            trailers.update(_trailers(payload))
        else:
            messages.append(payload)
    assert offset == len(body), f"a truncated gRPC-Web frame: {body[offset:][:100]!r}"
    return GrpcWebAnswer(
        http_status=response.status_code,
        messages=messages,
        grpc_status=int(trailers.get("grpc-status", "-1")),
        grpc_message=unquote(trailers.get("grpc-message", "")),
    )
