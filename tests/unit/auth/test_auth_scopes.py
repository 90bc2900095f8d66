"""Scope rules: valid names only, and a key never carries more than its creator holds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cift.runtime.errors import InvalidArgument, PermissionDenied
from services.auth.scopes import (
    ADMIN_SCOPES,
    USER_SCOPES,
    check_grantable,
    parse_scopes,
    scope_claim,
    scopes_of_user,
)


def test_users_read_and_trade_admins_also_administer() -> None:
    assert scopes_of_user(is_admin=False) == {"read", "trade"}
    assert scopes_of_user(is_admin=True) == {"read", "trade", "admin"}


def test_scope_names_are_trimmed_and_lower_cased() -> None:
    assert parse_scopes([" Read", "TRADE"]) == {"read", "trade"}


@pytest.mark.parametrize("requested", [[], [""], ["  "]])
def test_at_least_one_scope_is_required(requested: list[str]) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_scopes(requested)
    assert "required" in caught.value.message


def test_unknown_scopes_are_named_in_the_refusal() -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_scopes(["read", "root", "write"])
    assert "'root'" in caught.value.message and "'write'" in caught.value.message


def test_user_cannot_create_an_admin_key() -> None:
    with pytest.raises(PermissionDenied) as caught:
        check_grantable(frozenset({"read", "admin"}), USER_SCOPES)
    assert "admin" in caught.value.message


def test_admin_can_create_any_key_and_only_because_it_holds_each_scope() -> None:
    check_grantable(ADMIN_SCOPES, ADMIN_SCOPES)
    for scope in ADMIN_SCOPES:
        check_grantable(frozenset({scope}), ADMIN_SCOPES)
        with pytest.raises(PermissionDenied) as caught:
            check_grantable(frozenset({scope}), ADMIN_SCOPES - {scope})
        assert f"scope {scope}:" in caught.value.message


def test_a_user_can_grant_exactly_what_it_holds_and_nothing_more() -> None:
    check_grantable(USER_SCOPES, USER_SCOPES)
    with pytest.raises(PermissionDenied):
        check_grantable(USER_SCOPES | {"admin"}, USER_SCOPES)


def test_read_only_key_holder_cannot_grant_trade() -> None:
    with pytest.raises(PermissionDenied):
        check_grantable(frozenset({"trade"}), frozenset({"read"}))


def test_scope_claim_has_a_canonical_order() -> None:
    assert scope_claim({"admin", "read", "trade"}) == "read trade admin"
    assert scope_claim({"trade"}) == "trade"


@given(
    st.sets(st.sampled_from(["read", "trade", "admin"])),
    st.sets(st.sampled_from(["read", "trade", "admin"])),
)
def test_grant_allowed_exactly_when_subset(requested: set[str], held: set[str]) -> None:
    try:
        check_grantable(frozenset(requested), frozenset(held))
    except PermissionDenied:
        assert not requested <= held
    else:
        assert requested <= held
