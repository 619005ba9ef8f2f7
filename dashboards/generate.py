#!/usr/bin/env python3
"""Writes Swarm's Grafana dashboards (dashboards/*.json) from the panel
definitions below: the one source of truth. Units and descriptions come from
docs/metrics.md ("Every metric"); a panel on a metric the docs do not list is
an error.

  dashboards/generate.py           write the JSON files
  dashboards/generate.py --check   exit 1 naming each file that differs from what would be written (CI)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
METRICS_DOC = HERE.parent / "docs" / "metrics.md"
SCHEMA_VERSION = 39  # Grafana 10.4 / 11
SEL = '{job="$job", instance=~"$instance"}'
RATE = "$__rate_interval"


def documented_metrics() -> dict[str, str]:
    """name -> meaning, from the "Every metric" table of docs/metrics.md."""
    text = METRICS_DOC.read_text()
    table = text[text.index("## Every metric"):]
    out: dict[str, str] = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) < 7 or not cells[1].startswith("`"):
            continue
        for name in re.findall(r"`([a-z_:]+)`", cells[1]):
            out[name] = cells[5]
    return out


DOCS = documented_metrics()


def metrics_in(expr: str) -> set[str]:
    names = set(re.findall(r"\b((?:swarm|process)_[a-z_]+)", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) if n.endswith(("_bucket", "_sum", "_count")) and
            re.sub(r"_(bucket|sum|count)$", "", n) in DOCS else n for n in names}


class Board:
    def __init__(self, uid: str, title: str, description: str) -> None:
        self.uid, self.title, self.description = uid, title, description
        self.panels: list[dict] = []
        self.y = 0
        self.x = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append({"type": "row", "title": title, "collapsed": False, "panels": [],
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "id": len(self.panels) + 1})
        self.y += 1

    def _newline(self) -> None:
        if self.x:
            self.x, self.y = 0, self.y + 8

    def _place(self, panel: dict, width: int = 8) -> None:
        if self.x + width > 24:
            self._newline()
        panel["gridPos"] = {"h": 8, "w": width, "x": self.x, "y": self.y}
        panel["id"] = len(self.panels) + 1
        self.x += width
        self.panels.append(panel)

    def graph(self, title: str, unit: str, *queries: tuple[str, str], kind: str = "timeseries",
              note: str = "", links: list[dict] | None = None, width: int = 8) -> None:
        """A Prometheus panel; queries are (expr, legend). Its description is the docs' meaning of each metric."""
        used = sorted(set().union(*(metrics_in(e) for e, _ in queries)))
        missing = [m for m in used if m not in DOCS]
        if missing:
            raise SystemExit(f"generate.py: panel {title!r} of {self.title!r} uses {missing}, which docs/metrics.md does not list")
        description = " ".join(f"{m}: {DOCS[m]}" for m in used)
        panel = {
            "type": kind,
            "title": title,
            "description": (note + " " if note else "") + description,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": chr(ord("A") + i), "expr": e, "legendFormat": legend or "__auto",
                         "datasource": {"type": "prometheus", "uid": "${datasource}"},
                         **({"format": "heatmap"} if kind == "heatmap" else {})}
                        for i, (e, legend) in enumerate(queries)],
            "options": {"legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"}},
        }
        if kind == "heatmap":
            panel["options"] = {"calculate": False, "yAxis": {"unit": unit}, "cellGap": 1}
        if links:
            panel["links"] = links
        self._place(panel, width)

    def sql(self, title: str, unit: str, query: str, note: str) -> None:
        """A panel on the swarm_load_runs table through Grafana's Postgres datasource."""
        self._place({
            "type": "timeseries", "title": title, "description": note,
            "datasource": {"type": "grafana-postgresql-datasource", "uid": "${results}"},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": "A", "format": "time_series", "rawQuery": True, "rawSql": query,
                         "datasource": {"type": "grafana-postgresql-datasource", "uid": "${results}"}}],
        }, 12)

    def json(self, variables: list[dict]) -> dict:
        return {
            "uid": self.uid, "title": self.title, "description": self.description,
            "tags": ["swarm"], "schemaVersion": SCHEMA_VERSION, "version": 1, "editable": True,
            "time": {"from": "now-1h", "to": "now"}, "refresh": "30s", "timezone": "",
            "templating": {"list": variables},
            "annotations": {"list": []},
            "links": [{"title": "Swarm dashboards", "type": "dashboards", "tags": ["swarm"], "asDropdown": True}],
            "panels": self.panels,
        }


