"""The compiled hot path (logd/_hotpath.c, logd/hotpath.py) makes exactly what the Python path makes.

Issue 14: lines in logd's shape skip the dict, but not a byte of a record may change, nor a
count. Generated lines go through two pipelines built by the daemon's own wiring from one
config (steps, sinks, trace branch): one with the hot path, one without. The files, the trace
session files, the metric steps' counters, the redaction counts and the pipeline's counts
must be equal, and the hot path must really have taken the common lines.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from logd import hotpath
from logd.config import parse_config
from logd.daemon import build
from logd.events import Events
from logd.logfiles import bounds
from logd.pipeline import Peer, Pipeline, Rids
from logd.spec import Context
from logd.steps.agents import AgentMetrics
from logd.timestamps import local_zone_is_utc
from logd.usage import UsageMetrics

from record_lines import DIALECTS, dialect_lines, go_float, role_lines, values
from record_lines import lines as any_lines
from support import read_records, send, wait_for

RECEIVED = "2026-11-29T12:00:00.000000Z"
TRUSTED = {"_pid": 4242, "_uid": 1000, "_gid": 1000, "_comm": "agent"}

CONFIGS = {
    "default": "",
    "warn and up": 'level = "warn"',
    "no redaction": "[logging.redact]\nenabled = false",
    "own rules": '[logging.redact]\nkeys = ["session", "pid"]\npatterns = ["(?i)internal-[0-9]+"]\nreplacement = "***"',
    "sampled": '[logging.sampling]\nenabled = true\ninitial = 2\nthereafter = 3\nmax_level = "error"\nburst = 25',
}


def test_the_hot_path_is_built() -> None:
    """CI builds it (setup.py): a missing compiler must not pass unnoticed."""
    assert hotpath.AVAILABLE


class CountingUsage(UsageMetrics):
    """The usage step, also counting the records it is given in Python (the compiled path's
    own counts come through its add_* methods instead)."""

    seen = 0

    def __call__(self, records: list[dict]) -> list[dict]:
        self.seen += len(records)
        return super().__call__(records)


class Side:
    """One pipeline as the daemon wires it, writing into its own folder."""

    def __init__(self, folder: Path, config_text: str, hot: bool, **usage_caps: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        toml = f'[logging]\nfile = "{folder}/agent.log"\nfile_only = true\n' \
               f'[logging.traces]\ndir = "{folder}/traces"\n'
        head, _, rest = config_text.partition("[")
        toml = toml.replace("[logging]\n", "[logging]\n" + head + "\n") + ("[" + rest if rest else "")
        config = parse_config(toml, folder / "agentflow.toml")
        self.agents = AgentMetrics(config.metrics.max_agents)
        self.usage = CountingUsage(self.agents.label, **usage_caps)
        events = Events(lambda: 0.0, stderr=lambda line: None)
        # one clock reading for the whole run: sampling ticks and rate-limit windows end alike both ways
        self.parts = build(Context(config, events, clock=lambda: 1_800_000_000.0,
                                   kept={"agents": self.agents, "usage": self.usage}))
        self.parts.open()
        self.hot = self.parts.hot if hot else None
        self.pipeline = Pipeline(self.parts.steps, self.parts.sinks, events=events, branch=self.parts.branch,
                                 hot=self.hot)

    def feed(self, chunks: list[list[bytes]], trusted: dict, rids: list[Rids] | None = None) -> None:
        """Each chunk as a connection's read hands it over: through the pipeline's one intake,
        which decides what takes the compiled path (``rids``: each chunk's ack fields)."""
        async def run() -> None:
            self.pipeline.events.connect(self.pipeline.put)  # logd's own records into the file, as the daemon does
            peer = Peer(trusted)
            for i, chunk in enumerate(chunks):
                self.pipeline.take(chunk, RECEIVED, peer, rids=rids[i] if rids is not None else None)
            self.pipeline.close()
        asyncio.run(run())

    def state(self) -> dict:
        sessions = sorted((self.folder / "traces").rglob("*.jsonl")) if (self.folder / "traces").exists() else []
        stats = self.pipeline.stats
        return {
            "file": (self.folder / "agent.log").read_bytes(),
            "time bounds": (lambda t: (t.low, t.high))(bounds.tracker(self.folder / "agent.log")),  # for queries
            "sessions": {p.name: p.read_bytes() for p in sessions},
            "agents": (self.agents.records, self.agents.durations, self.agents.redacted),
            # dicts, compared whatever order their keys were made in (sums per batch make them in another)
            "usage": (self.usage.tokens, self.usage.tool_calls, self.usage.latency, self.usage.last_error),
            "stats": (stats.received, stats.filtered, stats.dropped, stats.delivered, stats.branch_delivered,
                      stats.step_errors),
        }


def sides(tmp: Path, config: str, chunks: list[list[bytes]], trusted: dict = TRUSTED, rids: list[Rids] | None = None,
          **usage_caps: int) -> tuple[Side, Side]:
    """Both ways, compared: the Python side and the hot side."""
    python, hot = Side(tmp / "python", config, False, **usage_caps), Side(tmp / "hot", config, True, **usage_caps)
    assert hot.hot is not None
    python.feed(chunks, trusted, rids)
    hot.feed(chunks, trusted, rids)
    a, b = python.state(), hot.state()
    assert a["file"].decode(errors="replace").splitlines() == b["file"].decode(errors="replace").splitlines()
    assert a == b
    assert python.pipeline.stats.hot_path == 0
    return python, hot


def compare(tmp: Path, config: str, chunks: list[list[bytes]], trusted: dict = TRUSTED,
            rids: list[Rids] | None = None) -> int:
    """Both ways; returns how many records the hot path took."""
    return sides(tmp, config, chunks, trusted, rids)[1].pipeline.stats.hot_path


# --- lines with what the hot path must leave to Python: secrets, metric and trace shapes, odd JSON ---

secret_values = st.sampled_from(["sk-" + "a1B2" * 5, "Bearer abcdefgh12345678", "AKIA" + "ABCDEFGHIJKLMNOP",
                                 "eyJabcdefghij.eyJabcdefghij.abcdefghijkl", "internal-1234", "password=hunter2",
                                 "my token: abc", "x" * 40, "naïve café ☕ résumé", "task-1234567890abcdefghij"])
plain_keys = st.sampled_from(["agent", "duration_ms", "model", "tokens", "session_id", "seq", "user", "data", "step",
                              "tool", "latency_ms", "error"])
keys = st.sampled_from(["agent", "duration_ms", "model", "tokens", "tool", "usage", "latency_ms", "hook", "span_data",
                        "eventType", "type", "object", "span_id", "trace_id", "session_id", "session", "password",
                        "apiKey", "X-Api-Key", "token_count", "attributes", "gen_ai.usage.input_tokens", "error",
                        "record", "_pid", "pid", "user", "data", "seq"])
agent_values = st.one_of(st.sampled_from(["planner", "writer", "", "a" * 200]), values)
tokens = st.one_of(st.dictionaries(st.sampled_from(["prompt", "completion", "input", "output", "in", "out", "total",
                                                    "x"]),
                                   st.one_of(st.integers(-5, 10**6), st.floats(0, 1e6), st.text(max_size=3),
                                             st.booleans()), max_size=4),
                   st.integers(-5, 10**6), st.floats(allow_nan=False, allow_infinity=False), st.none())
safe_text = st.text(st.characters(min_codepoint=0x20, blacklist_categories=("Cs",)), max_size=20)
numbers = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**63), 2**63 - 1),
                    st.integers(-10**8, 10**8).map(lambda n: n / 100),
                    st.integers(-10**8, 10**8).map(lambda n: n / 1000),
                    st.sampled_from([0.001, 0.0001, 1e15, 1e16, 123456789012345.6, 1.5, 100.0, -0.0, 2.5e-5]))
raw_numbers = st.sampled_from(["1.50", "1e3", "1E-2", "-0", "0.000123", "123456789012345678", "1234567890123456789",
                               "12345678901234567890", "3.141592653589793", "0.1", "-12.0"])
