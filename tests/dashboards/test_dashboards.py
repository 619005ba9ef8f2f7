"""Every dashboard query against a real Prometheus scraping a real swarmd under a
smoke load, with its state in a real Redis and its journal in a real Postgres,
joined through a real NATS server (JetStream) to a second swarmd whose tool
processes take part of the first one's requests (all on 127.0.0.1, temporary
folders). Fails on a query error or an empty result, naming the dashboard, the
panel and the query; checks that every metric an alert rule uses exists and
that Prometheus evaluates every rule; runs the load-test dashboard's SQL on a
real swarm_load_runs table."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from servers import PG_BIN, as_postgres, free_port, wait_until  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("SWARM_BUILD", ROOT / "build"))
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
RATE_INTERVAL = "10s"  # Grafana's $__rate_interval at a 1 s scrape interval, with room




class Stack:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: list[subprocess.Popen] = []
        self.pg_root = folder / "pg"  # the postgres user's (initdb refuses root)
        self.pg_data = self.pg_root / "data"
        self.pg_running = False

    def spawn(self, args: list[str], log: str, **kw: Any) -> subprocess.Popen:
        out = open(self.folder / log, "wb")
        p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, **kw)
        self.procs.append(p)
        return p

    def start(self) -> None:
        self.redis_port = free_port()
        self.spawn(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no"], "redis.log")
        self.folder.chmod(0o711)  # the postgres user passes through to its own folder
        self.pg_root.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(self.pg_root, "postgres", "postgres")
        subprocess.run(as_postgres([str(PG_BIN / "initdb"), "-D", str(self.pg_data), "-U", "postgres", "-A", "trust",
                                    "-E", "UTF8", "--locale=C", "--no-sync"]), check=True, capture_output=True)
        self.pg_port = free_port()
        opts = f"-p {self.pg_port} -k {self.pg_root} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(as_postgres([str(PG_BIN / "pg_ctl"), "start", "-D", str(self.pg_data), "-l",
                                    str(self.pg_root / "pg.log"), "-w", "-t", "60", "-o", opts]), check=True,
                       capture_output=True)
        self.pg_running = True
        self.dsn = f"host=127.0.0.1 port={self.pg_port} user=postgres dbname=postgres"

        # One NATS server with JetStream (the cluster's names and nodes buckets need it).
        nats_port, nats_monitor_port = free_port(), free_port()
        nats = self.spawn(["nats-server", "-a", "127.0.0.1", "-p", str(nats_port), "-m", str(nats_monitor_port),
                           "-js", "-sd", str(self.folder / "nats")], "nats.log")

        def jetstream_ready() -> bool:
            assert nats.poll() is None, (self.folder / "nats.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{nats_monitor_port}/jsz", timeout=5) as r:
                    return "config" in json.loads(r.read())
            except OSError:
                return False
        wait_until(jetstream_ready, 30, "nats-server with JetStream")
        cluster = f'servers: ["nats://127.0.0.1:{nats_port}"]'

        self.admin_port, gateway_port = free_port(), free_port()
        config = self.folder / "swarm.yaml"
        config.write_text(f"""
admin: {{listen: "127.0.0.1:{self.admin_port}", token_file: "{self.folder}/token"}}
gateway: {{bind: "tcp://127.0.0.1:{gateway_port}"}}
storage: {{state: "redis://127.0.0.1:{self.redis_port}/0", journal: "{self.dsn}"}}
cluster: {{node: dash-1, {cluster}}}
agents:
  - {{type: aggregator, options: {{every: 1s}}}}
  - {{type: planner, options: {{topic: tools.work, every: 50ms, fan_out: 8, timeout: 1s}}}}
processes:
  - name: tool
    argv: [/usr/bin/python3, "{ROOT}/examples/python/queue_worker.py", --pattern, "tools.>"]
    instances: 2
    output: {{journal: true}}
""")
        self.swarmd = self.spawn([str(BUILD / "apps/swarmd/swarmd"), "--config", str(config)], "swarmd.log")
        self.instance = f"127.0.0.1:{self.admin_port}"

        # The second node: two more tool processes in the queue group "tool" (named after the process), so
        # the planner on dash-1 gives about half its requests to dash-2 and gets the replies back from it.
        self.peer_admin_port, peer_gateway_port = free_port(), free_port()
        peer_config = self.folder / "peer.yaml"
        peer_config.write_text(f"""
admin: {{listen: "127.0.0.1:{self.peer_admin_port}", token_file: "{self.folder}/peer-token"}}
gateway: {{bind: "tcp://127.0.0.1:{peer_gateway_port}"}}
storage: {{state: memory, journal: memory}}
cluster: {{node: dash-2, {cluster}}}
processes:
  - name: tool
    argv: [/usr/bin/python3, "{ROOT}/examples/python/queue_worker.py", --pattern, "tools.>"]
    instances: 2