def prometheus_variables() -> list[dict]:
    return [
        {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus", "current": {}},
        {"name": "job", "type": "query", "datasource": {"type": "prometheus", "uid": "${datasource}"},
         "query": {"query": "label_values(swarm_uptime_seconds, job)", "refId": "job"},
         "definition": "label_values(swarm_uptime_seconds, job)", "refresh": 2, "current": {}},
        {"name": "instance", "type": "query", "datasource": {"type": "prometheus", "uid": "${datasource}"},
         "query": {"query": 'label_values(swarm_uptime_seconds{job="$job"}, instance)', "refId": "instance"},
         "definition": 'label_values(swarm_uptime_seconds{job="$job"}, instance)', "refresh": 2,
         "multi": True, "includeAll": True, "current": {}},
    ]


def quantiles(metric: str, by: str = "") -> list[tuple[str, str]]:
    group = f"le{', ' + by if by else ''}"
    return [(f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{SEL}[{RATE}])))",
             f"p{int(q * 100)}" + (f" {{{{{by}}}}}" if by else "")) for q in (0.5, 0.99)]


def zero_when_none(expr: str) -> str:
    """For series that exist only once something happened (a slow handler, a backlog): 0, not "no data"."""
    return f"({expr}) or on() vector(0)"


def heatmap(metric: str) -> tuple[str, str]:
    return (f"sum by (le) (rate({metric}_bucket{SEL}[{RATE}]))", "{{le}}")


FLAMEGRAPH = [{"title": "CPU flamegraph of ${instance} (10 s)", "url": "http://${instance}/debug/flamegraph?seconds=10",
               "targetBlank": True},
              {"title": "Handler time by agent type and topic (10 s)",
               "url": "http://${instance}/debug/flamegraph?seconds=10&type=logical", "targetBlank": True}]


