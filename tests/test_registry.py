"""The registry is the list of components: every entry keeps the one contract, and a new one is
a module plus a registry line.

- One contract test walks every entry: built from a config that asks for it, started (or
  opened), given something to do, its figures read in the one shape of its kind, stopped.
- A step added by a registry line (no other edit) that declares the keys it reads keeps the
  compiled path on in a real ``logd run``: ``hot_path.records`` still counts the bench's
  lines, and the lines holding its key reach it through Python.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
from dataclasses import fields
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from logd import registry
from logd.components import Batch, Pressure, SinkStats
from logd.config import Config, parse_config
from logd.control import request
from logd.daemon import _settings_of, build
from logd.events import Events
from logd.pipeline import Peer, Pipeline
from logd.record import parse_line
from logd.ship.targets import Where
from logd.spec import KINDS, SERVICE, SINK, SOURCE, STEP, STORE, TARGET, Context, Spec

from support import can_connect, read_records, send, wait_for

RECORD = {"time": "2026-11-29T10:00:00.000000Z", "level": "warn", "message": "hello", "agent": "planner",
          "duration_ms": 12, "tokens": {"input": 3, "output": 4}}


def configs(folder: Path, sock_dir: Path) -> list[Config]:
    """Configs that between them ask for every component (a spool needs no file, a file sink one)."""
    every = f"""