""")
        self.peer = self.spawn([str(BUILD / "apps/swarmd/swarmd"), "--config", str(peer_config)], "peer.log")
        self.peer_instance = f"127.0.0.1:{self.peer_admin_port}"

        self.prom_port = free_port()
        rules = self.folder / "alerts.yml"
        shutil.copy(ROOT / "deploy/prometheus/alerts.yml", rules)
        (self.folder / "prometheus.yml").write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ["{rules}"]
scrape_configs:
  - job_name: swarm
    static_configs: [{{targets: ["{self.instance}", "{self.peer_instance}"]}}]
""")
        self.spawn(["prometheus", f"--config.file={self.folder}/prometheus.yml",
                    f"--storage.tsdb.path={self.folder}/tsdb", f"--web.listen-address=127.0.0.1:{self.prom_port}"],
                   "prometheus.log")

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if self.pg_running:
            subprocess.run(as_postgres([str(PG_BIN / "pg_ctl"), "stop", "-D", str(self.pg_data), "-m", "immediate",
                                        "-w"]), capture_output=True)

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.prom_port}/api/v1/{path}?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            body = e.read()
            try:
                return json.loads(body)
            except ValueError:  # "Service Unavailable" while Prometheus is still starting
                return {"status": "error", "error": body.decode(errors="replace")}
        except OSError:
            return {"status": "down"}

    def query(self, expr: str) -> Any:
        return self.api("query", query=expr)

    def psql(self, sql: str) -> str:
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                            str(self.pg_port), "-U", "postgres", "-d", "postgres", "-c", sql],
                           capture_output=True, text=True)
        assert r.returncode == 0, f"{sql}\n{r.stderr}"
        return r.stdout


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    folder = Path(tempfile.mkdtemp(prefix="swarm-dashboards-"))
    s = Stack(folder)
    try:
        s.start()

        def scraped_enough() -> bool:
            assert s.swarmd.poll() is None, (folder / "swarmd.log").read_text()
            assert s.peer.poll() is None, (folder / "peer.log").read_text()
            r = s.query(f'count_over_time(up{{job="swarm", instance="{s.instance}"}}[1m])')
            return r.get("status") == "success" and bool(r["data"]["result"]) and \
                float(r["data"]["result"][0]["value"][1]) >= 20
        wait_until(scraped_enough, 120, "20 scrapes of swarmd by Prometheus")

        def traffic_across_nodes() -> bool:  # requests out to dash-2 and replies in from it, as Prometheus saw them
            r = s.query(f'min(rate(swarm_cluster_messages_total{{job="swarm", instance="{s.instance}", '
                        f'peer="dash-2"}}[{RATE_INTERVAL}])) > 0 and on() count(swarm_cluster_messages_total'
                        f'{{job="swarm", instance="{s.instance}", peer="dash-2"}}) == 2')
            return r.get("status") == "success" and bool(r["data"]["result"])
        wait_until(traffic_across_nodes, 60, "messages both ways between dash-1 and dash-2 (see swarmd.log, peer.log)")
        yield s
    finally:
        s.stop()
        for log in ("swarmd.log", "peer.log", "nats.log", "prometheus.log"):
            path = folder / log
            if path.exists():
                shutil.copy(path, BUILD / f"dashboards-test-{log}")  # kept for a failed CI run
        shutil.rmtree(folder, ignore_errors=True)


def substitute(expr: str, instance: str) -> str:
    expr = expr.replace("$__rate_interval", RATE_INTERVAL).replace("$job", "swarm").replace("$instance", instance)
    # A variable's label_values(SERIES, LABEL) has data when SERIES does.
    m = re.fullmatch(r"label_values\((.*), *\w+\)", expr)
    return m.group(1) if m else expr


def prometheus_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                if "expr" in target:
                    out.append((board["title"], panel["title"], target["expr"]))
        for variable in board["templating"]["list"]:
            if isinstance(variable.get("query"), dict):
                out.append((board["title"], f"variable {variable['name']}", variable["query"]["query"]))
    return out


def test_every_panel_query_returns_data(stack: Stack):
    queries = prometheus_queries()
    assert len(queries) > 100
    failures = []
    for board, panel, expr in queries:
        r = stack.query(substitute(expr, stack.instance))
        if r.get("status") != "success":
            failures.append(f"{board} / {panel}: {expr}: error: {r.get('error')}")
        elif not r["data"]["result"]:
            failures.append(f"{board} / {panel}: {expr}: no data")
    assert not failures, f"{len(failures)} of {len(queries)} queries failed:\n" + "\n".join(failures)


def test_every_alert_rule_is_evaluated_and_its_metrics_exist(stack: Stack):
    def evaluated() -> Any:
        rules = [r for g in stack.api("rules")["data"]["groups"] for r in g["rules"]]
        return rules if rules and all(r.get("lastEvaluation", "").startswith("2") and
                                      not r["lastEvaluation"].startswith("0001") for r in rules) else None
    rules = wait_until(evaluated, 60, "every rule evaluated")
    assert len(rules) == 14
    failures = [f"{r['name']}: {r['health']} {r.get('lastError', '')}" for r in rules if r["health"] != "ok"]
    for r in rules:
        for metric in sorted(set(re.findall(r"\b((?:swarm|process)_[a-z_]+|up)\b", r["query"]))):
            if not stack.query(f'{metric}{{job="swarm"}}')["data"]["result"]:
                failures.append(f"{r['name']}: {metric} has no series")
    assert not failures, "\n".join(failures)


def test_the_load_test_dashboard_reads_real_runs(stack: Stack):
    r = subprocess.run([str(BUILD / "apps/swarm-load/swarm-load"), "run", "--scenario", "pipeline", "--rate", "2000",
                        "--seconds", "1", "--results-dsn", stack.dsn], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    board = json.loads((ROOT / "dashboards/swarm-load-runs.json").read_text())
    sqls = [(p["title"], t["rawSql"]) for p in board["panels"] for t in p.get("targets", []) if "rawSql" in t]
    sqls += [(v["name"], v["query"]) for v in board["templating"]["list"] if v["type"] == "query"]
    assert len(sqls) == 4
    for title, sql in sqls:
        sql = sql.replace("$__timeFilter(started_at)", "started_at > now() - interval '1 day'")
        sql = sql.replace("$scenario", "'pipeline'")
        assert stack.psql(sql).strip(), f"{title}: {sql}: no rows"