raw_strings = st.sampled_from([r'"a\/b"', r'"\u0041"', r'"\u001f"', r'"\u001F"', r'"\n\t\"\\"', r'"\ud83d\ude00"',
                               '"tab\there"', r'"\u00e9"', '"12345678901234567890"', r'"1234\u00011234567890123456"'])


def _dumps(value: object) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # an integer beyond 64 bits
        return json.dumps(value)


@st.composite
def hot_lines(draw: st.DrawFn) -> bytes:
    valid = draw(st.integers(0, 9)) > 0  # most lines in the shape the hot path takes, so its checks are reached
    level = draw(st.sampled_from(["info", "debug", "warn", "trace", "inf", "warning", "error", "fatal", "err"] if valid
                                 else ["panic", "INFO", "nope"]))
    time = draw(st.sampled_from(["2026-11-29T10:11:12.123Z", "2026-11-29T10:11:12Z", "2026-11-29T10:11:12.1234567Z",
                                 "2024-02-29T00:00:00.5Z", "0999-12-31T23:59:59.999999Z"] if valid else
                                ["2026-02-29T00:00:00.5Z", "2026-11-29T10:11:60.1Z", "0000-01-01T00:00:00.1Z",
                                 "2026-11-29T10:11:12.Z", "2026-11-29t10:11:12.1Z", "2026-11-29T10:11:12.1+00:00"]))
    message = draw(st.one_of(st.text(max_size=30), safe_text, safe_text, secret_values))
    ascii_only = draw(st.integers(0, 4)) == 0  # json.dumps' default: \uXXXX escapes, which Python takes
    text = json.dumps if ascii_only else _dumps
    fields = [("time", text(time)), ("level", text(level)), ("message", text(message))]
    for _ in range(draw(st.integers(0, 5))):
        key = draw(st.one_of(plain_keys, plain_keys, keys, safe_text, st.text(max_size=8)))
        if any(key == k for k, _ in fields) and draw(st.integers(0, 4)):
            continue  # a duplicate key now and then
        kind = draw(st.sampled_from(["value", "safe", "agent", "tokens", "number", "number", "raw", "rawstr",
                                     "secret"]))
        value = {"value": lambda: _dumps(draw(values)),
                 "safe": lambda: text(draw(safe_text)),
                 "secret": lambda: text(draw(secret_values)),
                 "agent": lambda: _dumps(draw(agent_values)),
                 "tokens": lambda: _dumps(draw(tokens)),
                 "number": lambda: _dumps(draw(numbers)),
                 "raw": lambda: draw(raw_numbers),
                 "rawstr": lambda: draw(raw_strings)}[kind]()
        if kind == "value" and key in ("tokens", "duration_ms", "latency_ms"):
            value = _dumps(draw(st.one_of(tokens, numbers)))
        elif kind == "value" and key in ("tool", "model", "error"):  # names, and errors true or not
            value = _dumps(draw(st.one_of(agent_values, st.sampled_from(["", 0, 0.0, -0.0, 1, 2.5, False, True, None,
                                                                        [], {}, [0], {"a": None}, "0"])))) \
                if draw(st.booleans()) else (" {} " if draw(st.booleans()) else "[ ]")
        fields.append((text(key), value))
    if draw(st.booleans()):
        fields = draw(st.permutations(fields))
    named = [(k if k.startswith('"') else text(k), v) for k, v in fields]
    sep, colon = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,\t", " : ")]))
    return ("{" + sep.join(f"{k}{colon}{v}" for k, v in named) + "}").encode()


# a connection's peer fields: the kernel's numbers, and the process name the client chose
# (prctl(PR_SET_NAME): up to 15 bytes of anything, a secret-looking one included)
peers = st.fixed_dictionaries({
    "_pid": st.integers(1, 2**22), "_uid": st.integers(0, 2**32 - 2), "_gid": st.integers(0, 2**32 - 2),
    "_comm": st.one_of(st.sampled_from(["Bearer abcdefgh", "password=hunter", "token: abc", "internal-1234"]),
                       st.sampled_from(["agent", "python3", "", "naïve ☕"]), safe_text)})


@pytest.mark.parametrize("config", list(CONFIGS))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(chunks=st.lists(st.lists(st.one_of(hot_lines(), any_lines(), dialect_lines, role_lines()), min_size=1,
                                max_size=40),
                       min_size=1, max_size=4), trusted=st.one_of(peers, st.just(TRUSTED)), acked=st.booleans())
def test_hot_and_python_paths_make_the_same_files_and_counts(tmp_path_factory: pytest.TempPathFactory, config: str,
                                                             chunks: list[list[bytes]], trusted: dict,
                                                             acked: bool) -> None:
    # acked: each chunk an ack batch's lines (the second and fourth sent again), ending with their _rid
    rids = [Rids(f"0a1b2c3d4e5f6a7b:{i // 2}:", 0, i % 2 == 1) for i in range(len(chunks))] if acked else None
    compare(tmp_path_factory.mktemp("cmp"), CONFIGS[config], chunks, trusted, rids)


def test_the_hot_path_takes_the_records_agents_send(tmp_path: Path) -> None:
    """A comparison that compares nothing would pass too: the bench's records go the hot way."""
    from logd.bench import make_records

    chunk = make_records(500, 1).splitlines()
    assert any(b'"level":"error"' in line for line in chunk)  # each agent's last error: handed to usage
    assert compare(tmp_path, "", [chunk]) == len(chunk)


def _must_take(plain: list[bool]) -> int:
    """How many of a chunk's lines the compiled path must take: the plain ones, up to the first
    run of lines for Python long enough that the rest of the chunk goes to Python unasked."""
    taken = misses = 0
    for hot in plain:
        if misses >= hotpath._GIVE_UP_AFTER:
            break
        taken, misses = (taken + 1, 0) if hot else (taken, misses + 1)
    return taken


@pytest.mark.parametrize("dialect", list(DIALECTS))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_every_dialect_takes_the_hot_path_and_is_written_as_python_writes_it(
        tmp_path_factory: pytest.TempPathFactory, dialect: str, data: st.DataObject) -> None:
    """Issue 31: zerolog, zap, slog, python-json-logger, json.dumps, structlog and logd's client,
    each as its producer writes it (other key orders, time offsets and epochs, level and message
    aliases, \\uXXXX escapes, long floats), make the same file and counts both ways, and the
    compiled path takes every record of theirs that is plain (not an error level, a level
    spelling logd does not know or a duration below 1e-5 s): a fall back to Python fails here."""
    pairs = data.draw(st.lists(DIALECTS[dialect], min_size=1, max_size=40), label="lines")
    taken = compare(tmp_path_factory.mktemp("dialect"), "", [[line for line, _ in pairs]])
    assert taken >= _must_take([plain for _, plain in pairs])


def test_epoch_times_are_rounded_as_datetime_fromtimestamp_rounds_them(tmp_path: Path) -> None:
    """Float epochs (zap's ts: seconds; ms, µs and ns by magnitude) become microseconds exactly as
    datetime.fromtimestamp makes them (half to even, in doubles), integer ones as
    _format_epoch_int floors them: 12,000 of each kind across their ranges, ties included."""
    import random

    rng = random.Random(31)
    second = [rng.uniform(-2e9, 7e9) for _ in range(3000)]
    ties = [rng.randrange(-10**15, 10**15) / 2**21 for _ in range(1000)]  # many x.5 µs exactly
    scaled = [rng.uniform(1e11, 9e17) * rng.choice([1, -0.01]) for _ in range(2000)]  # ms, µs, ns
    floats = [x for x in second + ties + scaled if -62135596800 < x < 253402300799 or abs(x) >= 1e11]
    ints = [rng.randrange(-62135596800, 253402300799) for _ in range(3000)] + \
           [rng.randrange(-10**18, 10**18 - 1) for _ in range(3000)] + [-1, 0, 10**11 - 1, 10**11, 10**17 - 1, 10**17]
    lines = [b'{"ts":%s,"level":"info","msg":"m"}' % orjson.dumps(x) for x in floats]
    lines += [b'{"level":"info","ts":%s,"msg":"m"}' % go_float(x).encode() for x in second]  # zap: no exponent
    lines += [b'{"time":%d,"level":"info","message":"m"}' % x for x in ints]
    chunks = [lines[i:i + 500] for i in range(0, len(lines), 500)]
    taken = compare(tmp_path, "", chunks)
    assert taken >= 0.98 * len(lines)  # the others are before year 1 or after 9999: Python's


