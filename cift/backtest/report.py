"""The HTML report of a backtest: equity, drawdown and trades on the price, with Bokeh.

One self-contained file (Bokeh's JavaScript inlined), so it opens offline and can
be attached to a ticket. Three linked plots share the time axis and stretch to the
window's width (a phone shows the whole run, not its first years); the stats table
sits under them. Writes only the file it is given.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Final

import polars as pl
from bokeh.embed import file_html
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, HoverTool
from bokeh.models.widgets.markups import Div
from bokeh.plotting import figure
from bokeh.resources import INLINE

from cift.backtest.bars import split_bars
from cift.backtest.result import BacktestResult
from cift.backtest.stats import STAT_LABELS, format_stat

# Plots stretch to the window; this is only the width Bokeh lays them out at before.
WIDTH = 1100
STRETCH: Final = "stretch_width"


def _stats_table(result: BacktestResult) -> str:
    rows = []
    for key, label in STAT_LABELS:
        shown = format_stat(key, result.stats.get(key))
        rows.append(f"<tr><th>{html.escape(label)}</th><td>{html.escape(shown)}</td></tr>")
    return "<table class='stats'>" + "".join(rows) + "</table>"


def run_title(result: BacktestResult) -> str:
    """`sma_cross fast=10, slow=30, short=1 (vector engine)`: the parameters as typed on the CLI."""
    params = ", ".join(f"{name}={value}" for name, value in result.params.items())
    named = f"{result.strategy} {params}" if params else result.strategy
    return f"{named} ({result.engine} engine)"


def build_document(result: BacktestResult, bars: pl.DataFrame, symbol: str | None = None) -> str:
    """The report as an HTML string."""
    traded = split_bars(bars, symbol)[0]
    equity = ColumnDataSource(
        {
            "t": result.equity["timestamp"].to_numpy(),
            "equity": result.equity["equity"].to_numpy(),
            "drawdown": result.equity["drawdown_pct"].to_numpy(),
        }
    )
    tools = "xpan,xwheel_zoom,box_zoom,reset,save"
    equity_plot = figure(
        title="Equity",
        x_axis_type="datetime",
        width=WIDTH,
        height=260,
        tools=tools,
        sizing_mode=STRETCH,
    )
    equity_plot.line("t", "equity", source=equity, color="#2563eb", line_width=1.5)
    equity_plot.add_tools(HoverTool(tooltips=[("equity", "@equity{0,0.00}")]))
    drawdown_plot = figure(
        title="Drawdown [%]",
        x_axis_type="datetime",
        width=WIDTH,
        height=160,
        x_range=equity_plot.x_range,
        tools=tools,
        sizing_mode=STRETCH,
    )
    drawdown_plot.varea("t", y1=0, y2="drawdown", source=equity, color="#ef4444", alpha=0.5)

    price = ColumnDataSource({"t": traded.timestamp.to_numpy(), "close": traded.close})
    price_plot = figure(
        title=f"{traded.symbol}: close and trades",
        x_axis_type="datetime",
        width=WIDTH,
        height=300,
        x_range=equity_plot.x_range,
        tools=tools,
        sizing_mode=STRETCH,
    )
    price_plot.line("t", "close", source=price, color="#374151", line_width=1)
    trades = result.trades.filter(pl.col("symbol") == traded.symbol)
    for side, color, marker in ((1, "#16a34a", "triangle"), (-1, "#dc2626", "inverted_triangle")):
        legs = trades.filter(pl.col("size").sign() == side)
        entries = ColumnDataSource(
            {
                "t": legs["entry_time"].to_numpy(),
                "price": legs["entry_price"].to_numpy(),
                "size": legs["size"].to_numpy(),
                "pnl": legs["pnl"].to_numpy(),
            }
        )
        label = "long entry" if side == 1 else "short entry"
        renderer = price_plot.scatter(
            "t", "price", source=entries, marker=marker, size=9, color=color, legend_label=label
        )
        price_plot.add_tools(
            HoverTool(
                renderers=[renderer],
                tooltips=[("size", "@size"), ("entry", "@price{0.00}"), ("P&L", "@pnl{0,0.00}")],
            )
        )
    exits = ColumnDataSource(
        {"t": trades["exit_time"].to_numpy(), "price": trades["exit_price"].to_numpy()}
    )
    price_plot.scatter(
        "t", "price", source=exits, marker="x", size=8, color="#111827", legend_label="exit"
    )
    price_plot.legend.location = "top_left"
    header = Div(text=f"<h2>Backtest: {html.escape(run_title(result))}</h2>", width=WIDTH)
    stats = Div(text=_stats_table(result), width=WIDTH)
    layout = column(header, equity_plot, drawdown_plot, price_plot, stats, sizing_mode=STRETCH)
    return file_html(layout, INLINE, title=f"Backtest {result.strategy}")


def write_report(
    result: BacktestResult, bars: pl.DataFrame, path: Path, symbol: str | None = None
) -> Path:
    path.write_text(build_document(result, bars, symbol))
    return path