def overview() -> Board:
    b = Board("swarm-overview", "Swarm / Overview",
              "USE per resource: utilization, saturation and errors side by side, one row each (docs/metrics.md).")
    b.row("Agents and messages")
    b.graph("Agents live", "short", (f"sum(swarm_agents_live{SEL})", "live"))
    b.graph("Spawned, exited, restarted /s", "ops", (f"sum(rate(swarm_agents_spawned_total{SEL}[{RATE}]))", "spawned"),
            (f"sum(rate(swarm_agents_exited_total{SEL}[{RATE}]))", "exited"),
            (f"sum(rate(swarm_agent_restarts_total{SEL}[{RATE}]))", "restarted"))
    b.graph("Messages handled /s", "ops", (f"sum(rate(swarm_worker_messages_total{SEL}[{RATE}]))", "messages"))
    b.graph("Dropped /s by reason", "ops", (f"sum by (reason) (rate(swarm_messages_dropped_total{SEL}[{RATE}]))", "{{reason}}"),
            note="Accepted, then lost.")
    b.graph("Refused /s by reason", "ops", (f"sum by (reason) (rate(swarm_messages_refused_total{SEL}[{RATE}]))", "{{reason}}"),
            note="Never queued; the sender was told.")
    b.graph("Crashes /s by type", "ops", (f"sum by (type) (rate(swarm_agent_crashes_total{SEL}[{RATE}]))", "{{type}}"))
    b.graph("Agents by type and state", "short", (f"sum by (type, state) (swarm_agents{SEL})", "{{type}} {{state}}"),
            width=24)
    b.row("Workers")
    b.graph("Utilization by worker", "percentunit",
            (f"rate(swarm_worker_busy_seconds_total{SEL}[{RATE}])", "worker {{worker}}"),
            (f"rate(swarm_worker_spin_seconds_total{SEL}[{RATE}])", "worker {{worker}} spinning for work"),
            links=FLAMEGRAPH, note="Busy includes spinning before parking (idle_spin): a low-latency choice, not load.")
    b.graph("Saturation: runnable agents waiting", "short",
            (f"sum(swarm_run_queue_depth{SEL}) + sum(swarm_injector_depth{SEL})", "in run queues and the injector"))
    b.graph("Errors: crashes /s", "ops", (f"sum(rate(swarm_agent_crashes_total{SEL}[{RATE}]))", "crashes"))
    b.graph("Activations, steals, parks /s", "ops",
            (f"sum(rate(swarm_worker_activations_total{SEL}[{RATE}]))", "activations"),
            (f"sum(rate(swarm_worker_steals_total{SEL}[{RATE}]))", "steals"),
            (f"sum(rate(swarm_worker_shared_parts_total{SEL}[{RATE}]))", "parts of large publishes helped"),
            (f"sum(rate(swarm_worker_parks_total{SEL}[{RATE}]))", "parks"))
    b.graph("Workers", "short", (f"sum(swarm_workers{SEL})", "workers"))
    b.row("Run queues")
    b.graph("Utilization: run queue depth by worker (capacity 256)", "short",
            (f"swarm_run_queue_depth{SEL}", "worker {{worker}}"))
    b.graph("Saturation: the shared injector", "short", (f"sum(swarm_injector_depth{SEL})", "injector"))
    b.graph("Errors: run queue overflows /s", "ops", (f"sum(rate(swarm_run_queue_overflows_total{SEL}[{RATE}]))", "overflows"))
    b.row("Mailboxes")
    b.graph("Utilization: messages queued", "short", (f"sum(swarm_mailbox_messages{SEL})", "queued"),
            (f"sum(swarm_mailbox_backlogged_agents{SEL})", "agents with a backlog"))
    b.graph("Saturation: deepest mailbox ÷ capacity", "percentunit", (f"max(swarm_mailbox_fill_ratio_max{SEL})", "fill"))
    b.graph("Saturation: queueing delay", "s", *quantiles("swarm_queueing_delay_seconds"))
    b.graph("Slowest consumers: queueing delay", "s",
            (zero_when_none(f"topk(10, swarm_slow_consumer_queueing_delay_seconds{SEL})"), "{{type}} {{agent}}"),
            note="0 while no agent has waited.")
    b.graph("Slowest consumers: mailbox depth", "short",
            (zero_when_none(f"topk(10, swarm_slow_consumer_mailbox_depth{SEL})"), "{{type}} {{agent}}"),
            note="0 while no mailbox holds a message.")
    b.graph("Slow handlers /s by type", "ops",
            (zero_when_none(f"sum by (type) (rate(swarm_slow_handlers_total{SEL}[{RATE}]))"), "{{type}}"),
            note="0 until a handler runs past slow_handler_threshold.")
    b.row("Router")
    b.graph("Utilization: published and delivered /s", "ops",
            (f"sum(rate(swarm_router_published_total{SEL}[{RATE}]))", "published"),
            (f"sum(rate(swarm_router_delivered_total{SEL}[{RATE}]))", "delivered"))
    b.graph("Saturation: fan-out time", "s", *quantiles("swarm_publish_fanout_seconds"))
    b.graph("Errors: dead letters /s by reason", "ops",
            (f"sum by (reason) (rate(swarm_router_dead_letters_total{SEL}[{RATE}]))", "{{reason}}"),
            (f"sum(rate(swarm_router_republished_total{SEL}[{RATE}]))", "republished"))
    b.graph("Topics and subscriptions", "short", (f"sum(swarm_router_topics{SEL})", "topics"),
            (f"sum(swarm_router_subscriptions{SEL})", "subscriptions"))
    b.graph("Saturation: topic table fill", "percentunit", (f"max(swarm_router_topic_table_fill_ratio{SEL})", "fill"))
    b.row("Timer wheel")
    b.graph("Utilization: timers pending", "short", (f"sum(swarm_timers_pending{SEL})", "pending"))
    b.graph("Saturation: timer lag", "s", *quantiles("swarm_timer_lag_seconds"))
    b.graph("Errors: undeliverable timers /s", "ops", (f"sum(rate(swarm_timer_undeliverable_total{SEL}[{RATE}]))", "undeliverable"))
    b.row("Gateway")
    b.graph("Utilization: clients, frames /s", "short", (f"sum(swarm_gateway_clients{SEL})", "clients"),
            (f"sum by (direction) (rate(swarm_gateway_frames_total{SEL}[{RATE}]))", "frames {{direction}} /s"))
    b.graph("Saturation: messages queued for clients", "short", (f"sum(swarm_gateway_outbound_queued{SEL})", "queued"))
    b.graph("Errors: dropped /s by reason", "ops", (f"sum by (reason) (rate(swarm_gateway_dropped_total{SEL}[{RATE}]))", "{{reason}}"))
    b.row("Cluster")
    b.graph("Nodes up", "short", (f"swarm_cluster_nodes{SEL}", "peers up seen by {{instance}}"),
            (f"min by (peer) (swarm_cluster_peer_up{SEL})", "{{peer}} up"),
            note="Each node counts the others; a peer is up when every node shown sees it up.")
    b.graph("Utilization: connected to NATS", "short", (f"swarm_cluster_connected_servers{SEL}", "{{instance}}"))
    b.graph("Saturation: in flight by peer, share of max_in_flight", "percentunit",
            (f"swarm_cluster_in_flight{SEL} / on(job, instance) group_left swarm_cluster_max_in_flight{SEL}",
             "{{instance}} to {{peer}}"),
            note="Per pair of nodes; at 100% messages for that peer are dropped as backlog_full.")
    b.graph("Utilization: messages /s by peer and direction", "ops",
            (f"sum by (peer, direction) (rate(swarm_cluster_messages_total{SEL}[{RATE}]))", "{{peer}} {{direction}}"))
    b.graph("Utilization: bytes /s by peer and direction", "Bps",
            (f"sum by (peer, direction) (rate(swarm_cluster_bytes_total{SEL}[{RATE}]))", "{{peer}} {{direction}}"))
    b.graph("Heartbeat round trip by peer", "s", (f"max by (peer) (swarm_cluster_rtt_seconds{SEL})", "{{peer}}"))
    b.graph("Errors: dropped /s by reason", "ops",
            (f"sum by (reason) (rate(swarm_cluster_dropped_total{SEL}[{RATE}]))", "{{reason}}"),
            note="Messages between nodes not delivered (backlog_full is saturation: a peer acknowledging slower than it is sent to).")
    b.graph("Errors: nodes down, reconnects /s", "ops",
            (f"sum(rate(swarm_cluster_nodes_down_total{SEL}[{RATE}]))", "nodes down"),
            (f"sum(rate(swarm_cluster_reconnects_total{SEL}[{RATE}]))", "reconnects to NATS"))
    b.graph("Interest entries", "short", (f"swarm_cluster_interest_entries{SEL}", "announced by {{instance}}"),
            (f"max by (peer) (swarm_cluster_peer_interest_entries{SEL})", "from {{peer}}"))
    b.row("Processes (swarmd)")
    b.graph("Utilization: running by process", "short", (f"sum by (process) (swarm_process_running{SEL})", "{{process}}"))
    b.graph("Saturation: start to ready", "s", *quantiles("swarm_process_start_seconds"))
    b.graph("Errors: restarts /s by process", "ops",
            (f"sum by (process) (rate(swarm_process_restarts_total{SEL}[{RATE}]))", "{{process}}"))
    b.row("State store")
    b.graph("Utilization: states written /s", "ops",
            (f"sum by (backend) (rate(swarm_state_written_total{SEL}[{RATE}]))", "{{backend}}"))
    b.graph("Saturation: states waiting", "short", (f"sum by (backend) (swarm_state_pending_keys{SEL})", "{{backend}}"))
    b.graph("Errors: write errors, reconnects /s", "ops",
            (f"sum(rate(swarm_state_write_errors_total{SEL}[{RATE}]))", "write errors"),
            (f"sum(rate(swarm_state_reconnects_total{SEL}[{RATE}]))", "reconnects"))
    b.row("Journal")
    b.graph("Utilization: events written /s", "ops",
            (f"sum by (backend) (rate(swarm_journal_written_total{SEL}[{RATE}]))", "{{backend}}"))
    b.graph("Saturation: events queued", "short", (f"sum by (backend) (swarm_journal_queued{SEL})", "{{backend}}"))
    b.graph("Errors: write errors, drops /s", "ops",
            (f"sum(rate(swarm_journal_write_errors_total{SEL}[{RATE}]))", "write errors"),
            (f"sum(rate(swarm_journal_dropped_total{SEL}[{RATE}]))", "dropped"))
    b.row("Postgres pool")
    b.graph("Utilization: connections in use ÷ max", "percentunit",
            (f'sum(swarm_pg_pool_connections{{job="$job", instance=~"$instance", state="in_use"}}) / sum(swarm_pg_pool_max{SEL})', "in use"))
    b.graph("Saturation: wait for a connection", "s", *quantiles("swarm_pg_pool_acquire_wait_seconds"))
    b.graph("Errors: timeouts, reconnects /s", "ops",
            (f"sum(rate(swarm_pg_pool_acquire_timeouts_total{SEL}[{RATE}]))", "timeouts"),
            (f"sum(rate(swarm_pg_pool_reconnects_total{SEL}[{RATE}]))", "reconnects"))
    b.row("The process")
    b.graph("CPU", "percentunit", (f"rate(process_cpu_seconds_total{SEL}[{RATE}])", "{{instance}}"), links=FLAMEGRAPH)
    b.graph("Memory", "bytes", (f"process_resident_memory_bytes{SEL}", "resident {{instance}}"),
            (f"process_virtual_memory_bytes{SEL}", "virtual {{instance}}"),
            (f"process_resident_memory_bytes{SEL} / on (job, instance) swarm_agents_live{SEL}", "per live agent {{instance}}"))
    b.graph("Threads and file descriptors", "short", (f"process_threads{SEL}", "threads {{instance}}"),
            (f"process_open_fds{SEL}", "open fds {{instance}}"), (f"process_max_fds{SEL}", "fd limit {{instance}}"))
    b.graph("Uptime", "s", (f"time() - process_start_time_seconds{SEL}", "{{instance}}"))
    b.graph("Exported series, series cut /s", "short", (f"swarm_metrics_series{SEL}", "series {{instance}}"),
            (f"rate(swarm_metrics_series_dropped_total{SEL}[{RATE}])", "cut /s {{instance}}"))
    return b