def test_orjson_writes_the_floats_the_hot_path_keeps_as_repr_does() -> None:
    """The compiled path keeps a float of 16-17 digits when it is Python's repr of its double
    (_hotpath.c shortest_text), in [1e-4, 1e16): that is what orjson writes there, on 60,000
    doubles from their bits and from decimal magnitudes (checked on 1.9 million before)."""
    import random
    import struct

    rng = random.Random(17)
    doubles = [struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0] for _ in range(30_000)]
    doubles += [rng.uniform(-1e4, 1e4) * 10.0 ** rng.randint(-8, 12) for _ in range(30_000)]
    kept = [x for x in doubles if 1e-4 <= abs(x) < 1e16]
    assert len(kept) > 20_000
    assert [orjson.dumps(x) for x in kept] == [repr(x).encode() for x in kept]


def _loguru_envelopes_for_python() -> list[str]:
    """loguru's serialize=True envelope in the shapes record._from_loguru flattens otherwise than
    the compiled path would: an exception, a field it renames, a time without its timestamp,
    an empty path (then the file's name), a top-level key it drops."""
    record = {"elapsed": {"repr": "0:00:01", "seconds": 1.5}, "exception": None, "extra": {"agent": "a"},
              "file": {"name": "a.py", "path": "/srv/a.py"}, "function": "run",
              "level": {"icon": "i", "name": "INFO", "no": 20}, "line": 7, "message": "m", "module": "a",
              "name": "a", "process": {"id": 1, "name": "MainProcess"}, "thread": {"id": 2, "name": "MainThread"},
              "time": {"repr": "2026-11-29 10:11:12+00:00", "timestamp": 1764411072.5}}
    odd = [{"exception": {"type": "ValueError", "value": "bad", "traceback": True}},
           {"extra": {"message": "x"}}, {"extra": {"caller": "x"}}, {"time": {"repr": "2026-11-29 10:11:12+00:00"}},
           {"file": {"name": "a.py", "path": ""}}, {"function": None}, {"line": "7"}]
    lines = [json.dumps({"text": "m\n", "record": {**record, **change}}) for change in odd]
    return lines + [json.dumps({"text": "m\n", "record": record, "host": "h"})]


def test_lines_the_hot_path_leaves_to_python(tmp_path: Path) -> None:
    base = '{"time":"2026-11-29T10:11:12.123Z","level":"info","message":"m"'
    left = [
        base + ',"password":"x"}',  # a secret key
        base + ',"data":{"apiKey":"x"}}',  # nested
        base + ',"note":"sk-' + "a" * 20 + '"}',  # a pattern
        '{"time":"2026-11-29T10:11:12.123Z","level":"info","message":"password=hunter2"}',  # key=value text
        base + ',"tokens":{"input":1.5}}',  # float tokens: Python sums them in order
        base + ',"agent":{"name":"a"}}',  # an agent labelled by its str()
        base + ',"a":1,"a":2}',  # a duplicate key
        base + ',"x":1.50}',  # a number orjson writes otherwise
        base + ',"x":"\\ud800"}',  # a lone surrogate: Python flags it
        base + ',"x":"\\x"}',  # not an escape
        base + ',"x":12345678901234567890}',  # beyond 64 bits
        base + ',"x":"1234567890\\u00311234567890"}',  # 20 digits as sent, with an escape's own
        *([] if local_zone_is_utc() else  # no offset: the machine's local time, taken where that is UTC
          ['{"time":"2026-11-29T10:11:12","level":"info","message":"m"}']),
        '{"time":"1969-11-29T10:11:12","level":"info","message":"m"}',  # the same, before the years checked
        '{"time":"2026-11-29t10:11:12.5Z","level":"info","message":"m"}',  # normalize_time keeps the "t"
        '{"time":"2026-11-29T10:11:12.5 Z","level":"info","message":"m"}',  # whitespace
        '{"time":"2026-11-29T10:11:12+24:00","level":"info","message":"m"}',  # not an offset timezone() takes
        '{"time":"0001-01-01T00:30:00+01:00","level":"info","message":"m"}',  # before year 1 in UTC
        '{"time":"1764410000","level":"info","message":"m"}',  # an epoch as text
        '{"time":1e400,"level":"info","message":"m"}',  # beyond float range
        '{"time":-99999999999,"level":"info","message":"m"}',  # seconds before year 1
        '{"ts":1764410000.1234567,"t":1.7644100001234567e9,"level":"info","msg":"m"}',  # t: orjson rewrites it
        '{"time":"2026-11-29T10:11:12Z","level":2.0,"message":"m"}',  # a float level
        '{"time":"2026-11-29T10:11:12Z","level":"İnfo","message":"m"}',  # lower() beyond ASCII
        '{"time":"2026-11-29T10:11:12Z","level":"info","msg":{"k":1}}',  # a message that is not text
        '{"level":"info","message":"m"}',  # no time: the time it arrived
        base + ',"_pid":1}',  # a reserved key
        *_loguru_envelopes_for_python(),
    ]
    chunk = [line.encode() for line in left]
    assert compare(tmp_path, "", [[line] for line in chunk]) == 0


def test_lines_a_step_reads_are_written_by_the_hot_path_and_read_in_python(tmp_path: Path) -> None:
    """Issue 27: a trace or usage shape no longer sends its line to Python's parser and
    redactor; the steps that read it (and the trace branch) get its record, the file its line."""
    base = '{"time":"2026-11-29T10:11:12.123Z","level":"info","message":"m"'
    read = [base + ',"hook":"BeforeAgentRun","session_id":"s","agent_id":"a"}',
            '{"timestamp":"2026-11-29T10:11:13.5Z","hook":"AfterAgentRun","session_id":"s","agent_id":"a"}',
            base + ',"usage":{"input_tokens":1},"agent":"a"}',
            '{"time":"2026-11-29T10:11:12.123Z","level":"debug","message":"m","hook":"BeforeAgentRun",'
            '"session_id":"s"}']  # under the floor: in its session, not in the file
    assert compare(tmp_path, "", [[line.encode() for line in read]]) == len(read)
    assert len((tmp_path / "hot" / "traces").glob("*.jsonl").__next__().read_bytes().splitlines()) == 3


def test_a_chunk_mixing_both_keeps_its_order(tmp_path: Path) -> None:
    good = b'{"time":"2026-11-29T10:11:12.123Z","level":"info","message":"n%d","agent":"a"}'
    bad = b'{"time":"2026-11-29T10:11:12.123Z","level":"info","message":"n%d","password":"x"}'
    chunk = [(good if i % 3 else bad) % i for i in range(300)]
    assert compare(tmp_path, "", [chunk]) == 200
    seen = [orjson.loads(line)["message"] for line in (tmp_path / "hot" / "agent.log").read_bytes().splitlines()]
    assert seen == [f"n{i}" for i in range(300)]


def test_connections_whose_fields_redaction_touches_take_the_python_path(tmp_path: Path) -> None:
    chunk = [b'{"time":"2026-11-29T10:11:12.123Z","level":"info","message":"m"}']
    assert compare(tmp_path, CONFIGS["own rules"], [chunk]) == 0  # "pid" is secret: _pid would be redacted


@pytest.mark.parametrize("comm", ["Bearer abcdefgh", "password=hunter"])  # 15 bytes: the kernel's limit
def test_a_process_named_like_a_secret_takes_the_python_path_and_is_redacted(tmp_path: Path, comm: str) -> None:
    """Issue 26, finding 7: the peer fields were appended unchecked: a client that named its
    process "Bearer abcdefgh" got "_comm":"Bearer abcdefgh" on the hot path, [REDACTED] on Python's."""
    chunk = [b'{"time":"2026-11-29T10:11:12.123Z","level":"info","message":"m%d"}' % i for i in range(3)]
    assert compare(tmp_path, "", [chunk], {**TRUSTED, "_comm": comm}) == 0
    assert comm.encode() not in (tmp_path / "hot" / "agent.log").read_bytes()
    assert b'"_comm":"' + (b"[REDACTED]" if comm.startswith("Bearer") else b"password=[REDACTED]") \
        in (tmp_path / "hot" / "agent.log").read_bytes()


