"""The shipped Prometheus alert rules: valid (`promtool check rules`), and each alert fires and
stays quiet where it should (`promtool test rules` over tests/rules/*.yml, Debian's promtool)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "config" / "prometheus-rules.yml"
TESTS = sorted((ROOT / "tests" / "rules").glob("*.yml"))
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def promtool(*args: str) -> str:
    result = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
    return result.stdout


def alerts() -> list[str]:
    return re.findall(r"^\s*- alert: (\w+)$", RULES.read_text(), re.M)


def test_rules_pass_promtool_check():
    out = promtool("check", "rules", str(RULES))
    assert f"SUCCESS: {len(alerts())} rules found" in out


def test_rule_unit_tests_pass():
    assert TESTS, "no rule tests in tests/rules"
    promtool("test", "rules", *map(str, TESTS))


def test_every_alert_is_unit_tested_firing_and_has_a_runbook():
    names = alerts()
    assert {"HighErrorRate", "SlowResponse", "HighTokenUsage", "APICallFailures", "LogdSinkNotWritable",
            "LogdShipLagGrowing", "LogdRecordsDropped", "LogdNotReady"} <= set(names)
    text = "".join(p.read_text() for p in TESTS)
    # an alert is tested firing when a test expects it with labels
    fired = set(re.findall(r"alertname: (\w+)\n\s+exp_alerts:\n\s+- exp_labels", text))
    assert set(names) <= fired, f"alerts never tested firing: {sorted(set(names) - fired)}"
    assert RULES.read_text().count("runbook: ") == len(names)
