"""`envoy.service.auth.v3.Authorization/Check`: the gateway's question "who is this?".

Allowed requests go upstream with the credential removed and the identity set by
us (`x-cift-identity` JWT plus informational `x-cift-user-id`, `x-cift-account-id`,
`x-cift-scopes`), overwriting anything the client sent under those names. Denied
requests get HTTP 401 with `grpc-status: 16` and `grpc-message`, so REST,
gRPC-Web and gRPC clients all read UNAUTHENTICATED and the reason. A few paths
(login, register, refresh, JWKS) need no credential; on those, the
identity headers are only stripped.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from google.rpc import code_pb2, status_pb2  # type: ignore[import-untyped]

from cift.extauthz.v3 import external_auth_pb2, external_auth_pb2_grpc
from cift.runtime.errors import Unauthenticated, Unavailable
from cift.runtime.identity import (
    ACCOUNT_ID_HEADER,
    API_KEY_ID_HEADER,
    GATEWAY_HEADERS,
    IDENTITY_TOKEN_HEADER,
    SCOPES_HEADER,
    USER_ID_HEADER,
    Identity,
)
from services.auth.credentials import Credentials
from services.auth.scopes import scope_claim

log = logging.getLogger(__name__)

CREDENTIAL_HEADERS = ("authorization", "x-api-key")
ANSWER_CACHE_SIZE = 10_000
_OVERWRITE = external_auth_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD


def request_headers(http: Any) -> dict[str, str]:
    """Headers of the checked request, from `headers` or (raw-header mode) `header_map`."""
    headers = {key.lower(): value for key, value in http.headers.items()}
    for entry in http.header_map.headers:
        value = entry.value or entry.raw_value.decode("utf-8", "replace")
        headers.setdefault(entry.key.lower(), value)
    return headers


def _header(key: str, value: str) -> external_auth_pb2.HeaderValueOption:
    return external_auth_pb2.HeaderValueOption(
        header=external_auth_pb2.HeaderValue(key=key, value=value), append_action=_OVERWRITE
    )


def allow(identity: Identity | None) -> external_auth_pb2.CheckResponse:
    if identity is None:
        ok = external_auth_pb2.OkHttpResponse(headers_to_remove=list(GATEWAY_HEADERS))
    else:
        headers = [
            _header(IDENTITY_TOKEN_HEADER, identity.token),
            _header(USER_ID_HEADER, identity.user_id),
            _header(ACCOUNT_ID_HEADER, identity.account_id),
            _header(SCOPES_HEADER, scope_claim(identity.scopes)),
        ]
        if identity.api_key_id:
            headers.append(_header(API_KEY_ID_HEADER, identity.api_key_id))
        ok = external_auth_pb2.OkHttpResponse(
            headers=headers, headers_to_remove=list(CREDENTIAL_HEADERS)
        )
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=code_pb2.OK), ok_response=ok
    )


def deny(
    grpc_code: int, http_code: external_auth_pb2.StatusCode.ValueType, message: str
) -> external_auth_pb2.CheckResponse:
    headers = [
        _header("grpc-status", str(grpc_code)),
        # grpc-message is percent-encoded by the gRPC spec.
        _header("grpc-message", urllib.parse.quote(message, safe=" ")),
        _header("content-type", "text/plain; charset=utf-8"),
    ]
    if grpc_code == code_pb2.UNAUTHENTICATED:
        headers.append(_header("www-authenticate", 'Bearer realm="cift"'))
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=grpc_code, message=message),
        denied_response=external_auth_pb2.DeniedHttpResponse(
            status=external_auth_pb2.HttpStatus(code=http_code), headers=headers, body=message
        ),
    )


class GatewayCheck(external_auth_pb2_grpc.AuthorizationServicer):
    """Registered with `external_auth_pb2_grpc.add_AuthorizationServicer_to_server`."""

    def __init__(self, credentials: Credentials, public_paths: Iterable[str]) -> None:
        self._credentials = credentials
        self._public_paths = frozenset(public_paths)
        # The answer for one identity (its token included) never changes, and
        # building it is a third of this servicer's work; gRPC never mutates it.
        self._answers: OrderedDict[Identity, external_auth_pb2.CheckResponse] = OrderedDict()

    def _allow(self, identity: Identity) -> external_auth_pb2.CheckResponse:
        answer = self._answers.get(identity)
        if answer is None:
            answer = self._answers[identity] = allow(identity)
            if len(self._answers) > ANSWER_CACHE_SIZE:
                self._answers.popitem(last=False)
        return answer

    def is_public(self, method: str, path: str) -> bool:
        # Whatever the method: a browser's CORS preflight never gets here (the
        # gateway's CORS filter answers every one), so an OPTIONS that does is an
        # ordinary request and needs a credential like any other.
        return path.split("?", 1)[0] in self._public_paths

    async def Check(
        self, request: external_auth_pb2.CheckRequest, context: Any
    ) -> external_auth_pb2.CheckResponse:
        http = request.attributes.request.http
        if self.is_public(http.method, http.path):
            return allow(None)
        try:
            identity = await self._credentials.authenticate(request_headers(http))
        except Unauthenticated as exc:
            return deny(code_pb2.UNAUTHENTICATED, external_auth_pb2.Unauthorized, exc.message)
        except Unavailable as exc:
            return deny(code_pb2.UNAVAILABLE, external_auth_pb2.ServiceUnavailable, exc.message)
        if identity is None:
            return deny(
                code_pb2.UNAUTHENTICATED,
                external_auth_pb2.Unauthorized,
                "This call needs a credential: send 'authorization: Bearer <token>' or 'x-api-key'.",
            )
        return self._allow(identity)
