"""Email addresses as account identifiers: one canonical spelling per mailbox.

Normalization decides uniqueness (two spellings of one address must never make two
accounts), so it is deliberately conservative: trim, lower-case, ASCII only. This
module does no I/O and never talks to a mail server.
"""

from __future__ import annotations

import re

from cift.runtime.errors import InvalidArgument

MAX_EMAIL_CHARS = 254  # RFC 5321's limit on a forward path
MAX_LOCAL_PART_CHARS = 64

_LOCAL_PART = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_DOMAIN_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_TOP_LEVEL = re.compile(r"^([a-z]{2,63}|xn--[a-z0-9-]{1,59})$")

_EXAMPLE = "such as ada@example.com"


def normalize_email(raw: str) -> str:
    """The canonical form of `raw`, or INVALID_ARGUMENT saying what is wrong with it."""
    email = raw.strip().lower()
    if not email:
        raise InvalidArgument(f"email is required: give an address {_EXAMPLE}.")
    if len(email) > MAX_EMAIL_CHARS:
        raise InvalidArgument(f"email is too long: at most {MAX_EMAIL_CHARS} characters.")
    if not email.isascii():
        raise InvalidArgument(
            "email must use ASCII characters only (write an international domain in its xn-- form)."
        )
    if email.count("@") != 1:
        raise InvalidArgument(f"email must contain exactly one '@', {_EXAMPLE}.")
    local, domain = email.split("@")
    if not local or len(local) > MAX_LOCAL_PART_CHARS or not _LOCAL_PART.match(local):
        raise InvalidArgument(
            f"email has an invalid part before the '@' (1-{MAX_LOCAL_PART_CHARS} letters, digits "
            "or .!#$%&'*+/=?^_`{|}~- without leading, trailing or doubled dots)."
        )
    labels = domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        raise InvalidArgument(
            f"email has an invalid domain {domain!r}: give an address {_EXAMPLE}."
        )
    if not _TOP_LEVEL.match(labels[-1]):
        raise InvalidArgument(
            f"email's domain must end in a real top-level domain, not {labels[-1]!r}."
        )
    return email
