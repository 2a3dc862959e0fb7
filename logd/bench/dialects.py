"""The mixed agent-log workload of ``logd bench --peers --mix``: the JSON lines agents really
send, each dialect in the shape its own library writes, in stated proportions.

Each shape was taken from the library's own output (2026-12-07, Debian 12 / PyPI):

- ``logd``: :class:`logd.client.LogdHandler` (orjson; ``time`` with microseconds, ``logger``);
- ``agent``: the agent record of issue 31 (millisecond ``time``, ``agent`` before ``message``,
  float ``duration_ms``, ``tokens``, ``model``, ``pid``); ``agent+tool``: the same naming a
  ``tool`` (most records of an agent log do);
- ``zerolog``: rs/zerolog 1.26 ``zerolog.New(w).With().Timestamp()``: ``level`` first, the
  event's fields, ``time`` (RFC 3339, seconds, the host's offset), ``message`` last;
- ``zap``: go.uber.org/zap 1.23 ``zap.NewProduction()``: ``level``, ``ts`` (epoch seconds as a
  float), ``caller``, ``msg``, the fields; an error-level record adds ``stacktrace``;
- ``loguru``: loguru 0.7 ``serialize=True``: ``{"text": ..., "record": {...}}``, non-ASCII raw;
- ``python-json-logger``: ``JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")``
  with ``extra=``: ``json.dumps`` spacing, ``\\uXXXX`` escapes;
- ``json.dumps``: the stdlib by hand, ``datetime.isoformat()`` time with ``+00:00``,
  ``ensure_ascii`` escapes of a non-ASCII message.

About 3% of the records are error-level, in each dialect's own spelling. Every record
carries ``"client": N`` (the bench counts records by it in every server's file).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable

import orjson

from logd.bench.harness import AGENTS, MESSAGES

__all__ = ["DIALECTS", "MIX", "describe_mix", "make_mixed"]

TOOLS = ("web_search", "read_file", "run_python", "sql_query", "http_get")
MODELS = ("gpt-4o-mini", "claude-sonnet-4", "llama-3.1-70b")
ERROR_EVERY = 33  # one record in 33 (3%) is error-level
BASE_TIME = 1_767_225_600.0  # 2026-01-01T00:00:00Z

Maker = Callable[[int, int, bool], bytes]  # (client, sequence number, error-level) -> one line


def _iso(t: float, digits: int, zone: str = "Z") -> str:
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    if digits:
        base += f".{int(t % 1 * 10**digits):0{digits}d}"
    return base + zone


def _when(i: int) -> float:
    return BASE_TIME + i * 0.0137


def _logd(client: int, i: int, error: bool) -> bytes:
    return orjson.dumps({"time": _iso(_when(i), 6), "level": "error" if error else "info",
                         "message": MESSAGES[i % len(MESSAGES)], "logger": f"agents.{AGENTS[i % len(AGENTS)]}",
                         "agent": AGENTS[i % len(AGENTS)], "session_id": f"sess-{client:02d}-{i // 500:05d}",
                         "client": client, "seq": i})


def _agent_record(client: int, i: int, error: bool, tool: bool) -> bytes:
    rec: dict = {"time": _iso(_when(i), 3), "level": "error" if error else "info", "agent": AGENTS[i % len(AGENTS)],
                 "session_id": f"sess-{client:02d}-{i // 500:05d}"}
    if tool:
        rec["tool"] = TOOLS[i % len(TOOLS)]
    rec.update({"message": "Tool call failed" if error else MESSAGES[i % len(MESSAGES)], "seq": i,
                "duration_ms": float(1000 + (i * 37) % 4000), "tokens": {"in": 30000 + i % 1000, "out": 2000 + i % 400},
                "model": MODELS[i % len(MODELS)], "pid": 4000 + client, "client": client})
    return orjson.dumps(rec)


def _zerolog(client: int, i: int, error: bool) -> bytes:
    # Go's RFC 3339 in a zone east of UTC; zerolog writes event fields before its timestamp hook
    rec: dict = {"level": "error" if error else "info", "agent": AGENTS[i % len(AGENTS)],
                 "session_id": f"sess-{client:02d}-{i // 500:05d}", "tool": TOOLS[i % len(TOOLS)],
                 "duration_ms": (i * 37) % 5000 + 0.5, "client": client, "seq": i}
    if error:
        rec["error"] = "context deadline exceeded"
    rec["time"] = _iso(_when(i) + 3600, 0, "+01:00")
    rec["message"] = "tool failed" if error else MESSAGES[i % len(MESSAGES)]
    return orjson.dumps(rec)


def _zap(client: int, i: int, error: bool) -> bytes:
    rec: dict = {"level": "error" if error else "info", "ts": round(_when(i), 7),
                 "caller": f"agents/{AGENTS[i % len(AGENTS)]}.go:{40 + i % 60}",
                 "msg": "tool failed" if error else MESSAGES[i % len(MESSAGES)], "agent": AGENTS[i % len(AGENTS)],
                 "tool": TOOLS[i % len(TOOLS)], "elapsed": ((i * 37) % 5000) / 1000, "client": client, "seq": i}
    if error:
        rec["stacktrace"] = "main.(*Agent).call\n\t/src/agents/agent.go:88\nmain.main\n\t/src/main.go:21"
    return orjson.dumps(rec)


def _loguru(client: int, i: int, error: bool) -> bytes:
    t = _when(i)
    level = ("ERROR", 40, "❌") if error else ("INFO", 20, "ℹ️")
    message = MESSAGES[i % len(MESSAGES)]
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}+00:00"
    record = {"elapsed": {"repr": f"0:00:{i % 60:02d}.008084", "seconds": i % 60 + 0.008084}, "exception": None,
              "extra": {"agent": AGENTS[i % len(AGENTS)], "client": client, "seq": i},
              "file": {"name": "agent.py", "path": "/srv/agents/agent.py"}, "function": "step",
              "level": {"icon": level[2], "name": level[0], "no": level[1]}, "line": 57, "message": message,
              "module": "agent", "name": "agents.agent", "process": {"id": 4000 + client, "name": "MainProcess"},
              "thread": {"id": 140232570026880, "name": "MainThread"},
              "time": {"repr": stamp, "timestamp": round(t, 6)}}
    text = f"{stamp[:23]} | {level[0]:<8} | agents.agent:step:57 - {message}\n"
    return json.dumps({"text": text, "record": record}, ensure_ascii=False).encode()


def _python_json_logger(client: int, i: int, error: bool) -> bytes:
    t = _when(i)
    asctime = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + f",{int(t % 1 * 1000):03d}"
    return json.dumps({"asctime": asctime, "levelname": "ERROR" if error else "INFO",
                       "name": f"agents.{AGENTS[i % len(AGENTS)]}", "message": MESSAGES[i % len(MESSAGES)],
                       "agent": AGENTS[i % len(AGENTS)], "tool": TOOLS[i % len(TOOLS)], "client": client,
                       "seq": i}).encode()


def _stdlib_json(client: int, i: int, error: bool) -> bytes:
    return json.dumps({"time": _iso(_when(i), 6, "+00:00"), "level": "error" if error else "info",
                       "message": "Résumé drafted — sent to critic ✓" if i % 2 else MESSAGES[i % len(MESSAGES)],
                       "agent": AGENTS[i % len(AGENTS)], "client": client, "seq": i}).encode()


DIALECTS: dict[str, Maker] = {
    "logd": _logd,
    "agent": lambda client, i, error: _agent_record(client, i, error, tool=False),
    "agent+tool": lambda client, i, error: _agent_record(client, i, error, tool=True),
    "zerolog": _zerolog,
    "zap": _zap,
    "loguru": _loguru,
    "python-json-logger": _python_json_logger,
    "json.dumps": _stdlib_json,
}

# records per 100 of the mixed workload
MIX: dict[str, int] = {"logd": 15, "agent": 15, "agent+tool": 25, "zerolog": 12, "zap": 12, "loguru": 6,
                       "python-json-logger": 8, "json.dumps": 7}
assert sum(MIX.values()) == 100 and set(MIX) == set(DIALECTS)


def describe_mix(only: str | None = None) -> str:
    if only is not None:
        return f"{only} records, 1 in {ERROR_EVERY} error-level"
    return ", ".join(f"{name} {share}%" for name, share in MIX.items()) + f"; 1 in {ERROR_EVERY} error-level"


def make_mixed(count: int, client: int, only: str | None = None) -> bytes:
    """``count`` lines of the mixed workload (or of the dialect ``only``), the dialects spread
    through the stream in a fixed shuffled order, the same for every run."""
    order = [name for name, share in MIX.items() for _ in range(share)] if only is None else [only]
    random.Random(31).shuffle(order)
    makers = [DIALECTS[name] for name in order]
    return b"\n".join([makers[i % len(makers)](client, i, i % ERROR_EVERY == 7) for i in range(count)]) + b"\n"
