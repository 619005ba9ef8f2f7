"""The admin port's live page in a real browser: headless Chromium loads it from
a running swarmd under load; its charts must have data. A screenshot is kept in
the build folder (a CI artifact)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from conftest import BUILD, wait_until, worker

CHROMIUM = shutil.which("chromium")


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    # Virtual time: the page's 1 s timer runs 60 times in a few seconds of real time;
    # the page times its rates by swarmd's uptime, so they stay true.
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=60000",
                           *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (scripts/bootstrap installs it)")
def test_the_live_page_shows_a_running_swarm(swarmd):
    d = swarmd("agents:\n  - {type: aggregator, options: {every: 1s}}\n"
               "  - {type: planner, options: {topic: tools.work, every: 10ms, fan_out: 8}}\n"
               "processes:\n" + worker("tool", "tools.>", instances=2))
    wait_until(lambda: d.running("tool-0", "tool-1"), what="the tools")
    dom = chromium("--dump-dom", f"http://{d.admin}/").stdout
    values = dict(re.findall(r'id="v-([a-z]+)">([^<]*)<', dom))
    points = dict(re.findall(r'id="c-([a-z]+)"[^>]*data-points="(\d+)"', dom))
    assert values, dom[:2000]
    assert int(values["agents"]) >= 2  # the planner and the aggregator
    assert float(values["messages"].split()[0]) > 0, values
    assert float(values["drops"].split()[0]) >= 0, values
    assert values["workers"].endswith("%"), values
    assert values["queueing"].endswith(("µs", "ms")), values  # a p99 from the histogram's buckets
    for chart in ("agents", "messages", "drops", "workers", "queueing"):
        assert int(points.get(chart, 0)) >= 10, (chart, points)
    assert "<td>planner</td>" in dom  # the slowest consumers, from /debug/agents

    shot = BUILD / "live-page.png"
    shot.unlink(missing_ok=True)
    chromium(f"--screenshot={shot}", "--window-size=1280,1000", f"http://{d.admin}/")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
