"""The files in deploy/ agree with each other and with genkeep's settings (no root needed)."""

from __future__ import annotations

import configparser
import re

from genkeep.config import Settings
from tests.hosts.topology import SHIPPED_PROXY_CONFIG, proxy_config
from tests.support.processes import REPO

DEPLOY = REPO / "deploy"
UNITS = ("genkeep-serve.service", "genkeep-worker.service")
# What a stopping worker needs beyond its grace: handing back what still runs, and closing its connections.
HAND_BACK_MARGIN = 20


def settings_file() -> dict[str, str]:
    lines = (DEPLOY / "genkeep.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((DEPLOY / name).read_text())
    return parser


def test_every_genkeep_variable_in_the_settings_file_is_a_setting() -> None:
    known = {f"GENKEEP_{name.upper()}" for name in Settings.model_fields}
    unknown = [name for name in settings_file() if name.startswith("GENKEEP_") and name not in known]
    assert not unknown
    assert "GENKEEP_WORKERS" not in settings_file(), "each unit sets its own GENKEEP_WORKERS"


def test_systemd_waits_out_the_shutdown_grace_and_the_hand_back() -> None:
    grace = float(settings_file()["GENKEEP_SHUTDOWN_GRACE"])
    for name in UNITS:
        service = unit(name)["Service"]
        assert service["KillSignal"] == "SIGTERM"
        assert float(service["TimeoutStopSec"]) == grace + HAND_BACK_MARGIN, name
        assert service["Restart"] == "always"
        assert service["EnvironmentFile"].endswith("genkeep.env")


def test_api_machines_run_no_workers_and_the_readme_points_at_deploy() -> None:
    assert re.search(r"^Environment=GENKEEP_WORKERS=0$", (DEPLOY / "genkeep-serve.service").read_text(), re.M)
    readme = (REPO / "README.md").read_text()
    many_machines = readme[readme.index("## Many machines"):readme.index("## Metrics, logs and readiness")]
    for name in ("deploy/haproxy.cfg", *(f"deploy/{unit_name}" for unit_name in UNITS), "deploy/genkeep.env"):
        assert name in many_machines


def test_the_proxy_runs_the_shipped_configuration_with_only_the_addresses_filled_in() -> None:
    addresses = {"proxy": "10.9.9.30", "api1": "10.9.9.21", "api2": "10.9.9.22"}
    shipped = SHIPPED_PROXY_CONFIG.read_text()
    used = proxy_config(addresses)
    assert used != shipped
    filled_in = (used.replace("10.9.9.21:8000", "api1.internal:8000").replace("10.9.9.22:8000", "api2.internal:8000")
                 .replace("10.9.9.30", "studio.example.com"))
    assert filled_in == shipped
    # The settings the README promises operators: checks on /readyz, the Host header passed through as it is.
    assert "http-check send meth GET uri /readyz" in shipped
    assert "option forwardfor" in shipped and "X-Forwarded-Proto" in shipped
    assert "http-request set-header Host" not in shipped