def latency() -> Board:
    b = Board("swarm-latency", "Swarm / Latency", "p50 and p99 over time, and heatmaps, from Swarm's histograms.")
    for title, metric, by in (("Queueing delay (enqueue to handler)", "swarm_queueing_delay_seconds", ""),
                              ("Handler time by agent type", "swarm_handler_duration_seconds", "type"),
                              ("Spawn", "swarm_spawn_duration_seconds", ""),
                              ("Ask round trip", "swarm_ask_duration_seconds", ""),
                              ("Publish fan-out", "swarm_publish_fanout_seconds", ""),
                              ("State store flush (one pipelined round trip)", "swarm_state_flush_seconds", ""),
                              ("Journal batch (one COPY)", "swarm_journal_flush_seconds", "")):
        b.row(title)
        b.graph(f"{title}: p50, p99", "s", *quantiles(metric, by), width=12, links=FLAMEGRAPH)
        b.graph(f"{title}: heatmap", "s", heatmap(metric), kind="heatmap", width=12)
    return b


def storage() -> Board:
    b = Board("swarm-storage", "Swarm / Storage", "Redis state pipelines, the Postgres journal and its pool.")
    b.row("State store (Redis pipelines)")
    b.graph("States handed over, written, coalesced /s", "ops",
            (f"sum(rate(swarm_state_puts_total{SEL}[{RATE}]))", "handed to the store"),
            (f"sum(rate(swarm_state_written_total{SEL}[{RATE}]))", "written"),
            (f"sum(rate(swarm_state_coalesced_total{SEL}[{RATE}]))", "coalesced"))
    b.graph("Pending keys", "short", (f"sum(swarm_state_pending_keys{SEL})", "pending"))
    b.graph("Pipelined batches /s", "ops", (f"sum(rate(swarm_state_flush_seconds_count{SEL}[{RATE}]))", "batches"))
    b.graph("Batch round trip", "s", *quantiles("swarm_state_flush_seconds"))
    b.graph("Connected", "short", (f"min(swarm_state_connected{SEL})", "connected"))
    b.graph("Reconnects, server restarts and write errors /s", "ops",
            (f"sum(rate(swarm_state_reconnects_total{SEL}[{RATE}]))", "reconnects"),
            (f"sum(rate(swarm_state_server_restarts_total{SEL}[{RATE}]))", "server restarts (states written again)"),
            (f"sum(rate(swarm_state_unreadable_total{SEL}[{RATE}]))", "unreadable values kept aside"),
            (f"sum(rate(swarm_state_write_errors_total{SEL}[{RATE}]))", "write errors"))
    b.row("Journal (Postgres COPY batches)")
    b.graph("Events written /s", "ops", (f"sum(rate(swarm_journal_written_total{SEL}[{RATE}]))", "written"))
    b.graph("Queue", "short", (f"sum(swarm_journal_queued{SEL})", "queued"))
    b.graph("COPY batch time", "s", *quantiles("swarm_journal_flush_seconds"))
    b.graph("Dropped and failed /s", "ops", (f"sum(rate(swarm_journal_dropped_total{SEL}[{RATE}]))", "dropped"),
            (f"sum(rate(swarm_journal_write_errors_total{SEL}[{RATE}]))", "write errors"))
    b.row("Postgres pool")
    b.graph("Connections by state", "short", (f"sum by (state) (swarm_pg_pool_connections{SEL})", "{{state}}"),
            (f"sum(swarm_pg_pool_max{SEL})", "max"))
    b.graph("Wait for a connection", "s", *quantiles("swarm_pg_pool_acquire_wait_seconds"))
    b.graph("Timeouts and reconnects /s", "ops",
            (f"sum(rate(swarm_pg_pool_acquire_timeouts_total{SEL}[{RATE}]))", "timeouts"),
            (f"sum(rate(swarm_pg_pool_reconnects_total{SEL}[{RATE}]))", "reconnects"))
    return b


