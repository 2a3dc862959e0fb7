"""Redaction: secret keys at any depth and secret-shaped values, before every sink."""

from __future__ import annotations

import copy

import orjson
import pytest

from logd.config import ConfigError, parse_config
from logd.steps.redact import DEFAULT_KEYS, REPLACEMENT, Redactor, normalise_key

from ship_support import Collector, ship_config
from support import agent_records, send_records, wait_for

OPENAI_KEY = "sk-proj-Abc123def456GHI789jkl012"
BEARER = "Bearer eyJhbGciOiJIUzI1NiJ9.abcdefgh1234"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
GITHUB = "ghp_" + "a1B2c3D4e5" * 4
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
SECRETS = ("hunter2", "s3cr3t-value", "cookie-monster", OPENAI_KEY, "eyJhbGciOiJIUzI1NiJ9.abcdefgh1234",
           AWS_KEY, GITHUB, JWT, "tok-123")


def secret_record() -> dict:
    """Secrets by key at three depths, in lists, and by shape inside ordinary strings."""
    return {
        "level": "info", "message": f"calling the API with {OPENAI_KEY} as key", "agent": "planner",
        "password": "hunter2",
        "request": {"headers": {"Authorization": BEARER, "Cookie": "cookie-monster", "Accept": "text/plain"},
                    "body": {"user": "ann", "apiKey": "s3cr3t-value"}},
        "steps": [{"tool": "aws", "note": f"used {AWS_KEY}"}, f"pushed with {GITHUB}", ["nested", JWT]],
        "access_token": "tok-123",
        "tokens": {"prompt": 512, "completion": 128},  # usage counts, not secrets
        "token_count": 640,
    }


def test_secret_keys_are_redacted_at_any_depth_whatever_their_case():
    record = secret_record()
    Redactor()([record])
    assert record["password"] == REPLACEMENT
    assert record["request"]["headers"]["Authorization"] == REPLACEMENT
    assert record["request"]["headers"]["Cookie"] == REPLACEMENT
    assert record["request"]["body"]["apiKey"] == REPLACEMENT
    assert record["access_token"] == REPLACEMENT
    # what is not secret stays as sent
    assert record["request"]["headers"]["Accept"] == "text/plain"
    assert record["request"]["body"]["user"] == "ann"
    assert record["tokens"] == {"prompt": 512, "completion": 128}
    assert record["token_count"] == 640


def test_secret_shaped_values_are_redacted_inside_strings_and_lists():
    record = secret_record()
    Redactor()([record])
    assert record["message"] == f"calling the API with {REPLACEMENT} as key"
    assert record["steps"][0] == {"tool": "aws", "note": f"used {REPLACEMENT}"}
    assert record["steps"][1] == f"pushed with {REPLACEMENT}"
    assert record["steps"][2] == ["nested", REPLACEMENT]
    assert not any(s in orjson.dumps(record).decode() for s in SECRETS)


@pytest.mark.parametrize("key", ["password", "PASSWORD", "Passwd", "db_password", "dbPassword", "X-Api-Key",
                                 "api_key", "APIKEY", "apiKey", "client-secret", "refreshToken", "Set-Cookie",
                                 "proxy_authorization"])
def test_key_spellings_that_match(key):
    assert Redactor().is_secret_key(key)


@pytest.mark.parametrize("key", ["tokens", "token_count", "prompt_tokens", "secretary", "passwordless_login",
                                 "keyboard", "cookies_enabled", "author"])
def test_key_spellings_that_do_not_match(key):
    assert not Redactor().is_secret_key(key)


def test_normalised_keys():
    assert normalise_key("apiKey") == normalise_key("API-Key") == normalise_key("api.key") == "api_key"


@pytest.mark.parametrize("text", [
    "Authorization: Bearer abcdefghij0123456789", "bearer abcdefghij0123456789", OPENAI_KEY,
    "sk-ant-api03-abcdefghijklmnop", AWS_KEY, GITHUB, JWT, "xoxb-1234567890-abcdefghij",
    "AIza" + "x" * 35, "sk_live_" + "a" * 24,
])
def test_default_patterns_catch_common_credentials(text):
    record = {"time": "t", "level": "info", "message": f"value: {text} end"}
    Redactor()([record])
    assert record["message"].startswith("value: ") and REPLACEMENT in record["message"]
    assert record["message"].endswith(" end")


@pytest.mark.parametrize("text", [
    "Agent execution completed", "sk-short", "the bearer of bad news", "2026-11-23T11:28:07.123456Z",
    "sess-01-00042", "gpt-4o-mini", "task-" + "a" * 40,
])
def test_ordinary_text_is_left_alone(text):
    record = {"time": "t", "level": "info", "message": text, "note": text}
    Redactor()([record])
    assert record["message"] == text and record["note"] == text


