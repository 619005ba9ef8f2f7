"""swarmd and swarmctl end to end: real processes, signals, the admin port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

from conftest import SWARMD, rss_kb, shell, threads_of, wait_until, worker


def test_a_sigkilled_python_agent_is_restarted_and_serves_again(swarmd):
    d = swarmd("processes:\n" + worker("echo", "echo.>"))
    wait_until(lambda: d.running("echo"), what="echo running")
    first = d.ctl("req", "echo.x", "hello")
    assert first.returncode == 0, first.stderr
    assert "did 'hello'" in first.stdout
    pid = d.processes()["echo"]["pid"]
    os.kill(pid, signal.SIGKILL)
    back = wait_until(lambda: (p := d.processes()["echo"])["state"] == "running" and p["pid"] != pid and p,
                      what="echo restarted")
    assert back["restarts"] == 1
    assert back["last_exit"] == "killed by signal Killed"
    # Its subscription is back: the request reaches the new process.
    again = wait_until(lambda: (r := d.ctl("req", "echo.y", "again")).returncode == 0 and r, what="an answer")
    assert "did 'again'" in again.stdout
    metrics = urlopen_text(d, "/metrics")
    assert 'swarm_process_restarts_total{process="echo"} 1' in metrics
    assert 'swarm_process_exits_total{process="echo",reason="signal"} 1' in metrics


def urlopen_text(d, path: str) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://{d.admin}{path}", timeout=5) as r:
        return r.read().decode()


def test_a_process_that_exits_too_often_escalates_and_swarmd_exits_3(swarmd):
    d = swarmd("processes:\n" + shell("flapping", "exit 1", max_restarts=2, restart_period="1m"))
    assert d.proc.wait(timeout=60) == 3
    log = d.log()
    assert "process flapping exceeded its restart intensity (2 restarts within 60000 ms)" in log
    assert "escalating: swarmd stops" in log


def test_a_process_that_never_says_hello_is_killed_after_its_start_timeout(swarmd):
    d = swarmd("processes:\n" + shell("mute", "exec sleep 1000", expect_hello="true", start_timeout="500ms",
                                      restart="temporary"))
    assert d.processes()["mute"]["state"] == "starting"
    gone = wait_until(lambda: (p := d.processes()["mute"])["state"] == "exited" and p, what="mute killed")
    assert gone["last_exit"] == "killed by signal Killed (no HELLO in time)"


def test_a_process_ignoring_sigterm_is_sigkilled_after_its_stop_timeout(swarmd):
    d = swarmd("processes:\n" + shell("stubborn", "trap '' TERM; echo trapped; while :; do sleep 0.05; done",
                                      stop_timeout="500ms"))
    wait_until(lambda: "trapped" in d.log(), what="the trap")
    stopped = d.ctl("stop", "stubborn")
    assert stopped.returncode == 0, stopped.stderr
    gone = wait_until(lambda: (p := d.processes()["stubborn"])["state"] == "stopped" and p, what="stubborn stopped")
    assert gone["last_exit"] == "killed by signal Killed after its stop timeout"


def test_sighup_adds_and_removes_processes_and_an_invalid_config_changes_nothing(swarmd):
    d = swarmd("processes:\n" + shell("a", "exec sleep 1000") + shell("b", "exec sleep 1000"))
    wait_until(lambda: d.running("a", "b"), what="a and b")
    a_pid = d.processes()["a"]["pid"]
    d.write_config("processes:\n" + shell("a", "exec sleep 1000") + shell("c", "exec sleep 1000"))
    d.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: set(d.processes()) == {"a", "c"} and d.running("a", "c"), what="b removed, c added")
    assert d.processes()["a"]["pid"] == a_pid  # unchanged: untouched
    wait_until(lambda: "processes added c, removed b, changed -" in d.log(), what="the reload's summary")

    d.write_config("processes:\n  - name: a\n    argv: sleep 1000\n")  # a string command: invalid
    d.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "the new config is refused, nothing changed" in d.log(), what="the refusal")
    assert "processes.a.argv" in d.log()
    assert set(d.processes()) == {"a", "c"} and d.running("a", "c")
    assert d.processes()["a"]["pid"] == a_pid


def test_two_hundred_processes_take_no_more_threads_than_one(swarmd):
    d = swarmd("processes:\n" + shell("idle", "exec sleep 1000"))
    wait_until(lambda: d.running("idle"), what="one process")
    one = threads_of(d.proc.pid)
    d.write_config("processes:\n" + shell("idle", "exec sleep 1000", instances=200))
    d.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: sum(p["state"] == "running" for p in d.processes().values()) == 200, timeout=60,
               what="200 running")
    assert threads_of(d.proc.pid) == one
    assert d.stop() == 0


def test_a_gigabyte_of_output_keeps_swarmd_memory_flat(swarmd, tmp_path: Path):
    with open(os.devnull, "wb") as null:  # swarmd logs each line: 1 GiB of log goes nowhere
        d = swarmd("processes:\n" + shell("loud", "sleep 1; head -c 1073741824 /dev/zero | tr '\\\\0' x | fold -w 1000",
                                          restart="temporary"), stderr=null)
        wait_until(lambda: d.running("loud"), what="loud started")
        before = peak = rss_kb(d.proc.pid)

        def done() -> bool:
            nonlocal peak
            peak = max(peak, rss_kb(d.proc.pid))
            return d.processes()["loud"]["state"] == "exited"

        wait_until(done, timeout=300, what="1 GiB printed")
        metrics = urlopen_text(d, "/metrics")
        lines = [l for l in metrics.splitlines() if l.startswith('swarm_process_output_bytes_total{process="loud",stream="stdout"}')]
        assert lines and float(lines[0].split()[-1]) >= 1 << 30, lines
        assert peak - before < 16 * 1024, f"RSS grew {peak - before} kB"


def test_control_needs_the_token_and_observation_does_not(swarmd, tmp_path: Path):
    d = swarmd("processes:\n" + shell("a", "exec sleep 1000"))
    wait_until(lambda: d.running("a"), what="a")
    token = d.token_file.read_text().strip()
    assert oct(d.token_file.stat().st_mode & 0o777) == "0o600"
    assert d.http("POST", "/control/restart?name=a", None) == (401, "admin: control needs an Authorization: Bearer token\n")
    assert d.http("POST", "/control/drain", "0" * len(token))[0] == 401
    assert d.http("GET", "/control/logs?name=a", None)[0] == 401
    assert d.http("GET", "/metrics", None)[0] == 200
    assert d.http("GET", "/debug/processes", None)[0] == 200
    assert d.processes()["a"]["restarts"] == 0 and d.proc.poll() is None  # nothing happened
    status, body = d.http("POST", "/control/restart?name=a", token)
    assert (status, json.loads(body)) == (200, {"restarted": ["a"]})
    status, body = d.http("POST", "/control/restart?name=zz", token)
    assert (status, json.loads(body)) == (404, {"error": "no process or instance named \"zz\" (processes: a)"})

    wrong = tmp_path / "wrong.token"
    wrong.write_text("f" * len(token))
    r = subprocess.run([str(SWARMD.parent.parent / "swarmctl" / "swarmctl"), "--admin", d.admin, "--token-file",
                        str(wrong), "stop", "a"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 1 and "refused the token" in r.stderr
    assert d.running("a")
    ok = d.ctl("stop", "a")
    assert ok.returncode == 0 and "stopped a" in ok.stdout
    wait_until(lambda: d.processes()["a"]["state"] == "stopped", what="a stopped")
    assert d.ctl("drain").returncode == 0
    assert d.proc.wait(timeout=60) == 0
    assert not d.token_file.exists()


def test_control_can_be_turned_off(swarmd):
    d = swarmd("processes:\n" + shell("a", "exec sleep 1000"), admin_extra="control: false, ")
    assert d.http("POST", "/control/restart?name=a", "anything") == (403, "admin: control is turned off on this server\n")
    assert not d.token_file.exists()


def test_sigterm_stops_processes_in_reverse_order_and_exits_0(swarmd, tmp_path: Path):
    marks = tmp_path / "order"
    entry = lambda n: shell(n, f"trap 'echo {n} >> {marks}; exit 0' TERM; echo up; while :; do sleep 0.05; done")
    d = swarmd("processes:\n" + entry("first") + entry("second") + entry("third"))
    wait_until(lambda: d.running("first", "second", "third") and d.log().count("| up") == 3, what="all up")
    pids = [p["pid"] for p in d.processes().values()]
    assert d.stop(signal.SIGTERM) == 0
    assert marks.read_text().split() == ["third", "second", "first"]
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert "swarmd: stopped (exit 0)" in d.log()


def test_logs_and_status_through_swarmctl(swarmd):
    d = swarmd("processes:\n" + shell("talker", "echo hello; echo oops >&2; exec sleep 1000", instances=2))
    wait_until(lambda: d.ctl("logs", "talker").stdout.count("hello") == 2, what="two hellos")
    out = d.ctl("logs", "talker-1").stdout
    assert "talker-1 stdout| hello" in out and "talker-1 stderr| oops" in out
    status = d.ctl("--json", "status")
    assert status.returncode == 0 and json.loads(status.stdout)["processes"]["total"] == 2
    table = d.ctl("processes").stdout
    assert "talker-0" in table and "running" in table


def test_check_config(tmp_path: Path):
    good = tmp_path / "good.yaml"
    good.write_text("processes:\n  - {name: a, argv: [sleep, '1']}\n")
    r = subprocess.run([str(SWARMD), "check-config", str(good)], capture_output=True, text=True)
    assert r.returncode == 0 and "OK" in r.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("processes:\n  - name: a\n    argv: [sleep]\n    restart: sometimes\n")
    r = subprocess.run([str(SWARMD), "check-config", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == (f"{bad}:4: processes.a.restart: got \"sometimes\"; "
                                "expected permanent, transient or temporary")
    r = subprocess.run([str(SWARMD), "--config", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and "processes.a.restart" in r.stderr


def test_readiness_and_stopping_are_told_to_systemd(swarmd, tmp_path: Path):
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(30)
        d = swarmd("processes: []\n", env={"NOTIFY_SOCKET": str(path)})
        assert sock.recv(100) == b"READY=1"
        assert d.stop() == 0
        assert sock.recv(100) == b"STOPPING=1"
