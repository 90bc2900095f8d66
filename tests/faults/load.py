"""A steady load of orders from several accounts, through the gateway, that remembers everything.

Each trader runs on its own thread and repeats: a market buy or sell that fills, a
resting limit buy, a cancel of one of its resting orders. Every order carries a
`clientOrderId`; a call that fails in a way that may be retried (503, 504, 429, a
refused or reset connection, a client timeout) is sent again with the same id until
it gets an answer, as a careful client would. Like a real client, each trader renews
its access token with its refresh token once half the token's lifetime has passed
(signing in again if the refresh token was spent by a call whose answer was lost), so
a load longer than a token's life (the soak) is not refused with 401. What each call
got back is kept: the orders a 2xx confirmed, and every error response, so the books
and the client's view can be compared afterwards.
"""

from __future__ import annotations

import base64
import dataclasses
import json as jsonlib
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

import requests

from tests.e2e.e2e_client import (
    PASSWORD,
    SYMBOL,
    Json,
    Rest,
    Trader,
    limit_price_away_from_market,
    register_and_login,
)

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
# What Python prints with a traceback: no answer may carry one, whatever its status.
STACK_TRACE = "Traceback (most recent call last)"
# A careful client gives up on one order after this long and reports it.
GIVE_UP_S = 60.0


def is_bad_answer(status: int, text: str) -> bool:
    """A 5xx a client cannot retry, or any answer that shows a stack trace."""
    return STACK_TRACE in text or (status >= 500 and status not in RETRYABLE_STATUSES)


def retry_advice_s(retry_after: str | None) -> float | None:
    """The wait a retryable answer advises, or None when it gives no whole seconds.

    HTTP also allows a date; the gateway and the services promise seconds (issue 19).
    """
    if retry_after is None or not (retry_after.isascii() and retry_after.isdigit()):
        return None
    return float(retry_after)


@dataclass
class BadAnswer:
    """A response no client should ever get: a 5xx that is not a retryable one, or no advice."""

    method: str
    path: str
    status: int
    body: str