def test_configured_keys_and_patterns_replace_the_defaults():
    redactor = Redactor(keys=["ssn"], patterns=[r"(?i)card-\d{4}"], replacement="***")
    record = {"time": "t", "level": "info", "message": "paid with CARD-1234", "ssn": "123-45-6789",
              "password": "kept: not listed", "key": OPENAI_KEY}
    redactor([record])
    assert record == {"time": "t", "level": "info", "message": "paid with ***", "ssn": "***",
                      "password": "kept: not listed", "key": OPENAI_KEY}


def test_counts_by_rule_and_the_same_record_twice_is_stable():
    counts: dict[str, int] = {}
    redactor = Redactor(counts=counts)
    record = secret_record()
    redactor([record])
    assert counts == {"key": 5, "pattern": 4}
    again = copy.deepcopy(record)
    redactor([again])
    assert again == record  # already-redacted values are not counted or changed again
    assert counts == {"key": 5, "pattern": 4}


def test_memory_for_keys_and_values_stays_bounded():
    redactor = Redactor()
    for batch in range(20):
        redactor([{"time": "t", "level": "info", "message": f"message number {batch}-{i} of many",
                   f"field_{batch}_{i}": i} for i in range(1000)])
    assert len(redactor._plain_keys) + len(redactor._secret_keys) <= 4096
    assert len(redactor._clean) <= 4096
    # and classification still works after the memory was cleared
    record = {"time": "t", "level": "info", "message": "", "password": "x"}
    redactor([record])
    assert record["password"] == REPLACEMENT


def test_config_defaults_and_errors(tmp_path):
    path = tmp_path / "agentflow.toml"
    config = parse_config("[logging]\n", path)
    assert config.redact.enabled and config.redact.keys == DEFAULT_KEYS
    with pytest.raises(ConfigError) as err:
        parse_config('[logging.redact]\npatterns = ["ok", "(unclosed"]\n', path)
    assert "logging.redact.patterns" in str(err.value) and "pattern 2" in str(err.value)
    assert ":2:" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_config('[logging.redact]\nkeys = ["ok", 3]\n', path)
    assert "expected an array of non-empty strings" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_config('[logging.redact]\nkey = ["x"]\n', path)
    assert 'did you mean "keys"' in str(err.value)


# --- end to end: what every sink gets ---

def _send_secrets(d) -> None:
    send_records(d.socket_path, [secret_record(), {"msg": "plain", "agent": "writer"}])


def _assert_clean(text: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"secrets reached a sink: {leaked}"
    assert REPLACEMENT in text


def test_file_and_json_console_never_see_secrets(daemon, tmp_path):
    d = daemon('file = "agent.log"\nformat = "json"')
    _send_secrets(d)
    wait_for(lambda: len(agent_records(tmp_path / "agent.log")) == 2, what="records in the file")
    d.stop()
    _assert_clean((tmp_path / "agent.log").read_text())
    _assert_clean(d.stdout())
    written = agent_records(tmp_path / "agent.log")[0]
    assert written["request"]["headers"]["Accept"] == "text/plain"
    assert written["tokens"] == {"prompt": 512, "completion": 128}


def test_human_console_never_sees_secrets(daemon):
    d = daemon("")
    _send_secrets(d)
    wait_for(lambda: "plain" in d.stdout(), what="the console lines")
    _assert_clean(d.stdout())


def test_shipped_records_are_redacted(daemon, tmp_path):
    collector = Collector(tmp_path / "collector").start()
    try:
        d = daemon(ship_config(f'type = "http"\nurl = "{collector.url("/ingest")}"\nflush_interval = 0.05\n'))
        _send_secrets(d)

        def shipped() -> list[dict]:
            return [orjson.loads(line) for body in collector.accepted_bodies() for line in body.splitlines()
                    if line and b'"agent":"logd"' not in line]
        wait_for(lambda: len(shipped()) >= 2, 20, what="records at the collector")
        _assert_clean(b"".join(collector.accepted_bodies()).decode())
        assert shipped()[0]["password"] == REPLACEMENT
    finally:
        collector.stop()


def test_redaction_can_be_turned_off(daemon, tmp_path):
    d = daemon('file = "agent.log"\n\n[logging.redact]\nenabled = false\n')
    send_records(d.socket_path, [{"msg": "x", "password": "hunter2"}])
    wait_for(lambda: agent_records(tmp_path / "agent.log"), what="the record")
    assert agent_records(tmp_path / "agent.log")[0]["password"] == "hunter2"
