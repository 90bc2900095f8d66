"""Errors domain code raises; the server edge maps them to gRPC status codes.

This module must never import grpc: domain modules raise these and stay I/O-free.
Each message is a sentence the caller can act on.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error that becomes a gRPC status rather than INTERNAL."""

    code_name = "UNKNOWN"

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        # A machine-readable cause (e.g. risk's INSUFFICIENT_BUYING_POWER), sent as
        # trailing metadata `cift-reason` so clients can branch on it.
        self.reason = reason


class InvalidArgument(DomainError):
    code_name = "INVALID_ARGUMENT"


class NotFound(DomainError):
    code_name = "NOT_FOUND"


class AlreadyExists(DomainError):
    code_name = "ALREADY_EXISTS"


class FailedPrecondition(DomainError):
    code_name = "FAILED_PRECONDITION"


class PermissionDenied(DomainError):
    code_name = "PERMISSION_DENIED"


class Unauthenticated(DomainError):
    code_name = "UNAUTHENTICATED"


class Unavailable(DomainError):
    code_name = "UNAVAILABLE"


class ResourceExhausted(DomainError):
    code_name = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, *, retry_after_s: float, reason: str = "") -> None:
        super().__init__(message, reason=reason)
        self.retry_after_s = retry_after_s