def test_text_fields_with_a_key_value_secret_take_the_python_path(tmp_path: Path) -> None:
    """Issue 26, finding 4: names, errors and statuses are text the key=value rule redacts."""
    base = '{"time":"2026-11-29T10:11:12.123Z","level":"info","message":"m"'
    left = [base + ',"agent":"planner password=hunter2"}', base + ',"model":"gpt token: abc"}',
            base + ',"error":{"message":"login failed","data":"password=hunter2"}}',
            base + ',"step":{"status":"api_key=abc"}}', base + ',"exception.message":"secret=abc"}']
    taken = compare(tmp_path, "", [[line.encode() for line in left]])
    assert taken == 0
    assert b"hunter2" not in (tmp_path / "hot" / "agent.log").read_bytes()


def test_each_odd_token_in_an_otherwise_hot_line(tmp_path: Path) -> None:
    """Every number, string, time and level above, alone in a line the hot path would take:
    wherever it goes, the records and counts are the same as Python's."""
    head = {"time": '"2026-11-29T10:11:12.123Z"', "level": '"info"', "message": '"m"'}
    tokens = (list(raw_numbers.elements) + list(raw_strings.elements)  # type: ignore[attr-defined]
              + [json.dumps(v) for v in secret_values.elements]  # type: ignore[attr-defined]
              + ["0.0", "-0.0", "0.001", "0.0012", "0.00012", "123456789012345.0", "1234567890123456.0",
                 "123456789012345.6", "12345678901234.56", "1e400", "true", "false", "null", "[]", "{}",
                 '[1,"a",{"b":null}]', '{"a":{"b":[1.5]}}', '"é"', '"\u2028"', '"\x7f"'])
    def line(**fields: str) -> bytes:
        return ("{" + ",".join(f'"{k}":{v}' for k, v in {**head, **fields}.items()) + "}").encode()

    chunk = []
    for token in tokens:
        chunk += [line(x=token), line(message=token)]
    for name, odd in (("time", ["2026-11-29T10:11:12Z", "2024-02-29T23:59:59.9999999Z", "2026-02-29T00:00:00.1Z",
                                "2026-11-29T24:00:00.1Z", "2026-11-29T10:11:60.1Z", "2026-11-29T10:11:12.Z",
                                "0001-01-01T00:00:00.1Z", "0000-01-01T00:00:00.1Z", "2026-11-29 10:11:12.1Z"]),
                      ("level", ["inf", "wrn", "err", "ftl", "critical", "INFO", "Info", "", "notice", "debug"])):
        chunk += [line(**{name: json.dumps(value)}) for value in odd]
    # each line read alone (a run of lines Python takes sends the rest of its read to Python)
    assert compare(tmp_path, "", [[line] for line in chunk]) >= 35  # the others hold something only Python decides


def test_tokens_without_a_known_field_add_nothing(tmp_path: Path) -> None:
    """Found by the comparison at 500 examples: {} made a total of 0 on the hot path."""
    base = '{"time":"2026-11-29T10:11:12.123Z","level":"info","message":"","agent":"a","tokens":%s}'
    chunk = [(base % tokens).encode() for tokens in ("{}", '{"x":1}', '{"total":-1}', '{"input":2,"total":5}', "-3")]
    assert compare(tmp_path, 'level = "warn"', [chunk]) == len(chunk)


# --- issue 31: tool calls, latencies, error records and ack batches on the compiled path ---

def _head(level: str, i: int, agent: str) -> str:
    return f'{{"time":"2026-11-29T10:11:12.123Z","level":"{level}","message":"m{i}","agent":"{agent}"'


