"""`cift backtest`: a backtest of a file of bars from the terminal.

    cift backtest --strategy sma_cross --param fast=10 --param slow=30 \\
        --data FILE.csv|.parquet [--symbol S] [--cash 10000] [--commission 0.002] \\
        [--engine vector|event] [--json] [--report out.html]

Prints the stats as a table (or, with --json, one JSON object whose keys include
final_equity and trades); --report also writes an HTML report. Bad input ends with
one line on stderr and exit code 2; nothing is written then.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from cift.backtest.api import ENGINES, run_backtest
from cift.backtest.bars import read_bars
from cift.backtest.signals import BUILTINS
from cift.backtest.stats import STAT_LABELS, Stats, format_stat
from cift.runtime.errors import InvalidArgument


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `backtest` on the `cift` command line."""
    sub = commands.add_parser(
        "backtest", help="backtest a strategy on a CSV or Parquet file of bars"
    )
    sub.add_argument(
        "--strategy", required=True, choices=sorted(BUILTINS), help="built-in strategy"
    )
    sub.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a strategy parameter (repeatable), e.g. --param fast=10",
    )
    sub.add_argument("--data", required=True, help="bars: .csv or .parquet with timestamp, OHLCV")
    sub.add_argument("--symbol", help="the symbol to trade when the file has several")
    sub.add_argument("--cash", type=float, default=10_000.0, help="starting cash (10000)")
    sub.add_argument(
        "--commission", type=float, default=0.0, help="fraction of notional per fill (0.002)"
    )
    sub.add_argument(
        "--engine", choices=ENGINES, default="vector", help="vector (default) or event"
    )
    sub.add_argument(
        "--margin-multiplier",
        type=float,
        default=1.0,
        help="event engine: buying power as a multiple of equity, 1 (cash, default) to 4",
    )
    sub.add_argument("--json", action="store_true", help="print the stats as JSON")
    sub.add_argument("--report", metavar="OUT.html", help="also write an HTML report here")
    sub.set_defaults(run=run_command)


def parse_params(pairs: Sequence[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise InvalidArgument(f"--param takes NAME=VALUE, not {pair!r}.")
        params[name.strip()] = value.strip()
    return params


def format_stats(stats: Stats) -> str:
    labels = dict(STAT_LABELS)
    width = max(len(label) for label in labels.values())
    lines = []
    for key, label in STAT_LABELS:
        lines.append(f"{label.ljust(width)}  {format_stat(key, stats.get(key))}")
    return "\n".join(lines)


def run_command(args: argparse.Namespace) -> int:
    try:
        result = run_backtest(
            read_bars(args.data),
            args.strategy,
            parse_params(args.param),
            cash=args.cash,
            commission=args.commission,
            engine=args.engine,
            symbol=args.symbol,
            margin_multiplier=args.margin_multiplier,
        )
    except InvalidArgument as error:
        print(f"cift backtest: {error.message}", file=sys.stderr)
        return 2
    if args.report:
        from cift.backtest.report import write_report

        write_report(result, read_bars(args.data), Path(args.report), symbol=args.symbol)
    if args.json:
        print(json.dumps({**result.stats, "strategy": result.strategy, "params": result.params,
                          "engine": result.engine}))  # fmt: skip
    else:
        print(f"{result.strategy} {result.params} on {args.data} ({result.engine} engine)")
        print(format_stats(result.stats))
        if args.report:
            print(f"report: {args.report}")
    return 0
