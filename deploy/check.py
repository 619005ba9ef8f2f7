#!/usr/bin/env python3
"""Validates deploy/ without pulling images or installing anything (CI runs it):
the compose file parses, every file it and the Dockerfile name exists, every
published port is on 127.0.0.1, Prometheus scrapes the port swarmd's config
listens on; the configs pass `swarmd check-config` and `promtool check config`;
the systemd unit passes `systemd-analyze verify` where systemd-analyze exists.

  deploy/check.py [--swarmd build/apps/swarmd/swarmd]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent
ROOT = DEPLOY.parent
problems: list[str] = []


def check(ok: bool, what: str) -> None:
    if not ok:
        problems.append(what)


def run(args: list[str], what: str) -> None:
    r = subprocess.run(args, capture_output=True, text=True)
    check(r.returncode == 0, f"{what}: {' '.join(args)}: {r.stdout}{r.stderr}".strip())


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_argument("--swarmd", default=str(ROOT / "build/apps/swarmd/swarmd"))
    args = options.parse_args()

    compose_dir = DEPLOY / "compose"
    compose = yaml.safe_load((compose_dir / "compose.yaml").read_text())
    services = compose["services"]
    for name, service in services.items():
        build = service.get("build")
        if build:
            context = (compose_dir / build["context"]).resolve()
            check(context.is_dir(), f"compose: {name}: build context {context} is missing")
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            check(dockerfile.is_file(), f"compose: {name}: {dockerfile} is missing")
            for line in dockerfile.read_text().splitlines():
                m = re.match(r"COPY (?!--from)(.+) \S+$", line)
                for source in (m.group(1).split() if m else []):
                    check((context / source).exists(), f"{dockerfile.name}: COPY {source}: missing in {context}")
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                check((compose_dir / source).exists(), f"compose: {name}: volume {source} is missing")
            else:
                check(source in (compose.get("volumes") or {}), f"compose: {name}: volume {source} is not declared")
        for port in service.get("ports", []):
            check(port.startswith("127.0.0.1:"), f"compose: {name}: port {port} is published beyond 127.0.0.1")
        for dep in service.get("depends_on", []):
            check(dep in services, f"compose: {name}: depends on unknown service {dep}")

    swarm = yaml.safe_load((compose_dir / "swarm.yaml").read_text())
    admin_port = swarm["admin"]["listen"].rsplit(":", 1)[1]
    prometheus = yaml.safe_load((compose_dir / "prometheus.yml").read_text())
    targets = [t for job in prometheus["scrape_configs"] for s in job["static_configs"] for t in s["targets"]]
    check(f"swarmd:{admin_port}" in targets, f"compose: Prometheus scrapes {targets}, swarmd listens on {admin_port}")
    check(any(p.endswith(f":{admin_port}") for p in services["swarmd"]["ports"]), "compose: swarmd's admin port is not published")
    check("redis" in swarm["storage"]["state"] and "host=postgres" in swarm["storage"]["journal"],
          "compose: swarm.yaml does not use the redis and postgres services")

    with tempfile.TemporaryDirectory() as tmp:  # /opt/swarm/examples is the image's copy of examples/
        local = Path(tmp) / "swarm.yaml"
        local.write_text((compose_dir / "swarm.yaml").read_text().replace("/opt/swarm/examples", str(ROOT / "examples")))
        run([args.swarmd, "check-config", str(local)], "compose/swarm.yaml")
    run(["promtool", "check", "config", str(DEPLOY / "prometheus/prometheus.yml")], "prometheus/prometheus.yml")
    provisioning = DEPLOY / "grafana/provisioning"
    for f in provisioning.rglob("*.yaml"):
        check(yaml.safe_load(f.read_text()).get("apiVersion") == 1, f"{f}: not a Grafana provisioning file")

    unit = DEPLOY / "systemd/swarmd.service"
    if shutil.which("systemd-analyze"):
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / unit.name  # the unit as installed, with this build's swarmd
            local.write_text(unit.read_text().replace("/usr/local/bin/swarmd", str(Path(args.swarmd).resolve())))
            run(["systemd-analyze", "verify", str(local)], "systemd/swarmd.service")
    else:
        print("deploy/check.py: systemd-analyze is not installed: the unit was not verified")

    for p in problems:
        print(f"deploy/check.py: {p}", file=sys.stderr)
    if not problems:
        print("deploy/check.py: compose, Dockerfile, Prometheus, Grafana provisioning and systemd unit OK "
              "(images are not pulled or built here)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
