"""The pure trading core: orders and their state machine, the fill engine and its book,
the ledger and intraday figures.

Shared by every process that trades on paper — the execution service live, and the
backtest engine on history — so a limit, stop or trailing order behaves the same in
both. Nothing here does I/O: no asyncpg, grpc, Kafka, Redis or protobuf imports
(tests/unit/test_import_rules.py enforces it).
"""
