"""The SQL adapters as the use cases' store ports, bundled once for the wiring.

Each module satisfies its protocol of `services/execution/app/store_ports.py`
structurally (mypy checks a module against a protocol), so the use cases name no
SQL module and a test may hand them other stores.
"""

from __future__ import annotations

from services.execution.adapters import accounts_sql, events, fills_sql, history_sql, orders_sql
from services.execution.adapters.wire import decode_ticks
from services.execution.app.store_ports import Stores

SQL_STORES = Stores(
    orders=orders_sql,
    accounts=accounts_sql,
    fills=fills_sql,
    history=history_sql,
    outbox=events,
    decode_ticks=decode_ticks,
)