[logging]
file = "{folder}/agent.log"
[logging.sampling]
enabled = true
burst = 1000
[logging.journald]
enabled = true
socket = "{sock_dir}/journal.sock"
[logging.metrics]
listen = "127.0.0.1:0"
[logging.otlp]
listen = "127.0.0.1:0"
[[logging.ship]]
type = "http"
url = "http://127.0.0.1:9/logs"
timeout = 1
"""
    spool = f'[logging]\nstate_dir = "{folder}/state"\n[[logging.ship]]\ntype = "http"\nurl = "http://127.0.0.1:9/"\n'
    return [parse_config(every, folder / "agentflow.toml"), parse_config(spool, folder / "spool.toml")]


def built(spec: Spec, config: Config, ctx: Context) -> Any:
    if spec.kind == TARGET:  # built by the shippers, from one [[logging.ship]] element and where they run
        element = next((e for e in config.ship if e.type == spec.name), None)
        return None if element is None else spec.build(element, Where("testhost"))
    return spec.build(_settings_of(spec, config), ctx)


def test_every_registry_entry_builds_starts_works_reports_and_stops(tmp_path: Path, sock_dir: Path) -> None:
    journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # a real reader of the journald sink's datagrams
    journal.bind(str(sock_dir / "journal.sock"))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock_dir / "logd.sock"))
    listener.listen()
    listener.setblocking(False)
    seen: dict[str, str] = {}

    async def exercise(spec: Spec) -> None:
        for config in configs(tmp_path, sock_dir):
            if spec.kind == TARGET:
                element = f'[[logging.ship]]\ntype = "{spec.name}"\nurl = "{_url(spec.name)}"\ntimeout = 1\n'
                config = parse_config(element, tmp_path / f"{spec.name}.toml")
            events = Events(stderr=lambda line: None)
            kept: list[list[dict]] = []
            pipeline = Pipeline([], [], events=events)
            pipeline.put = kept.append  # type: ignore[method-assign]  # what a source hands over
            ctx = Context(config, events, listener=listener, pipeline=pipeline, pressure=Pressure(),
                          figures=lambda: {"version": "x"}, slow_figures=dict)
            part = built(spec, config, ctx)
            if part is None:
                continue
            seen[spec.name] = await _work(spec, part, config, ctx, kept, journal)
            return
        raise AssertionError(f"no config asks for {spec.kind} {spec.name}")

    async def run() -> None:
        for spec in registry.specs():
            await exercise(spec)

    asyncio.run(run())
    assert set(seen) == {s.name for s in registry.specs()}
    assert {s.kind for s in registry.specs()} == set(KINDS)


def _url(kind: str) -> str:
    return {"syslog": "tcp://127.0.0.1:9", "nats": "nats://127.0.0.1:9"}.get(kind, "http://127.0.0.1:9/v1/logs")


async def _work(spec: Spec, part: Any, config: Config, ctx: Context, kept: list[list[dict]],
                journal: socket.socket) -> str:
    """One entry through its lifecycle; returns what it did, for the message of a failure."""
    record = parse_line(orjson.dumps(RECORD), "2026-11-29T10:00:00.000000Z", {"_pid": 1})
    if spec.kind == STEP:
        out = part([dict(record)])
        assert isinstance(out, list) and len(out) <= 1
        figures = spec.figures(part) if spec.figures is not None else {}
        assert isinstance(figures, dict)
        return "called"
    if spec.kind in (SINK, STORE):
        part.open()
        part.write(Batch([dict(record), dict(record, session_id="s1", hook="BeforeAgentRun")]))
        part.flush()
        stats = part.stats()
        assert isinstance(stats, SinkStats) and [f.name for f in fields(stats)] == [f.name for f in fields(SinkStats)]
        if spec.name in ("file", "spool", "journald", "traces"):
            assert stats.sent_bytes > 0, spec.name
        if spec.name == "journald":
            assert b"MESSAGE=hello\n" in journal.recv(1 << 16)
        part.close()
        return "written"
    if spec.kind == TARGET:
        outcome = part.send([("id-1", record)])
        assert not outcome.done and outcome.error  # nothing listens at port 9: kept to retry, with the reason
        part.close()
        return "sent"
    assert spec.kind in (SOURCE, SERVICE)
    await part.start()
    try:
        if spec.name == "socket":
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.connect(ctx.listener.getsockname())
            client.sendall(orjson.dumps(RECORD) + b"\n")
            client.close()
            for _ in range(200):
                if kept:
                    break
                await asyncio.sleep(0.01)
            assert kept and kept[0][0]["message"] == "hello"
        elif spec.name == "otlp":
            url = part.stats()["url"]
            async with httpx.AsyncClient() as http:
                reply = await http.post(url + "/v1/logs", json={"resourceLogs": []})
            assert reply.status_code == 200
        elif spec.name == "metrics":
            url = part.stats()["metrics"]
            async with httpx.AsyncClient() as http:
                reply = await asyncio.wait_for(http.get(url + "/health"), 10)
            assert reply.status_code in (200, 503)
        await part.reload(config)
        assert isinstance(part.stats(), dict)
    finally:
        await part.stop()
    return "started"


# --- a new step: one module and a registry line ---

TICKET_STEP = '''
"""A step added by a registry line: it reads "ticket" and tags the record."""
from logd.spec import STEP, Spec


def tag(records):
    for record in records:
        if "ticket" in record:
            record["ticket_seen"] = True
    return records


SPEC = Spec(STEP, "ticket", lambda settings, ctx: tag, reads=frozenset({"ticket"}))
EVERY = Spec(STEP, "everything", lambda settings, ctx: tag)  # declares nothing: it must see every record
'''

RUN_WITH = '''
import sys
from logd import registry
registry.add(sys.argv[1], after="level")
from logd.cli import main
sys.exit(main(["run", "--config", sys.argv[2]]))
'''


def start_with_step(entry: str, tmp_path: Path, sock_dir: Path) -> subprocess.Popen[bytes]:
    (tmp_path / "ticketstep.py").write_text(textwrap.dedent(TICKET_STEP))
    config = tmp_path / "agentflow.toml"
    config.write_text(f'[logging]\nfile = "{tmp_path}/agent.log"\nfile_only = true\nlevel = "debug"\n'
                      f'[logging.socket]\npath = "{sock_dir}/logd.sock"\n')
    proc = subprocess.Popen([sys.executable, "-c", RUN_WITH, entry, str(config)], cwd=tmp_path,
                            env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin", "LOGD_OTLP_LISTEN": ""},
                            stderr=subprocess.PIPE)
    wait_for(lambda: proc.poll() is None and can_connect(sock_dir / "logd.sock") and can_connect(sock_dir / "logd.ctl"),
             15, what="logd with the new step")
    return proc


def test_a_new_step_that_declares_its_keys_keeps_the_hot_path_on(tmp_path: Path, sock_dir: Path) -> None:
    from logd.bench import make_records

    proc = start_with_step("ticketstep:SPEC", tmp_path, sock_dir)
    try:
        bench = make_records(300, 1).splitlines()
        tickets = [orjson.dumps({"time": "2026-11-29T10:00:00Z", "level": "info", "message": f"t{i}",
                                 "ticket": f"T-{i}"}) for i in range(20)]
        send(sock_dir / "logd.sock", b"\n".join(bench + tickets) + b"\n")
        log = tmp_path / "agent.log"
        wait_for(lambda: len([r for r in read_records(log) if r.get("seq") is not None or "ticket" in r]) == 320,
                 what="the records")
        status = request(sock_dir / "logd.sock", "status")
        assert status["hot_path"] == {"on": True, "records": len(bench), "trace_entries": 0}
        written = read_records(log)
        assert [r["ticket_seen"] for r in written if "ticket" in r] == [True] * 20  # the step saw its lines
        assert not any("ticket_seen" in r for r in written if "seq" in r)
    finally:
        proc.terminate()
        proc.wait(20)


def test_a_step_that_declares_nothing_turns_the_hot_path_off_and_status_says_why(tmp_path: Path,
                                                                                  sock_dir: Path) -> None:
    proc = start_with_step("ticketstep:EVERY", tmp_path, sock_dir)
    try:
        status = request(sock_dir / "logd.sock", "status")
        assert status["hot_path"] == {"on": False, "records": 0, "trace_entries": 0,
                                      "off": "step everything reads every record"}
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.mark.parametrize("text,reason", [
    ("[logging.sampling]\nenabled = true\ninitial = 1\nthereafter = 0\nmax_level = \"warn\"\n", "sampled"),
    ("[logging.sampling]\nburst = 1\n", "rate_limited"),
])
def test_steps_that_decide_on_every_record_keep_the_compiled_path(tmp_path: Path, text: str, reason: str) -> None:
    """Sampling and rate limits decide by a record's agent, level and message, which the compiled
    path gives them (issue 31: they turned it off)."""
    parts = build(Context(parse_config(text, tmp_path / "agentflow.toml"), Events(stderr=lambda line: None)))
    assert parts.hot is not None and parts.cold is None
    pipeline = Pipeline(parts.steps, [], hot=parts.hot)

    async def take() -> None:
        pipeline.take([orjson.dumps(RECORD)] * 3, "2026-11-29T10:00:00.000000Z", Peer({"_pid": 7}))
        pipeline.drain()

    asyncio.run(take())
    assert pipeline.stats.hot_path == 3 and pipeline.stats.dropped == {reason: 2}