def gateway_processes() -> Board:
    b = Board("swarm-gateway-processes", "Swarm / Gateway and processes",
              "SWP clients of the gateway, and the agent processes swarmd supervises.")
    b.row("Gateway")
    b.graph("Clients", "short", (f"sum(swarm_gateway_clients{SEL})", "clients"))
    b.graph("Sessions opened and ended /s", "ops", (f"sum(rate(swarm_gateway_sessions_total{SEL}[{RATE}]))", "opened"),
            (f"sum by (reason) (rate(swarm_gateway_sessions_ended_total{SEL}[{RATE}]))", "ended: {{reason}}"))
    b.graph("Bytes /s by direction", "Bps", (f"sum by (direction) (rate(swarm_gateway_bytes_total{SEL}[{RATE}]))", "{{direction}}"))
    b.graph("Frames /s by direction", "ops", (f"sum by (direction) (rate(swarm_gateway_frames_total{SEL}[{RATE}]))", "{{direction}}"))
    b.graph("Queued for clients", "short", (f"sum(swarm_gateway_outbound_queued{SEL})", "queued"))
    b.graph("Dropped /s by reason (slow clients: queue_full)", "ops",
            (f"sum by (reason) (rate(swarm_gateway_dropped_total{SEL}[{RATE}]))", "{{reason}}"))
    b.graph("Refused handshakes and errors /s", "ops",
            (f"sum(rate(swarm_gateway_handshake_failures_total{SEL}[{RATE}]))", "handshakes refused"),
            (f"sum(rate(swarm_gateway_curve_refused_total{SEL}[{RATE}]))", "CURVE refused"),
            (f"sum(rate(swarm_gateway_errors_sent_total{SEL}[{RATE}]))", "ERRORs sent"))
    b.row("Processes (swarmd)")
    b.graph("Running by process", "short", (f"sum by (process) (swarm_process_running{SEL})", "{{process}}"))
    b.graph("Restarts /s by process", "ops", (f"sum by (process) (rate(swarm_process_restarts_total{SEL}[{RATE}]))", "{{process}}"))
    b.graph("Exits /s by reason", "ops", (f"sum by (reason) (rate(swarm_process_exits_total{SEL}[{RATE}]))", "{{reason}}"))
    b.graph("Output lines /s by process", "ops",
            (f"sum by (process, stream) (rate(swarm_process_output_lines_total{SEL}[{RATE}]))", "{{process}} {{stream}}"))
    b.graph("Output bytes /s, lines cut /s", "Bps",
            (f"sum(rate(swarm_process_output_bytes_total{SEL}[{RATE}]))", "bytes"),
            (f"sum(rate(swarm_process_output_truncated_total{SEL}[{RATE}]))", "lines cut"))
    b.graph("Start to ready", "s", *quantiles("swarm_process_start_seconds"))
    return b