def _usage_lines(n: int) -> list[bytes]:
    """Flat usage records as agents log them: a tool call (failed by its level or a true
    ``error``), a model call's latency, tokens; some of each alone."""
    errors = ['""', '"boom"', "0", "1", "null", "{}", '{"code":1}', "[]", "0.0", "false", "true", '" "']
    out = []
    for i in range(n):
        line = _head(("info", "warn", "debug", "error", "fatal")[i % 5], i, ("planner", "writer", "")[i % 3])
        if i % 4 != 3:
            line += ',"tool":"{}"'.format(("search", "fetch", "run_sql", "")[i % 4 + (i // 7) % 2])
        if i % 3 != 2:
            line += ',"error":' + errors[i % len(errors)]
        if i % 2:
            model, ms = ("null", '"gpt-4o"', '"claude"')[i % 3], ("120", "1.5", "-3", "250000")[i % 4]
            line += f',"model":{model},"latency_ms":{ms}'
        if i % 5 == 1:
            line += f',"tokens":{{"input":{i},"output":7}}'
        out.append((line + "}").encode())
    return out


@pytest.mark.parametrize("config", list(CONFIGS))
def test_tool_calls_latencies_and_tokens_are_counted_on_the_compiled_path(tmp_path: Path, config: str) -> None:
    """A record naming a tool took Python's path (usage read it whole): the compiled path now
    counts its tool call, its latency_ms by model and its tokens as usage._flat does, and hands
    each error record to usage (its agent's last error), with the same counts as Python's."""
    chunk = _usage_lines(240)
    python, hot = sides(tmp_path, CONFIGS[config], [chunk])
    if config != "own rules":  # its "pid" key makes every line of a peer with _pid Python's
        assert hot.pipeline.stats.hot_path == len(chunk)
        assert hot.usage.seen == 0  # counted by the compiled path, none decoded for the step
    usage = python.usage
    assert {outcome for _, _, outcome in usage.tool_calls} == {"ok", "error"}
    assert set(usage.latency) == {"gpt-4o", "claude"} and usage.last_error
    assert sum(usage.tool_calls.values()) == sum(1 for line in chunk if b'"tool":"' in line
                                                 and b'"tool":""' not in line)
    assert sum(python.agents.records.values()) == len(chunk)


def test_capped_labels_get_their_places_in_the_order_python_meets_them(tmp_path: Path) -> None:
    """Past max_models/max_tools names count as _other: which names got a place depends on the
    order usage met them, tokens and latency of one record before the next record's."""
    lines = [_head("info", 0, "a") + ',"model":"m1","latency_ms":5}',
             _head("info", 1, "a") + ',"model":"m2","tokens":3,"tool":"t1"}',
             _head("info", 2, "b") + ',"model":"m3","tokens":4,"latency_ms":6,"tool":"t2"}',
             _head("info", 3, "b") + ',"model":"m1","tokens":5,"tool":"t3","error":"x"}',
             _head("info", 4, "c") + ',"model":"m4","latency_ms":7,"tool":"t1"}']
    python, hot = sides(tmp_path, "", [[line.encode() for line in lines]], max_models=2, max_tools=2)
    assert hot.pipeline.stats.hot_path == len(lines) and hot.usage.seen == 0
    assert set(python.usage.latency) == {"m1", "_other"}
    assert ("b", "_other", "total") in python.usage.tokens and ("a", "m2", "total") in python.usage.tokens
    assert python.usage.tool_calls[("c", "t1", "ok")] == 1 and ("b", "_other", "error") in python.usage.tool_calls


def test_sampled_out_lines_leave_the_files_time_bounds(tmp_path: Path) -> None:
    """The file's time bounds (what `logd query --since` skips files by) are those of the lines
    sampling kept, not of the whole run."""
    at = '{"time":"2026-11-29T10:00:%02d.5Z","level":"info","message":"%s","agent":"a"}'
    chunk = [(at % (5, "same")).encode(), (at % (0, "same")).encode(), (at % (9, "same")).encode(),
             (at % (6, "other")).encode()]
    hot = sides(tmp_path, '[logging.sampling]\nenabled = true\ninitial = 1\nthereafter = 0', [chunk])[1]
    assert hot.pipeline.stats.hot_path == 4 and hot.pipeline.stats.dropped == {"sampled": 2}
    assert hot.state()["time bounds"] == ("2026-11-29T10:00:05.500000Z", "2026-11-29T10:00:06.500000Z")


@pytest.mark.parametrize("config", [*CONFIGS, "rid pattern"])
def test_ack_batches_take_the_compiled_path_with_their_rids(tmp_path: Path, config: str) -> None:
    """An ack batch's lines end with the peer's fields, then _rid and (sent again) _resent, on
    both paths; a redaction pattern that matches a _rid sends its lines to Python."""
    text = CONFIGS.get(config, '[logging.redact]\npatterns = ["s-1:7:1[0-9]"]')
    lines = _usage_lines(40) + [b'{"ts":1764410000.5,"level":"info","msg":"zap"}', b"not json",
                                b'{"time":"2026-11-29T10:11:12.123Z","level":"info","message":"m","password":"x"}']
    chunks = [lines[:20], lines[20:], lines[:30]]  # the last: the batch's first 30 lines sent again
    rids = [Rids("s-1:7:", 0, False), Rids("s-1:7:", 20, False), Rids("s-1:7:", 0, True)]
    hot = sides(tmp_path, text, chunks, TRUSTED, rids)[1]
    written = [orjson.loads(line) for line in (tmp_path / "hot" / "agent.log").read_bytes().splitlines()]
    ours = [r for r in written if r.get("_pid") == TRUSTED["_pid"]]
    assert len([r for r in ours if r.get("_resent")]) == len([r for r in ours if r["message"] in
                                                                {f"m{i}" for i in range(30)}]) // 2
    for record in ours:
        assert list(record)[-2:] == (["_rid", "_resent"] if record.get("_resent") else ["_comm", "_rid"])
        if record["_rid"] != "[REDACTED]":
            index = int(record["_rid"].removeprefix("s-1:7:"))
            assert index >= 40 or record["message"] == f"m{index}"
    taken = hot.pipeline.stats.hot_path
    if config == "rid pattern":  # the chunks holding s-1:7:10 to 19 went to Python
        below = {12, 17}  # debug, under the floor
        assert sum(r["_rid"] == "[REDACTED]" for r in ours) == 2 * (10 - len(below)) and 20 <= taken <= 23
    elif config != "own rules":  # there "pid" is secret: the peer's _pid is redacted, its lines Python's
        assert taken >= 40 + 30


def test_a_real_daemon_takes_its_clients_lines_the_hot_way_and_says_so(daemon, tmp_path: Path) -> None:
    """`logd run` with its default pipeline: canonical lines take the hot path, the others Python,
    all in the file in the order sent, and `logd status` counts the hot ones."""
    d = daemon()
    lines = []
    for i in range(300):
        if i % 10 == 0:  # an epoch second as text: Python's
            lines.append(orjson.dumps({"time": "1764411072.5", "levelname": "INFO", "message": f"n{i}", "seq": i}))
        else:
            lines.append(orjson.dumps({"time": "2026-11-29T10:11:12.5Z", "level": "debug" if i % 7 else "warn",
                                       "message": f"n{i}", "seq": i, "agent": "planner", "duration_ms": 12}))
    send(d.socket_path, b"\n".join(lines) + b"\n")
    log = tmp_path / "agent.log"
    expected = [i for i in range(300) if i % 10 == 0 or i % 7 == 0]  # level info: debug is filtered out
    wait_for(lambda: len([r for r in read_records(log) if "seq" in r]) >= len(expected), what="the records")
    status = orjson.loads(subprocess.run([sys.executable, "-m", "logd", "status", "--json", "--socket",
                                          str(d.socket_path)], capture_output=True, text=True, check=True).stdout)
    kept = [r for r in read_records(log) if "seq" in r]
    assert [r["seq"] for r in kept] == expected
    assert all(r["_pid"] > 0 and r["time"].endswith("Z") for r in kept)
    assert kept[1]["time"] == "2026-11-29T10:11:12.500000Z" and list(kept[1])[:3] == ["time", "level", "message"]
    assert status["hot_path"] == {"on": True, "records": 270, "trace_entries": 0}


@pytest.mark.parametrize(("zone", "winter", "summer", "taken"), [
    ("UTC", "2026-01-15T10:11:12.345000Z", "2026-07-15T10:11:12.345000Z", 20),
    ("Europe/Berlin", "2026-01-15T09:11:12.345000Z", "2026-07-15T08:11:12.345000Z", 0),
    ("Europe/London", "2026-01-15T10:11:12.345000Z", "2026-07-15T09:11:12.345000Z", 0)])  # UTC in winter only
def test_a_naive_time_takes_the_compiled_path_only_where_the_local_zone_is_utc(
        daemon, tmp_path: Path, zone: str, winter: str, summer: str, taken: int) -> None:
    """Issue 31: python-json-logger's asctime (logging's default: local time without an offset)
    is read as the machine's local time by both paths. In a zone that is UTC at every moment the
    compiled path takes it; in one with daylight saving Python converts it, by the date."""
    d = daemon(env={"TZ": zone})
    lines = [orjson.dumps({"asctime": f"2026-{month}-15 10:11:12,345", "levelname": "INFO", "name": "agent",
                           "message": f"n{i}", "seq": i}) for i, month in enumerate(["01", "07"] * 10)]
    send(d.socket_path, b"\n".join(lines) + b"\n")
    wait_for(lambda: len([r for r in read_records(tmp_path / "agent.log") if "seq" in r]) >= 20, what="the records")
    kept = [r for r in read_records(tmp_path / "agent.log") if "seq" in r]
    assert [r["time"] for r in kept] == [winter, summer] * 10
    assert _status(d)["hot_path"] == {"on": True, "records": taken, "trace_entries": 0}


def _status(d) -> dict:  # type: ignore[no-untyped-def]
    return orjson.loads(subprocess.run([sys.executable, "-m", "logd", "status", "--json", "--socket",
                                        str(d.socket_path)], capture_output=True, text=True, check=True).stdout)


def test_a_real_daemon_counts_tool_calls_and_errors_on_the_compiled_path(daemon, tmp_path: Path) -> None:
    """Issue 31: records naming a tool, and error records, sent to `logd run` take the compiled
    path (they took Python's: 0 of 200), and `logd status` shows what usage counted of them."""
    d = daemon()
    chunk = _usage_lines(200)
    send(d.socket_path, b"\n".join(chunk) + b"\n")
    kept = sum(1 for line in chunk if b'"level":"debug"' not in line)
    wait_for(lambda: len([r for r in read_records(tmp_path / "agent.log") if r.get("agent") != "logd"]) >= kept,
             what="the records")
    status = _status(d)
    assert status["hot_path"] == {"on": True, "records": 200, "trace_entries": 0}
    agents, records = status["usage"]["agents"], [orjson.loads(line) for line in chunk]
    searches = [r for r in records if r["agent"] == "planner" and r.get("tool") == "search"]
    failed = sum(1 for r in searches if r["level"] in ("error", "fatal") or r.get("error"))
    assert agents["planner"]["tool_calls"]["search"] == {"ok": len(searches) - failed, "error": failed} and failed
    last = [r for r in records if r["agent"] == "writer" and r["level"] in ("error", "fatal")][-1]
    assert agents["writer"]["last_error"]["message"].startswith(last["message"])
    assert status["usage"]["models"]["claude"]["calls"] == sum(
        1 for r in records if r.get("model") == "claude" and r["latency_ms"] >= 0)


def test_an_ack_client_takes_the_compiled_path_and_writes_what_python_writes(daemon, tmp_path: Path) -> None:
    """Issue 31: logd's own client with acks: every record on the compiled path (`hot_path.records`),
    each acknowledged, and the file byte for byte what the Python path writes (the same records
    to a logd as it runs when built without a C compiler)."""
    from logd.client import Sender

    records = [orjson.loads(line) for line in _usage_lines(300)]
    no_compiler = tmp_path / "no_compiler"
    no_compiler.mkdir()
    (no_compiler / "sitecustomize.py").write_text('import sys\nsys.modules["logd._hotpath"] = None\n')
    files = {}
    for name, env in (("hot", {}), ("python", {"PYTHONPATH": str(no_compiler)})):
        d = daemon(f'file = "{name}.log"\nlevel = "debug"', env=env)
        sender = Sender(d.socket_path, ack=True, stream="s1", batch_size=128)
        for record in records:
            sender.put(record)
        assert sender.flush(30) and sender.sent == len(records)  # every batch acknowledged
        sender.close()
        assert _status(d)["hot_path"]["records"] == (len(records) if name == "hot" else 0)
        d.stop()
        files[name] = [line for line in (tmp_path / f"{name}.log").read_bytes().splitlines()
                       if b'"agent":"logd"' not in line]
    assert files["hot"] == files["python"] and len(files["hot"]) == len(records)
    assert orjson.loads(files["hot"][-1])["_rid"].startswith("s1:")


def test_a_real_daemon_samples_and_rate_limits_on_the_compiled_path(daemon, tmp_path: Path) -> None:
    """Issue 31: sampling or a rate limit turned the compiled path off; now they decide on what it
    gives them (agent, level, message) and `logd status` counts both the records and the drops."""
    d = daemon('file = "agent.log"', "[logging.sampling]\nenabled = true\ninitial = 5\nthereafter = 0\n"
                                     "tick = 3600\nburst = 50\ninterval = 3600\n")
    same = [_head("info", 0, "a") + ',"tool":"search"}'] * 200  # one message: sampled
    each = [_head("info", i, "b") + "}" for i in range(100)]  # distinct messages: rate limited
    send(d.socket_path, "\n".join(same + each).encode() + b"\n")
    wait_for(lambda: len([r for r in read_records(tmp_path / "agent.log") if r.get("agent") in ("a", "b")]) >= 55,
             what="the records")
    status = _status(d)
    assert status["hot_path"] == {"on": True, "records": 300, "trace_entries": 0}
    assert status["sampled"] == {"info": 195} and status["agents"]["b"]["rate_limited"] == 50
    assert status["usage"]["agents"]["a"]["tool_calls"]["search"] == {"ok": 200}  # counted before sampling
    written = [r for r in read_records(tmp_path / "agent.log") if r.get("agent") in ("a", "b")]
    assert [r["message"] for r in written] == ["m0"] * 5 + [f"m{i}" for i in range(50)]


def test_a_failing_question_to_python_costs_no_record_and_is_reported(tmp_path: Path) -> None:
    """A bug in what the compiled path asks Python (here: key classification raising) sends the
    chunk through Python and is reported once as logd's own error record."""
    side = Side(tmp_path / "broken", "", True)
    assert side.hot is not None

    def broken(key: str) -> int:
        raise RuntimeError("classify broke")

    side.hot._fast.__init__(aliases={}, actions={}, classify_key=broken, value_clean=None,
                            message_clean=None, min_len=0, redact=False)
    chunk = [b'{"time":"2026-11-29T10:11:12.123Z","level":"info","message":"m%d"}' % i for i in range(5)]
    side.feed([chunk, chunk], TRUSTED)
    written = [orjson.loads(line) for line in (tmp_path / "broken" / "agent.log").read_bytes().splitlines()]
    assert [r["message"] for r in written if r.get("_pid") == 4242] == [f"m{i}" for i in range(5)] * 2
    errors = [r for r in written if r.get("event") == "hotpath"]
    assert len(errors) == 1 and "classify broke" in errors[0]["error"]


# --- issue 26, finding 7: the extension itself ---

def _in_a_child(code: str) -> subprocess.CompletedProcess:
    """``code`` in its own interpreter: a crash there is a failed assertion here, not a dead suite."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_the_extension_refuses_bad_arguments_instead_of_crashing() -> None:
    """A negative start, or run before __init__ (or after a failed one), segfaulted; a quiet
    entries' rule of the wrong shape is refused whole."""
    ran = _in_a_child("""
from logd import _hotpath, hotpath
from logd.steps import agents, level

errors = []
def expect(error, call):
    try:
        call()
    except error as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    else:
        raise SystemExit(f"no {error.__name__}")

hot, _ = hotpath.build([(agents.SPEC, agents.AgentMetrics()), (level.SPEC, level.level_filter("info"))])
line = [b'{"time":"2026-11-29T10:11:12.123Z","level":"info","message":"m"}']
expect(ValueError, lambda: hot._fast.run(line, -1, 1, b""))
expect(ValueError, lambda: hot._fast.run(line, 0, -5, b""))
bare = _hotpath.FastPath.__new__(_hotpath.FastPath)
expect(RuntimeError, lambda: bare.run(line, 0, 1, b""))
failed = _hotpath.FastPath.__new__(_hotpath.FastPath)
expect(TypeError, lambda: failed.__init__(aliases=1))
expect(RuntimeError, lambda: failed.run(line, 0, 1, b""))
assert hot._fast.run(line, 0, 99, b"")[1:4] == (1, 1, 0)  # a stop past the end is the end
base = dict(aliases={}, actions={}, classify_key=len, value_clean=None, message_clean=None, min_len=0, redact=False)
rule = ("agk", "hook", ("BeforeAgentRun",), (), "session_id", "agent_id", "agent", "state", (), "type", "x.",
        "agent_result", "error")
entries = _hotpath.FastPath.__new__(_hotpath.FastPath)
expect(TypeError, lambda: entries.__init__(**base, entries=rule[:5]))  # a rule cut short
expect(TypeError, lambda: entries.__init__(**base, entries=rule[:2] + ((1,),) + rule[3:]))  # a hook not text
expect(ValueError, lambda: entries.__init__(**base, entries=rule[:2] + (("h",) * 9,) + rule[3:]))  # too many
entries.__init__(**base, entries=rule)
entries.__init__(**base, entries=None)  # set again, then none: nothing left of the rule
print("|".join(errors))
""")
    assert ran.returncode == 0, ran.stderr
    assert "ValueError: run: start and stop must be >= 0" in ran.stdout
    assert "RuntimeError: FastPath.run before FastPath.__init__ succeeded" in ran.stdout
    assert "TypeError: entries: hooks and nested names are str" in ran.stdout
    assert "ValueError: entries: too many hooks or nested names" in ran.stdout


def test_cache_slots_are_seeded_per_process_and_use_every_slot() -> None:
    """The caches' hash had a fixed seed (keys that collide could be worked out ahead and sent:
    2.5-5.8x slower) and put every key in an odd home slot (half the table unused)."""
    keys = [f"key{n}".encode() for n in range(4096)]
    code = "import sys; from logd import _hotpath; print(*(_hotpath.home_slot(k.encode()) for k in sys.argv[1:]))"
    runs = [subprocess.run([sys.executable, "-c", code, *(k.decode() for k in keys[:64])], capture_output=True,
                           text=True, check=True, timeout=60).stdout.split() for _ in range(2)]
    assert runs[0] != runs[1]  # another process, other slots
    from logd import _hotpath
    slots = [_hotpath.home_slot(k) for k in keys]
    assert {s % 2 for s in slots} == {0, 1}
    assert len(set(slots)) > 2500  # 4,096 keys over 8,192 slots: ~3,200 distinct when spread evenly


def test_a_client_that_names_its_process_like_a_secret_is_redacted_by_a_real_daemon(daemon, tmp_path: Path) -> None:
    """Issue 26, finding 7, end to end: a client renames itself (prctl PR_SET_NAME, what
    /proc/PID/comm then says) and sends lines in logd's shape; before, the hot path appended
    "_comm":"Bearer abcdefgh" while the Python path wrote [REDACTED]."""
    d = daemon()
    client = f"""
import ctypes, socket
ctypes.CDLL(None, use_errno=True).prctl(15, b"Bearer abcdefgh", 0, 0, 0)  # PR_SET_NAME
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect({str(d.socket_path)!r})
s.sendall(b"".join(b'{{"time":"2026-11-29T10:11:12.5Z","level":"info","message":"named %d"}}\\n' % i
                   for i in range(50)))
s.shutdown(socket.SHUT_WR)
s.recv(1)
"""
    subprocess.run([sys.executable, "-c", client], check=True, timeout=60)
    log = tmp_path / "agent.log"
    records = wait_for(lambda: (lambda rs: len(rs) == 50 and rs)(
        [r for r in read_records(log) if str(r.get("message", "")).startswith("named ")]), what="the records")
    assert {r["_comm"] for r in records} == {"[REDACTED]"}
    assert b"abcdefgh" not in log.read_bytes()


def _metrics_text(side: Side) -> bytes:
    """What /metrics shows of the counting steps, from their specs, as the daemon renders it."""
    from prometheus_client import CollectorRegistry, generate_latest

    from logd.steps.agents import SPEC as AGENTS
    from logd.usage import SPEC as USAGE

    class Steps:
        def collect(self):  # type: ignore[no-untyped-def]
            for spec, step in ((AGENTS, side.agents), (USAGE, side.usage)):
                assert spec.figures is not None and spec.families is not None
                yield from spec.families(spec.figures(step))

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Steps())  # type: ignore[arg-type]
    return generate_latest(registry)


def _as_sent(records: list[dict], client_head: bool) -> list[bytes]:
    """Span records as an exporter writes them, or with the head logd.client.tracing gives
    each span (time = its end, level, message)."""
    out = []
    for record in records:
        if client_head and "time" not in record and "timestamp" not in record:
            end = str(record.get("ended_at") or record.get("started_at") or "2026-11-29T17:05:00Z")
            record = {"time": end.replace("+00:00", "Z"), "level": "error" if record.get("error") else "info",
                      "message": "span", **record}
        out.append(orjson.dumps(record))
    return out


@pytest.mark.parametrize("config", list(CONFIGS))
def test_framework_trace_records_make_the_same_files_sessions_and_metrics_both_ways(tmp_path: Path,
                                                                                     config: str) -> None:
    """Issue 27: trace records of every framework sample (AgenticGoKit hooks, Koog events,
    OpenAI Agents SDK spans and trace objects, spans as logd.client sends them) give the
    same log file, session files and /metrics on the compiled path as on Python's, and the
    compiled path takes the hooks and the spans in logd's shape."""
    from framework_samples import agk_entries, koog_events, openai_items

    from trace_samples import agk_session, koog_run, span_trace

    records = [*agk_session(), *agk_entries(), *koog_run(), *koog_events(fail=True), *span_trace(group_id="conv-7"),
               *openai_items()]
    chunks = [_as_sent(records, False), _as_sent(span_trace("trace_x"), True),
              _as_sent(openai_items("trace_" + "b2" * 16), True)]
    python, hot = Side(tmp_path / "python", CONFIGS[config], False), Side(tmp_path / "hot", CONFIGS[config], True)
    python.feed(chunks, TRUSTED)
    hot.feed(chunks, TRUSTED)
    assert python.state() == hot.state()
    assert _metrics_text(python) == _metrics_text(hot)
    assert b"logd_agent_trace_errors" in _metrics_text(hot)
    assert len(python.state()["sessions"]) >= 6
    # the SDK's span ids hold 24-digit runs: the compiled path leaves such lines to Python (64-bit rule)
    # ("own rules" makes "pid" secret: every line of a peer with a _pid goes to Python)
    clean_spans = sum(1 for line in chunks[1] if b'"level":"info"' in line)
    assert hot.pipeline.stats.hot_path >= (len(agk_session()) + clean_spans if config != "own rules" else 0)


def test_a_burst_of_lines_left_to_python_does_not_take_the_rest_of_the_chunk(tmp_path: Path) -> None:
    """Issue 31: 8 lines in a row that Python takes (an epoch second as text; loguru's envelope
    before the compiled path took it, python-json-logger's asctime alone where the local zone is
    not UTC) used to send the
    rest of their read to Python; now Python takes stretches, and the first line in logd's
    shape after one ends them."""
    burst = [b'{"time": "1764411072.5", "levelname": "INFO", "message": "b%d"}' % i for i in range(8)]
    good = [b'{"time":"2026-11-29T10:11:12.123Z","level":"info","message":"n%d","agent":"a"}' % i for i in range(100)]
    # the 8 misses, then a stretch of 8 lines without a try: the other 92 take the hot path
    assert compare(tmp_path, "", [burst + good]) == 92


# --- quiet trace entries: AgenticGoKit hook entries no step needs the record of (QuietEntries) ---

HOOKS = ["BeforeEventHandling", "AfterEventHandling", "BeforeAgentRun", "AfterAgentRun", "AgentError"]


def _entry(i: int, hook: str, session: object = "sess-1", agent_id: object = "planner", **extra: object) -> dict:
    """An entry as AgenticGoKit's trace logger writes one (internal/core/trace.go's fields)."""
    return {"timestamp": f"2026-11-29T10:{i // 60 % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z", "type": "trace",
            "event_id": f"ev-{i // 4}", "session_id": session, "agent_id": agent_id, "hook": hook, **extra}


def _quiet_run(n: int, session: str = "sess-1", first: int = 0) -> list[bytes]:
    """``n`` entries that report nothing: run hooks in pairs, event hooks between them."""
    return [orjson.dumps(_entry(first + i, HOOKS[i % 4], session, ["planner", "writer"][i // 4 % 2],
                                state={"message": "Analyze this data", "step": i})) for i in range(n)]


@st.composite
def entry_lines(draw: st.DrawFn) -> bytes:
    """Hook entries near the line between quiet and not: any hook spelling, a session that is
    text or not (escaped, empty), agents of any type, a state reporting usage or not, a Koog
    type, the keys that report something, any level, spaces and ASCII escapes as json.dumps writes."""
    record = _entry(draw(st.integers(0, 3599)), draw(st.sampled_from(HOOKS + ["OnStart", "beforeagentrun", ""])),
                    draw(st.one_of(st.sampled_from(["sess-1", "sess-2", "séance ☕", "", "a/../b", 's"q', "x" * 300]),
                                   st.integers(0, 3), st.none())),
                    draw(st.one_of(st.sampled_from(["planner", "writer", "", "a" * 300]), st.none(),
                                   st.integers(0, 2))))
    if draw(st.booleans()):
        inner = st.dictionaries(st.sampled_from(["usage", "tokens", "message", "model", "data"]),
                                st.one_of(st.integers(0, 9), st.just({"input_tokens": 3})), max_size=2)
        record["state"] = draw(st.one_of(  # SimpleState: {"data": {...}, "meta": {...}}
            st.dictionaries(st.sampled_from(["message", "usage", "tokens", "data", "meta", "plan", "Usage"]),
                            st.one_of(st.text(max_size=5), st.integers(0, 9), inner), max_size=3),
            st.text(max_size=5), st.none(), st.lists(st.just("usage"), max_size=1)))
    if draw(st.integers(0, 3)) == 0:
        record["type"] = draw(st.sampled_from(["ai.koog.agents.AgentStartingEvent", "ai.koo", "agent_start", 7]))
    if draw(st.booleans()):
        record["level"] = draw(st.sampled_from(["info", "debug", "warn", "error", "fatal"]))
    if draw(st.integers(0, 3)) == 0:
        record["agent"] = draw(st.one_of(st.sampled_from(["planner", "ops", ""]), st.none(), st.integers(0, 2)))
    if draw(st.booleans()):  # AfterAgentRun's AgentResult (internal/core/result.go): only its error reports
        errors = st.sampled_from([None, "", False, {}, [], " { } ", "boom", {"message": "x"}, 0, 0.0, " ", [0]])
        record["agent_result"] = draw(st.one_of(
            st.fixed_dictionaries({"duration_ms": st.integers(0, 900), "output_state": st.none()},
                                  optional={"error": errors}),
            st.sampled_from(["x", None, [], {"error": "a", "error ": ""}])))
    for key in draw(st.lists(st.sampled_from(["error", "agent_result", "tokens", "usage", "duration_ms", "span_data",
                                              "tool", "latency_ms", "model", "runId", "responses", "toolName",
                                              "eventType", "target_agent_id"]), max_size=2)):
        record[key] = draw(st.sampled_from(["x", 12, {"input_tokens": 3}, None, True]))
    if draw(st.booleans()):
        del record["timestamp"]
        record = {"time": "2026-11-29T10:11:12.5Z", **record}
    return (json.dumps(record) if draw(st.integers(0, 4)) == 0 else _dumps(record)).encode()


@pytest.mark.parametrize("config", list(CONFIGS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(chunks=st.lists(st.lists(st.one_of(entry_lines().map(lambda line: [line]),
                                          st.integers(1, 40).map(_quiet_run),
                                          st.lists(hot_lines(), max_size=3)), min_size=1, max_size=6)
                       .map(lambda parts: [line for part in parts for line in part]), min_size=1, max_size=3),
       trusted=st.one_of(peers, st.just(TRUSTED)), acked=st.booleans())
def test_quiet_trace_entries_make_what_their_records_make(tmp_path_factory: pytest.TempPathFactory, config: str,
                                                          chunks: list[list[bytes]], trusted: dict,
                                                          acked: bool) -> None:
    """Issue 27: an AgenticGoKit hook entry that reports nothing is counted, paired and filed in
    its session by the compiled path without a record: the log file, the session files, the
    agents' counts and run durations, usage and the pipeline's counts are what Python makes of
    its record, whatever the entries around it, the config and the way they were written."""
    rids = [Rids(f"0a1b2c3d4e5f6a7b:{i}:", 0, i % 2 == 1) for i in range(len(chunks))] if acked else None
    _, hot = sides(tmp_path_factory.mktemp("cmp"), CONFIGS[config], chunks, trusted, rids)
    event(f"entries filed without a record: {'some' if hot.pipeline.stats.hot_entries else 'none'}")


def test_a_session_of_quiet_entries_takes_no_record(tmp_path: Path) -> None:
    """The bench's shape (issue 27): every entry is quiet; runs are paired across chunks."""
    chunks = [_quiet_run(120, "sess-a"), _quiet_run(120, "sess-b", first=200), _quiet_run(40, "sess-a", first=120)]
    python, hot = sides(tmp_path, "", chunks)
    assert hot.pipeline.stats.hot_entries == 280 and hot.usage.seen == 0
    assert sum(hot.agents.durations["planner"][:-1]) + sum(hot.agents.durations["writer"][:-1]) == 70
    assert sorted(hot.state()["sessions"]) == sorted(python.state()["sessions"]) and len(hot.state()["sessions"]) == 2


def test_agenticgokit_sessions_as_it_writes_them_are_quiet_but_their_errors(tmp_path: Path) -> None:
    """AgenticGoKit's own entries (trace.go's fields, an AgentResult on every AfterAgentRun): only
    the AgentError entries, and the AfterAgentRun whose result holds the error, take their records."""
    from framework_samples import agk_entries

    sessions = [[{**e, "session_id": f"req-{n}"} for e in agk_entries()] for n in range(40)]
    chunk = [orjson.dumps(e) for session in sessions for e in session]
    failed = [i for i, e in enumerate(agk_entries()) if e.get("error") or (e.get("agent_result") or {}).get("error")]
    python, hot = sides(tmp_path, "", [chunk])
    # fewer than 8 quiet entries after the last error stay in its run (ENTRIES_TO_CUT in _hotpath.c)
    tail = len(agk_entries()) - 1 - failed[-1]
    assert failed and tail < 8 and hot.usage.seen == 40 * len(failed) + tail
    assert hot.pipeline.stats.hot_entries == len(chunk) - hot.usage.seen
    assert hot.usage.errors == python.usage.errors and sum(hot.usage.errors.values()) >= 40


def test_quiet_entries_among_entries_that_report_are_their_own_runs_when_many(tmp_path: Path) -> None:
    """A long stretch of quiet entries inside lines whose records the steps read is cut out of
    that run (from the 8th in a row) and filed without records; a few stay with their neighbours."""
    reporting = [orjson.dumps(_entry(i, "AfterAgentRun", agent_result={"error": "boom"})) for i in range(3)]
    chunk = reporting[:1] + _quiet_run(5) + reporting[1:2] + _quiet_run(40, first=10) + reporting[2:]
    _, hot = sides(tmp_path, "", [chunk])
    assert hot.pipeline.stats.hot_entries == 40 and hot.usage.seen == 1 + 5 + 1 + 1
    assert hot.pipeline.stats.hot_path == len(chunk)


def test_quiet_entries_under_the_level_floor_are_filed_but_not_written(tmp_path: Path) -> None:
    """With `level = "warn"` the log file keeps warnings while every hook still reaches its
    session: entries under the floor are filed without a record and left out of the file, the
    others written; the drops counted as the level step counts them."""
    chunk = [orjson.dumps({**orjson.loads(line), "level": ["info", "warn", "debug", "error"][i % 4]})
             for i, line in enumerate(_quiet_run(40))]
    _, hot = sides(tmp_path / "warn", CONFIGS["warn and up"], [chunk, _quiet_run(30)])
    assert hot.pipeline.stats.hot_entries == 70 and hot.usage.seen == 0
    assert hot.pipeline.stats.dropped["below_level"] == 20 + 30
    assert len(hot.state()["file"].splitlines()) == 20 and sum(
        len(lines.splitlines()) for lines in hot.state()["sessions"].values()) == 70


def test_quiet_entries_are_sampled_as_their_records_would_be(tmp_path: Path) -> None:
    """Sampling and rate limits decide on what the compiled path gives them (agent, level,
    message) of the entries the log file gets: every entry still reaches its session."""
    chunk = [orjson.dumps({**orjson.loads(line), "message": "same", "agent": "planner"}) for line in _quiet_run(60)]
    _, hot = sides(tmp_path / "sampled", CONFIGS["sampled"], [chunk])
    assert hot.pipeline.stats.hot_entries == 60 and hot.usage.seen == 0
    assert hot.pipeline.stats.dropped and len(hot.state()["file"].splitlines()) < 60
    assert sum(len(lines.splitlines()) for lines in hot.state()["sessions"].values()) == 60


def test_quiet_entries_take_their_records_while_spans_wait_for_their_agent(tmp_path: Path) -> None:
    """A span whose parent has not arrived waits for its agent (LiveTraces): the usage step must
    see every trace record meanwhile (they may expire it), so the entries take their records."""
    from trace_samples import span_trace

    waiting = _as_sent([r for r in span_trace("trace_w") if r["span_id"] == "s-tool"], True)
    _, hot = sides(tmp_path, "", [waiting + _quiet_run(30)])
    assert hot.usage.live.waiting and hot.pipeline.stats.hot_entries == 0 and hot.usage.seen == 31


def test_quiet_entries_near_the_agents_label_cap_take_their_records(tmp_path: Path) -> None:
    """Which agents get a label of their own once the cap is near depends on the order they are
    met in: record by record then, as Python meets them."""
    chunk = [line for i in range(6) for line in _quiet_run(20, first=20 * i)]
    many = [orjson.dumps({**orjson.loads(line), "agent_id": f"agent-{i // 4}", "agent": f"a-{i % 3}"})
            for i, line in enumerate(chunk)]
    _, hot = sides(tmp_path, "[logging.metrics]\nmax_agents = 4", [many])
    assert hot.pipeline.stats.hot_entries < len(many) and "_other" in hot.agents.durations
    _, roomy = sides(tmp_path / "roomy", "", [many])
    assert roomy.pipeline.stats.hot_entries == len(many)


def test_a_real_daemon_files_quiet_entries_without_their_records_and_says_so(daemon, tmp_path: Path) -> None:
    """`logd run`: an AgenticGoKit session's entries that report nothing are in the log file and
    their session file as sent, their runs timed, and `logd status` counts them."""
    d = daemon()
    chunk = _quiet_run(200, "sess-real")
    send(d.socket_path, b"\n".join(chunk) + b"\n")
    wait_for(lambda: len([r for r in read_records(tmp_path / "agent.log") if r.get("hook")]) >= 200,
             what="the entries")
    status = _status(d)
    assert status["hot_path"] == {"on": True, "records": 200, "trace_entries": 200}
    assert status["traces"]["stored"] == 200
    # AgenticGoKit names the agent in agent_id: its records count as unknown's, its runs as its own
    assert status["agents"]["unknown"]["records"] == {"info": 200}
    assert status["agents"]["planner"]["runs"] == 25 and status["agents"]["writer"]["runs"] == 25
    session = next((tmp_path / "traces").glob("sess-real*"))
    assert [orjson.loads(line)["event_id"] for line in session.read_bytes().splitlines()] == \
        [orjson.loads(line)["event_id"] for line in chunk]