@dataclass
class Ledger:
    """What the clients saw, shared by every trader thread."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    # order id → (account id, client order id) of every order a 2xx confirmed.
    confirmed: dict[str, tuple[str, str]] = field(default_factory=dict)
    # (account id, client order id) of orders the client gave up on after GIVE_UP_S.
    abandoned: list[tuple[str, str]] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    # Retryable failures by kind ("503", "connection refused", ...).
    retried: Counter[str] = field(default_factory=Counter)
    # Retryable HTTP answers that came without a Retry-After header.
    without_retry_advice: Counter[int] = field(default_factory=Counter)
    bad_answers: list[BadAnswer] = field(default_factory=list)
    # Monotonic time of the last confirmed order submission.
    last_success: float = 0.0
    submitted: int = 0
    # (monotonic time of the answer, seconds it took) of every definitive answer.
    timings: list[tuple[float, float]] = field(default_factory=list)
    # Access tokens renewed, by how: "refresh", or "login" when the refresh token was spent.
    renewals: Counter[str] = field(default_factory=Counter)

    def confirm(self, order: Json, account_id: str) -> None:
        with self.lock:
            self.confirmed[order["id"]] = (account_id, order["clientOrderId"])
            self.last_success = time.monotonic()


def renewal_due_at(access_token: str) -> float:
    """Epoch second at which a client should renew this JWT: half way through its life.

    A client may read its own token's claims (only the gateway checks the signature);
    half the lifetime leaves room for a renewal that must wait out a fault.
    """
    payload = access_token.split(".")[1]
    claims = jsonlib.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    issued, expires = float(claims["iat"]), float(claims["exp"])
    return issued + (expires - issued) / 2


class TraderLoop:
    """One account placing, resting and cancelling orders until told to stop."""

    def __init__(self, rest: Rest, trader: Trader, ledger: Ledger, seed: int) -> None:
        self.rest = rest
        self.trader = trader
        self.ledger = ledger
        self.random = random.Random(seed)
        self.resting: list[str] = []
        self.quote: Json | None = None
        self.renew_at = renewal_due_at(trader.access_token)

    def call(
        self, method: str, path: str, json: Json | None = None, *, signed_in: bool = True
    ) -> requests.Response | None:
        """The first definitive answer; None if the call kept failing for GIVE_UP_S."""
        deadline = time.monotonic() + GIVE_UP_S
        delay_s = 0.1
        while time.monotonic() < deadline:
            sent = time.monotonic()
            token = self.trader.access_token if signed_in else None
            try:
                response = self.rest.call(method, path, token=token, json=json, timeout_s=15.0)
            except requests.ConnectionError as error:
                kind = "connection refused" if "refused" in str(error) else "connection reset"
                self._retried(kind)
            except requests.Timeout:
                self._retried("client timeout")
            else:
                answered = time.monotonic()
                with self.ledger.lock:
                    self.ledger.statuses[response.status_code] += 1
                    self.ledger.timings.append((answered, answered - sent))
                if is_bad_answer(response.status_code, response.text):
                    self._bad(method, path, response)
                if response.status_code not in RETRYABLE_STATUSES:
                    return response
                self._retried(str(response.status_code))
                advice_s = retry_advice_s(response.headers.get("retry-after"))
                if advice_s is None:
                    with self.ledger.lock:
                        self.ledger.without_retry_advice[response.status_code] += 1
                else:
                    delay_s = max(delay_s, min(advice_s, 2.0))
            time.sleep(delay_s)
            delay_s = min(delay_s * 1.5, 1.0)
        return None

    def _retried(self, kind: str) -> None:
        with self.ledger.lock:
            self.ledger.retried[kind] += 1

    def _bad(self, method: str, path: str, response: requests.Response) -> None:
        with self.ledger.lock:
            self.ledger.bad_answers.append(
                BadAnswer(method, path, response.status_code, response.text[:300])
            )

    def submit(self, body: Json) -> Json | None:
        body = {**body, "symbol": SYMBOL, "clientOrderId": str(uuid.uuid4())}
        with self.ledger.lock:
            self.ledger.submitted += 1
        response = self.call("POST", "/v1/orders", body)
        if response is None:
            with self.ledger.lock:
                self.ledger.abandoned.append((self.trader.account_id, body["clientOrderId"]))
            return None
        if response.status_code != 200:
            return None  # refused for a business reason (buying power, position, collar)
        order: Json = response.json()["order"]
        self.ledger.confirm(order, self.trader.account_id)
        return order

    def renew_token_if_due(self) -> None:
        """Swap the access token for a fresh one once half its life has passed."""
        if time.time() < self.renew_at:
            return
        how = "refresh"
        response = self.call(
            "POST",
            "/v1/auth/refresh",
            {"refreshToken": self.trader.refresh_token},
            signed_in=False,
        )
        if response is None or response.status_code != 200:
            # The refresh token was spent by an attempt whose answer a fault lost (or
            # auth stayed away): a user would sign in again.
            how = "login"
            response = self.call(
                "POST",
                "/v1/auth/login",
                {"email": self.trader.email, "password": PASSWORD},
                signed_in=False,
            )
            if response is None or response.status_code != 200:
                return  # tried again on the next step; the current token still has time
        body = response.json()
        self.trader = dataclasses.replace(
            self.trader, access_token=body["accessToken"], refresh_token=body["refreshToken"]
        )
        self.renew_at = renewal_due_at(self.trader.access_token)
        with self.ledger.lock:
            self.ledger.renewals[how] += 1

    def step(self) -> None:
        self.renew_token_if_due()
        if self.quote is None or self.random.random() < 0.1:
            response = self.call("GET", f"/v1/quotes/{SYMBOL}")
            if response is not None and response.status_code == 200:
                self.quote = response.json()["quote"]
        roll = self.random.random()
        if roll < 0.45:
            side = "ORDER_SIDE_BUY" if self.random.random() < 0.6 else "ORDER_SIDE_SELL"
            self.submit(
                {"side": side, "type": "ORDER_TYPE_MARKET", "timeInForce": "TIME_IN_FORCE_DAY"}
                | {"qty": str(self.random.randint(1, 3))}
            )
        elif roll < 0.8 and self.quote is not None:
            order = self.submit(
                {
                    "side": "ORDER_SIDE_BUY",
                    "type": "ORDER_TYPE_LIMIT",
                    "timeInForce": "TIME_IN_FORCE_GTC",
                    "qty": "1",
                    "limitPrice": limit_price_away_from_market(self.quote, "ORDER_SIDE_BUY"),
                }
            )
            if order is not None:
                self.resting.append(order["id"])
        elif self.resting:
            order_id = self.resting.pop(self.random.randrange(len(self.resting)))
            self.call("DELETE", f"/v1/orders/{order_id}")

    def run(self, stop: threading.Event, pause_s: float) -> None:
        while not stop.is_set():
            self.step()
            stop.wait(pause_s)


class Load:
    """Several traders on threads; `stop()` waits for every call in flight to finish."""

    def __init__(self, gateway_url: str, accounts: int, pause_s: float = 0.05) -> None:
        self.rest = Rest(gateway_url)
        self.ledger = Ledger()
        self.traders = [register_and_login(Rest(gateway_url), f"load{n}") for n in range(accounts)]
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(
                target=TraderLoop(Rest(gateway_url), trader, self.ledger, seed).run,
                args=(self._stop, pause_s),
                name=f"trader-{seed}",
                daemon=True,
            )
            for seed, trader in enumerate(self.traders)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(GIVE_UP_S + 20)

    @property
    def account_ids(self) -> list[str]:
        return [trader.account_id for trader in self.traders]


def money(value: object) -> Decimal:
    return Decimal(str(value))