def load_runs() -> tuple[Board, list[dict]]:
    b = Board("swarm-load-runs", "Swarm / Load test runs",
              "swarm-load runs stored with --results-dsn (table swarm_load_runs), through Grafana's Postgres datasource: "
              "a regression shows as a step in a line.")
    b.row("Per scenario, over time")
    where = "WHERE $__timeFilter(started_at) AND scenario IN ($scenario) ORDER BY 1"
    b.sql("Throughput", "ops", f"SELECT started_at AS time, scenario AS metric, throughput AS value FROM swarm_load_runs {where}",
          "Messages/s of each run (column throughput).")
    b.sql("Latency p99", "µs", f"SELECT started_at AS time, scenario AS metric, p99 AS value FROM swarm_load_runs {where}",
          "p99 of each run in microseconds (column p99), coordinated-omission corrected (docs/load.md).")
    b.sql("Latency p50", "µs", f"SELECT started_at AS time, scenario AS metric, p50 AS value FROM swarm_load_runs {where}",
          "p50 of each run in microseconds (column p50).")
    variables = [
        {"name": "results", "label": "Postgres (swarm-load results)", "type": "datasource",
         "query": "grafana-postgresql-datasource", "current": {}},
        {"name": "scenario", "type": "query", "datasource": {"type": "grafana-postgresql-datasource", "uid": "${results}"},
         "query": "SELECT DISTINCT scenario FROM swarm_load_runs ORDER BY 1", "definition": "SELECT DISTINCT scenario FROM swarm_load_runs ORDER BY 1",
         "refresh": 2, "multi": True, "includeAll": True, "current": {}},
    ]
    return b, variables


def prometheus_queries(board: dict) -> list[str]:
    """Every PromQL expression of a dashboard: its panels' and its variables'."""
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", []) if "expr" in t]
    return exprs + [v["query"]["query"] for v in board["templating"]["list"] if isinstance(v.get("query"), dict)]


def boards() -> dict[str, dict]:
    out = {f"{b.uid}.json": b.json(prometheus_variables()) for b in (overview(), latency(), storage(), gateway_processes())}
    runs, variables = load_runs()
    out[f"{runs.uid}.json"] = runs.json(variables)
    shown = set().union(*(metrics_in(e) for board in out.values() for e in prometheus_queries(board)))
    if unshown := sorted(set(DOCS) - shown):
        raise SystemExit(f"generate.py: docs/metrics.md lists {unshown}, which no dashboard shows")
    return out


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_argument("--check", action="store_true", help="exit 1 if a committed file is stale")
    args = options.parse_args()
    stale = []
    for name, board in boards().items():
        text = json.dumps(board, indent=2, ensure_ascii=False) + "\n"
        path = HERE / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"generate.py: stale: {', '.join(stale)}: run dashboards/generate.py and commit the result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
