"""The console's human format (logd/console_format.py): the date when a record is not from
today (the day injected), and trace records on one short line (span shapes follow the
OpenAI Agents SDK's spans, as in tests/trace_samples.py)."""

from __future__ import annotations

from datetime import date, datetime, timezone

from logd.console_format import ConsoleFormatter
from logd.record import normalize_object

from trace_samples import agk_session, span_trace


def local_day(canonical: str) -> date:
    return datetime.fromisoformat(canonical.replace("Z", "+00:00")).astimezone().date()


def test_the_date_is_shown_only_when_the_record_is_not_from_today() -> None:
    record = {"time": "2026-11-23T11:28:07.123000Z", "level": "info", "message": "hi", "agent": "planner"}
    day = local_day(record["time"])
    now = {"value": datetime.fromisoformat("2026-11-23T11:28:08+00:00").timestamp()}
    formatter = ConsoleFormatter(False, clock=lambda: now["value"])
    same_day = formatter.format(record)
    assert same_day.endswith(".123 INF hi agent=planner\n") and len(same_day.split()[0]) == 12
    now["value"] += 2 * 86400  # midnight passed: that record now carries its date
    local = datetime.fromisoformat("2026-11-23T11:28:07+00:00").astimezone().strftime("%Y-%m-%d %H:%M:%S")
    assert local.startswith(day.isoformat()) and formatter.format(record).startswith(f"{local}.123 INF hi")


def test_spans_and_hooks_print_as_one_short_line() -> None:
    formatter = ConsoleFormatter(False, clock=lambda: 0.0)  # 1970: every record is dated
    received = datetime(2026, 11, 29, tzinfo=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    lines = [formatter.format(normalize_object(dict(r), received)) for r in span_trace()]
    billing = next(line for line in lines if "span agent billing" in line)
    assert billing.split(" INF ", 1)[1] == \
        'span agent billing duration=1100ms error="invoice not found" trace=trace_abc123\n'
    assert all(len(line) < 120 for line in lines)
    assert any('span handoff "triage → billing" duration=10ms' in line for line in lines)
    hook = formatter.format(normalize_object(dict(agk_session()[0]), received))
    assert hook.split(" INF ", 1)[1] == "BeforeEventHandling planner session=req-17461596\n"
