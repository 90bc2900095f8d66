"""Write the Grafana dashboards under deploy/k8s/base/monitoring/dashboards/ from code.

    python tools/gen_dashboards.py            regenerate the dashboard JSON
    python tools/gen_dashboards.py --check    exit 1 when the checked-in JSON differs

The dashboards are built with Grafana's own typed builders (grafana-foundation-sdk), so
what is written follows Grafana's dashboard schema; kustomize ships each file in a
ConfigMap labelled for Grafana's dashboard sidecar. Every query reads only metrics the
services export (tests/integration/test_monitoring_metrics.py checks it against /metrics).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh

OUT_DIR = Path(__file__).resolve().parent.parent / "deploy/k8s/base/monitoring/dashboards"
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"
# Streams' latency is their lifetime, not a response time: kept out of latency panels.
UNARY = 'method!~"Stream.*|CheckOrders|RunBacktest|ExportBars"'


def query(expr: str, legend: str, ref_id: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref_id).range()


def series(
    title: str, description: str, unit: str, queries: Sequence[tuple[str, str]], width: int = 12
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .height(8)
        .span(width)
    )
    for index, (expr, legend) in enumerate(queries):
        panel = panel.with_target(query(expr, legend, chr(ord("A") + index)))
    return panel


def single(title: str, description: str, expr: str, unit: str, *, width: int = 6) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .height(4)
        .span(width)
        .with_target(query(expr, title))
    )


def datasource_variable() -> dashboard.DatasourceVariable:
    return dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")


def services_dashboard() -> dashboard.Dashboard:
    where = 'service=~"$service"'
    return (
        dashboard.Dashboard("CIFT Markets — services")
        .uid("cift-services")
        .tags(["cift"])
        .description(
            "The golden signals of every CIFT service: traffic, errors, latency, saturation."
        )
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .with_variable(datasource_variable())
        .with_variable(
            dashboard.QueryVariable("service")
            .label("Service")
            .datasource(PROMETHEUS)
            .query("label_values(cift_rpc_requests_total, service)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True)
            .include_all(True)
        )
        .with_row(dashboard.Row("Traffic and errors"))
        .with_panel(
            series(
                "Requests per second",
                "RPCs finished per second, by service and method.",
                "reqps",
                [
                    (
                        f"sum by (service, method) (rate(cift_rpc_requests_total{{{where}}}[{RATE}]))",
                        "{{service}} {{method}}",
                    )
                ],
            )
        )
        .with_panel(
            series(
                "Errors by status code",
                "RPCs that ended with a non-OK status per second: client mistakes "
                "(INVALID_ARGUMENT, FAILED_PRECONDITION) and server faults (UNAVAILABLE, INTERNAL).",
                "reqps",
                [
                    (
                        f"sum by (service, code) (rate(cift_rpc_errors_total{{{where}}}[{RATE}]))",
                        "{{service}} {{code}}",
                    )
                ],
            )
        )
        .with_row(dashboard.Row("Latency"))
        .with_panel(
            series(
                "Unary latency p50 / p99",
                "Time from receiving an RPC to its status, streams excluded.",
                "s",
                [
                    (
                        "histogram_quantile(0.5, sum by (service, le) (rate("
                        f"cift_rpc_latency_seconds_bucket{{{where}, {UNARY}}}[{RATE}])))",
                        "{{service}} p50",
                    ),
                    (
                        "histogram_quantile(0.99, sum by (service, le) (rate("
                        f"cift_rpc_latency_seconds_bucket{{{where}, {UNARY}}}[{RATE}])))",
                        "{{service}} p99",
                    ),
                ],
                width=24,
            )
        )
        .with_row(dashboard.Row("Saturation"))
        .with_panel(
            series(
                "CPU per pod",
                "Cores used by each service process (Python gRPC runs one event loop per process).",
                "percentunit",
                [(f'rate(process_cpu_seconds_total{{job=~"cift-.*"}}[{RATE}])', "{{pod}}")],
            )
        )
        .with_panel(
            series(
                "Resident memory per pod",
                "Memory each service process holds; steady growth under steady load is a leak.",
                "bytes",
                [('process_resident_memory_bytes{job=~"cift-.*"}', "{{pod}}")],
            )
        )
        .with_panel(
            series(
                "Kafka events per second",
                "Events each service produced (out) and consumed (in), by topic.",
                "ops",
                [
                    (
                        f"sum by (service, topic, direction) (rate(cift_kafka_events_total{{{where}}}[{RATE}]))",
                        "{{service}} {{direction}} {{topic}}",
                    )
                ],
                width=24,
            )
        )
    )


def trading_dashboard() -> dashboard.Dashboard:
    submit = 'service="execution", method="SubmitOrder"'
    return (
        dashboard.Dashboard("CIFT Markets — trading")
        .uid("cift-trading")
        .tags(["cift"])
        .description(
            "Order flow, risk verdicts, fills, and how far the fill engine and consumers lag."
        )
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .with_variable(datasource_variable())
        .with_row(dashboard.Row("Now"))
        .with_panel(
            single(
                "Kill switch",
                "1 while the global trading state is reducing or halted.",
                "max(cift_risk_kill_switch_engaged)",
                "none",
                width=3,
            )
        )
        .with_panel(
            single(
                "Orders out of the book",
                "Orders whose fill, close or write did not commit (PostgreSQL unreachable), "
                "waiting for execution's repair to book them again from their rows. "
                "Ticks do not fill them until then; above 0 for minutes, check PostgreSQL.",
                "max(cift_execution_orders_out_of_book)",
                "none",
                width=3,
            )
        )
        .with_panel(
            single(
                "Orders accepted / s",
                "SubmitOrder calls that returned OK.",
                f'sum(rate(cift_rpc_requests_total{{{submit}, code="OK"}}[{RATE}]))',
                "reqps",
            )
        )
        .with_panel(
            single(
                "Fills / s",
                "Fills published on execution.fills.v1.",
                f'sum(rate(cift_kafka_events_total{{service="execution", topic="execution.fills.v1", direction="out"}}[{RATE}]))',
                "ops",
            )
        )
        .with_panel(
            single(
                "Ticks ingested / s",
                "Quotes and trades market data stored and aggregated into bars.",
                f"sum(rate(cift_marketdata_ingest_ticks_total[{RATE}]))",
                "ops",
            )
        )
        .with_row(dashboard.Row("Order flow"))
        .with_panel(
            series(
                "Orders submitted, by result",
                "SubmitOrder per second by status: OK is accepted, FAILED_PRECONDITION a risk or "
                "buying-power rejection, INVALID_ARGUMENT a malformed order.",
                "reqps",
                [
                    (
                        f"sum by (code) (rate(cift_rpc_requests_total{{{submit}}}[{RATE}]))",
                        "{{code}}",
                    )
                ],
            )
        )
        .with_panel(
            series(
                "Order events and fills",
                "Order events (new, accepted, canceled, filled, ...) and fills execution published.",
                "ops",
                [
                    (
                        f'sum by (topic) (rate(cift_kafka_events_total{{service="execution", direction="out", topic=~"execution.orders.v1|execution.fills.v1"}}[{RATE}]))',
                        "{{topic}}",
                    )
                ],
            )
        )
        .with_panel(
            series(
                "Risk verdicts",
                "Pre-trade checks approved and rejected per second.",
                "ops",
                [(f"sum by (verdict) (rate(cift_risk_checks_total[{RATE}]))", "{{verdict}}")],
            )
        )
        .with_panel(
            series(
                "Rejection reasons",
                "Why risk rejected orders (a check with two reasons counts under both).",
                "ops",
                [(f"sum by (reason) (rate(cift_risk_rejections_total[{RATE}]))", "{{reason}}")],
            )
        )
        .with_panel(
            series(
                "Where SubmitOrder's time goes",
                "Mean time per order in each stage: the entry read (context), the pre-trade check "
                "at risk, the reserving write with its commit, and the booking with a fill's "
                "commit. A stage that grows under load is queueing for its batch slot.",
                "s",
                [
                    (
                        f"sum by (stage) (rate(cift_execution_submit_stage_seconds_sum[{RATE}]))"
                        " / sum by (stage) "
                        f"(rate(cift_execution_submit_stage_seconds_count[{RATE}]))",
                        "{{stage}}",
                    )
                ],
                width=24,
            )
        )
        .with_row(dashboard.Row("Lag"))
        .with_panel(
            series(
                "Fill engine lag behind the market",
                "Time from a tick's publication to execution's fill engine taking it (p50, p99).",
                "s",
                [
                    (
                        "histogram_quantile(0.5, sum by (le) (rate(cift_kafka_consume_delay_seconds_bucket"
                        f'{{service="execution", topic="marketdata.ticks.v1"}}[{RATE}])))',
                        "p50",
                    ),
                    (
                        "histogram_quantile(0.99, sum by (le) (rate(cift_kafka_consume_delay_seconds_bucket"
                        f'{{service="execution", topic="marketdata.ticks.v1"}}[{RATE}])))',
                        "p99",
                    ),
                ],
            )
        )
        .with_panel(
            series(
                "Kafka consumer lag",
                "Records each consumer group has yet to read, by topic.",
                "short",
                [("sum by (group, topic) (cift_kafka_consumer_lag)", "{{group}} {{topic}}")],
            )
        )
        .with_panel(
            series(
                "Market data intake",
                "Ticks the feed published and ingest stored per second.",
                "ops",
                [
                    (f"sum(rate(cift_marketdata_feed_ticks_total[{RATE}]))", "feed"),
                    (f"sum(rate(cift_marketdata_ingest_ticks_total[{RATE}]))", "ingest"),
                ],
                width=24,
            )
        )
    )


DASHBOARDS = {"cift-services.json": services_dashboard, "cift-trading.json": trading_dashboard}


def render(build: dashboard.Dashboard) -> str:
    model = build.build()
    # Grafana links, shares and alerts on panels by id: number them in reading order.
    for number, panel in enumerate(model.panels or [], start=1):
        panel.id_val = number
    return json.dumps(model, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the JSON is out of date")
    args = parser.parse_args(argv)
    stale = []
    for name, builder in DASHBOARDS.items():
        path, text = OUT_DIR / name, render(builder())
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(OUT_DIR.parents[4])}")
    if stale:
        print("Dashboards are out of date (run `python tools/gen_dashboards.py`):", file=sys.stderr)
        for path in stale:
            print(f"  {path}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
