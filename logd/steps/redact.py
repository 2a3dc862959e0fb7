"""Secrets out of records before any sink sees them: ``[logging.redact]``.

Two rules, applied at any depth of a record (dicts and lists are walked, nothing else):
- a field whose *name* is secret (``password``, ``apiKey``, ``X-Api-Key``, ``access_token``...)
  has its whole value replaced by ``"[REDACTED]"``;
- any *string value* (the message included) has every match of the patterns (bearer
  tokens, ``sk-...`` API keys, ...) replaced by ``"[REDACTED]"``;
- every text field, and every string of a record kept as text (truncated, malformed,
  partial, flagged ``_error``), also has the *values* of secret keys written in text
  redacted: ``password=hunter2``, ``"password": "hunter2"``, ``api_key: sk...`` (a structured
  ``message`` object arrives as such JSON text, see record.py). A text field is one whose
  key names text or a name (:data:`TEXT_WORDS`: the message, agent, model and tool names,
  span names and statuses, errors and exceptions), at any depth; every string under it
  (``error: {"message": ..., "data": {...}}``) is text too. These are what logd's own
  outputs show (``logd status``, ``logd top``, ``/metrics`` labels), which count records
  after this step.

This runs on every record, so it is built for the common case of a record with
nothing to hide: key names are classified once and remembered, the patterns are one
compiled alternation, and strings shorter than the shortest possible match are
never scanned.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Any

from logd.isolation import StepFailures
from logd.record import Record
from logd.settings import Invalid, boolean, setting, string, string_list
from logd.spec import STEP, Context, Redact, Spec
from logd.steps.agents import agents_of

REPLACEMENT = "[REDACTED]"
DEFAULT_KEYS: tuple[str, ...] = ("password", "passwd", "secret", "token", "api_key", "apikey",
                                 "authorization", "cookie")
# Each alternative starts with a literal so the regex engine can skip ahead quickly; a
# lookbehind *after* that literal (``\b`` in front would defeat the skip) makes sure it
# starts a word: "task-..." is not an "sk-" key. No global flags (they cannot be combined).
_TOKEN_CHARS = r"[A-Za-z0-9\-._~+/]"
_W = "[A-Za-z0-9_]"  # a character that would make the literal part of a longer word


def _word(literal: str, rest: str) -> str:
    """``literal`` at the start of a word, followed by ``rest``."""
    return f"{literal}(?<!{_W}{literal}){rest}"


DEFAULT_PATTERNS: tuple[str, ...] = (
    _word("Bearer", rf"\s+{_TOKEN_CHARS}{{8,}}=*"),  # HTTP bearer tokens, three capitalisations
    _word("bearer", rf"\s+{_TOKEN_CHARS}{{8,}}=*"),
    _word("BEARER", rf"\s+{_TOKEN_CHARS}{{8,}}=*"),
    _word("sk-", r"[A-Za-z0-9_\-]{16,}"),  # OpenAI / Anthropic style: sk-..., sk-proj-..., sk-ant-...
    _word("sk_", r"(?:live|test)_[A-Za-z0-9]{16,}"),  # Stripe
    _word("rk_", r"(?:live|test)_[A-Za-z0-9]{16,}"),
    _word("AKIA", r"[0-9A-Z]{16}"),  # AWS access key id
    _word("gh", r"[pousr]_[A-Za-z0-9]{36,}"),  # GitHub tokens
    _word("github_pat_", r"[A-Za-z0-9_]{22,}"),
    _word("xox", r"[abprs]-[A-Za-z0-9-]{10,}"),  # Slack
    _word("AIza", r"[0-9A-Za-z_\-]{35}"),  # Google API key
    _word("eyJ", r"[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),  # JWT
)
# A dict key or string value is remembered only up to these sizes, so a client sending
# endless distinct keys or huge values cannot grow logd's memory.
_MAX_REMEMBERED = 4096
_MAX_REMEMBERED_KEY = 128
_MAX_REMEMBERED_VALUE = 256

# A key names text (so its strings get the key=value rule) when, normalised, it is one of
# these words or ends with "_" and one: "message", "gen_ai.agent.name", "exception.message",
# "toolName", "status_message", "error", "_comm" (the process name a client chose).
TEXT_WORDS: tuple[str, ...] = ("message", "msg", "name", "agent", "model", "tool", "status", "error", "exception",
                               "stacktrace", "description", "reason", "detail", "comm")
_TEXT_SUFFIXES = tuple("_" + w for w in TEXT_WORDS)
_TEXT_WORD_SET = frozenset(TEXT_WORDS)

# flags of records kept as text: every string of theirs may hold "key=value" secrets
TEXT_FLAGS = ("_truncated", "_malformed", "_partial", "_invalid_utf8", "_error")
_TEXT_FLAG_SET = frozenset(TEXT_FLAGS)
_KV_VALUE = r"""(?:"(?:[^"\\]|\\.)*"?|'[^']*'?|\\"(?:[^"\\]|\\[^"])*(?:\\")?|[^\s,;&}\])"']+)"""


def key_value_pattern(keys: Iterable[str]) -> re.Pattern[str]:
    """``<key> = value`` / ``"<key>": "value"`` in text, for any of ``keys`` (normalised form) at
    the end of a longer key (``db_password``, ``X-Api-Key``, ``accessToken``). Group 1 is
    everything up to the value, which is what is kept."""
    words = sorted({k for k in keys if k}, key=len, reverse=True)
    alternation = "|".join(r"[_\-. ]?".join(re.escape(part) for part in w.split("_")) for w in words)
    # starts with the key literal itself (no "any prefix" part: that made the search quadratic on
    # text like "a_a_a_..."); "db_password=" still matches at "password="
    return re.compile(rf"""((?:{alternation})(?:\\?["'])?\s*[=:]\s*){_KV_VALUE}""", re.IGNORECASE)


def _remember(clean: set[str], text: str) -> None:
    """``text`` into a cache of strings known clean, up to its bounds (full: emptied at once)."""
    if len(text) <= _MAX_REMEMBERED_VALUE:
        if len(clean) >= _MAX_REMEMBERED:
            clean.clear()
        clean.add(text)


_CAMEL_BOUNDARY = re.compile(r"([a-z0-9])([A-Z])")
_SEPARATORS = re.compile(r"[-. ]+")
_LEADING_FLAGS = re.compile(r"\(\?([aiLmsux]+)\)")


def normalise_key(key: str) -> str:
    """``apiKey``, ``API-Key``, ``api.key`` -> ``api_key``: the form keys are compared in."""
    return _SEPARATORS.sub("_", _CAMEL_BOUNDARY.sub(r"\1_\2", key)).lower()


def combine_patterns(patterns: Iterable[str]) -> re.Pattern[str]:
    """One alternation of all ``patterns``. A pattern's leading global flags such as
    ``(?i)`` are scoped to that pattern (Python refuses global flags mid-expression).
    Raises ``re.error`` naming the bad pattern."""
    parts = []
    for pattern in patterns:
        re.compile(pattern)  # the error names this pattern, not the combination
        flags = _LEADING_FLAGS.match(pattern)
        if flags:
            pattern = f"(?{flags.group(1)}:{pattern[flags.end():]})"
        parts.append(pattern)
    return re.compile("|".join(parts))


def _min_match_length(pattern: re.Pattern[str]) -> int:
    """The fewest characters any match needs (0 when it cannot be worked out)."""
    try:
        from re import _parser as parser  # type: ignore[attr-defined]  # Python >= 3.11
    except ImportError:  # pragma: no cover - Python 3.10
        import sre_parse as parser
    try:
        return int(parser.parse(pattern.pattern, pattern.flags).getwidth()[0])
    except Exception:  # an internal API: never let it break redaction
        return 0


class Redactor:
    """A pipeline step: redacts every record in a batch in place and returns the batch."""

    def __init__(self, keys: Iterable[str] = DEFAULT_KEYS, patterns: Iterable[str] = DEFAULT_PATTERNS,
                 replacement: str = REPLACEMENT, counts: dict[str, int] | None = None) -> None:
        self.keys = frozenset(normalise_key(k) for k in keys)
        self._suffixes = tuple("_" + k for k in self.keys)
        patterns = tuple(patterns)
        self.pattern = combine_patterns(patterns) if patterns else None
        self._search = self.pattern.search if self.pattern is not None else None
        # strings shorter than any match are never scanned; without patterns, none are
        self._min_len = _min_match_length(self.pattern) if self.pattern is not None else sys.maxsize
        self.replacement = replacement
        self._kv = key_value_pattern(self.keys) if self.keys else None
        # a message is searched for key=value only if its lowercase form holds the first word
        # of some key: one lower() and a few substring tests instead of a regex on every message
        self._kv_clean: set[str] = set()  # messages known to hold no key=value secret
        self._kv_stems = tuple(sorted({k.split("_")[0] for k in self.keys if k}))
        self._kv_replacement = "\\g<1>" + replacement.replace("\\", "\\\\")
        self._plain_keys: set[str] = set()  # keys already known not to be secret
        self._secret_keys: set[str] = set()
        self._text_keys: set[str] = set()  # keys known to name text (is_text_key)
        self._classified_keys: set[str] = set()  # keys whose answer is known, text or not
        self._clean: set[str] = set()  # string values known to match no pattern
        self.counts = {} if counts is None else counts  # "key" / "pattern" -> values redacted

    def __call__(self, records: list[Record]) -> list[Record]:
        walk, kv = self._walk_dict, self._kv
        failed: list[tuple[Record, Exception]] = []
        for record in records:
            try:
                # a canonical record starts with ``time`` and ``level``, both made by logd from
                # parsed values (record.py): their strings need no scan
                walk(record, 2)
                if kv is not None:
                    self._redact_text_forms(record, kv)
            except Exception as exc:  # isolation (issue 18): the pipeline flags it and redacts its text
                failed.append((record, exc))
        if failed:
            raise StepFailures(records, failed)
        return records

    def _redact_text_forms(self, record: Record, kv: re.Pattern[str]) -> None:
        """``key=value`` secrets in text fields, and in every string of a record kept as text."""
        if record.keys().isdisjoint(_TEXT_FLAG_SET):
            self._text_fields(record, kv)
            return
        for key, value in record.items():  # kept as text: every string of it is text
            if value.__class__ is str and key != "time":
                record[key] = self._kv_scrub(kv, value)
            else:
                self._all_text(value, kv)

    def _text_fields(self, obj: dict[str, Any], kv: re.Pattern[str]) -> None:
        """The strings of ``obj``'s text fields, at any depth. On every record: the cheap
        tests first, a key's class from the cache (measured: a set-based version was slower)."""
        text_keys, known, clean = self._text_keys, self._classified_keys, self._kv_clean
        for key, value in obj.items():
            kind = value.__class__
            if kind is str:
                if ("=" in value or ":" in value) and value not in clean and (
                        key in text_keys or (key not in known and self.is_text_key(key))):
                    obj[key] = self._kv_text(kv, value)  # same key: the dict does not change size
            elif kind is dict or kind is list:
                text = key in text_keys or (key not in known and self.is_text_key(key))
                if kind is list:
                    self._all_list(value, kv, text)
                elif text:
                    self._all_text(value, kv)
                else:
                    self._text_fields(value, kv)

    def _all_text(self, value: Any, kv: re.Pattern[str]) -> None:
        """Under a text field: every string is text."""
        if value.__class__ is dict:
            for key, item in value.items():
                if item.__class__ is str:
                    if ("=" in item or ":" in item) and item not in self._kv_clean:
                        value[key] = self._kv_text(kv, item)
                else:
                    self._all_text(item, kv)
        elif value.__class__ is list:
            self._all_list(value, kv, True)

    def _all_list(self, items: list[Any], kv: re.Pattern[str], text: bool) -> None:
        for index, item in enumerate(items):
            kind = item.__class__
            if kind is str:
                if text and ("=" in item or ":" in item) and item not in self._kv_clean:
                    items[index] = self._kv_text(kv, item)
            elif kind is dict:
                self._all_text(item, kv) if text else self._text_fields(item, kv)
            elif kind is list:
                self._all_list(item, kv, text)

    def _kv_text(self, kv: re.Pattern[str], text: str) -> str:
        """``text`` with key=value secrets redacted; a clean one is remembered (agents repeat
        their messages), one whose lowercase form holds no key's first word is not searched."""
        low = text.lower()
        for stem in self._kv_stems:
            if stem in low:
                return self._kv_scrub(kv, text)
        _remember(self._kv_clean, text)
        return text

    def is_text_key(self, key: object) -> bool:
        """Whether strings under ``key`` are text that may hold ``key=value`` secrets (TEXT_WORDS)."""
        if key in self._text_keys:
            return True
        if key in self._classified_keys or not isinstance(key, str):
            return False
        norm = normalise_key(key)
        text = norm in _TEXT_WORD_SET or norm.endswith(_TEXT_SUFFIXES)
        if len(key) <= _MAX_REMEMBERED_KEY:
            if len(self._classified_keys) >= _MAX_REMEMBERED:
                self._text_keys.clear()
                self._classified_keys.clear()
            self._classified_keys.add(key)
            if text:
                self._text_keys.add(key)
        return text

    def _kv_scrub(self, kv: re.Pattern[str], text: str) -> str:
        scrubbed, count = kv.subn(self._kv_replacement, text)
        if count:
            self.counts["key"] = self.counts.get("key", 0) + count
        return scrubbed

    # --- questions of the hot path (logd/hotpath.py): pure, so it may remember the answers ---

    @property
    def min_len(self) -> int:
        """Strings shorter than this (in characters) cannot match a pattern."""
        return self._min_len

    @property
    def has_key_rule(self) -> bool:
        return self._kv is not None

    def value_clean(self, text: str) -> bool:
        """Whether no pattern matches ``text`` (so the walk leaves it as it is)."""
        return self._search is None or len(text) < self._min_len or not self._dirty(text)

    def message_clean(self, text: str) -> bool:
        """Whether the key=value rule leaves this text as it is (see _redact_text_forms)."""
        if self._kv is None or not ("=" in text or ":" in text):
            return True
        low = text.lower()
        return not any(stem in low for stem in self._kv_stems)

    # --- keys ---

    def is_secret_key(self, key: str) -> bool:
        """Equal to a listed key, or ending with one after a separator (``db_password``,
        ``X-Api-Key``, ``accessToken``); ``tokens`` or ``token_count`` are not secret."""
        norm = normalise_key(key)
        return norm in self.keys or norm.endswith(self._suffixes)

    def _classify(self, key: Any) -> bool:
        secret = isinstance(key, str) and self.is_secret_key(key)
        if isinstance(key, str) and len(key) <= _MAX_REMEMBERED_KEY:
            if len(self._plain_keys) + len(self._secret_keys) >= _MAX_REMEMBERED:
                self._plain_keys.clear()
                self._secret_keys.clear()
            (self._secret_keys if secret else self._plain_keys).add(key)
        return secret

    # --- the walk ---

    def _walk_dict(self, obj: dict[str, Any], skip: int = 0) -> None:
        if not self._plain_keys.issuperset(obj):  # one C-level check covers every key
            self._walk_dict_keys(obj)
            return
        # the common case, in one comprehension: pick out what needs a look, i.e. strings
        # long enough to match and not already known clean, and containers
        min_len, clean = self._min_len, self._clean
        todo = [v for v in (islice(obj.values(), skip, None) if skip else obj.values())
                if ((kind := v.__class__) is str and len(v) >= min_len and v not in clean)
                or kind is dict or kind is list]
        if not todo:
            return
        dirty = False
        for value in todo:
            kind = value.__class__
            if kind is str:
                dirty = self._dirty(value) or dirty
            elif kind is dict:
                self._walk_dict(value)
            else:
                self._walk_list(value)
        if dirty:
            for key, value in islice(obj.items(), skip, None):
                if value.__class__ is str and value not in clean and self._dirty(value):
                    obj[key] = self._scrub(value)  # same key: the dict does not change size

    def _walk_dict_keys(self, obj: dict[str, Any]) -> None:
        """Some key is secret or not seen before: look at each one."""
        for key, value in obj.items():
            if key in self._secret_keys or (key not in self._plain_keys and self._classify(key)):
                if value is not None and value != self.replacement:
                    obj[key] = self.replacement
                    self.counts["key"] = self.counts.get("key", 0) + 1
            elif value.__class__ is str:
                if len(value) >= self._min_len and value not in self._clean and self._dirty(value):
                    obj[key] = self._scrub(value)
            elif value.__class__ is dict:
                self._walk_dict(value)
            elif value.__class__ is list:
                self._walk_list(value)

    def _walk_list(self, items: list[Any]) -> None:
        min_len, clean, dirty = self._min_len, self._clean, self._dirty
        for index, value in enumerate(items):
            kind = value.__class__
            if kind is str:
                if len(value) >= min_len and value not in clean and dirty(value):
                    items[index] = self._scrub(value)
            elif kind is dict:
                self._walk_dict(value)
            elif kind is list:
                self._walk_list(value)

    def _dirty(self, text: str) -> bool:
        """Whether a pattern matches ``text``; clean strings are remembered, since agents
        repeat the same messages and values over and over."""
        assert self._search is not None
        if self._search(text) is not None:
            return True
        _remember(self._clean, text)
        return False

    def _scrub(self, text: str) -> str:
        assert self.pattern is not None
        scrubbed, count = self.pattern.subn(self.replacement, text)
        self.counts["pattern"] = self.counts.get("pattern", 0) + count
        return scrubbed


def _regex_list(value: Any) -> tuple[str, ...]:
    patterns = string_list(value)
    for index, pattern in enumerate(patterns):
        try:
            combine_patterns([pattern])
        except re.error as exc:
            raise Invalid(f"an array of regular expressions; pattern {index + 1} ({pattern!r}) "
                          f"does not compile: {exc}") from None
    return patterns


@dataclass(frozen=True)
class RedactSettings:
    """``[logging.redact]``: secret keys (any depth, case-insensitive) and value patterns."""

    enabled: bool = setting(True, doc="redaction runs before every sink", check=boolean)
    keys: tuple[str, ...] = setting(DEFAULT_KEYS, check=string_list,
                                    doc="field names whose whole value is replaced (any depth, any case/style)")
    patterns: tuple[str, ...] = setting(DEFAULT_PATTERNS, check=_regex_list,
                                        doc="regexes replaced in every string; yours replace the defaults")
    replacement: str = setting(REPLACEMENT, doc="what a secret becomes", check=string)


def redactor(settings: RedactSettings, counts: dict[str, int] | None = None) -> Redactor | None:
    """``[logging.redact]`` as a step (None when off); ``counts``: where it counts what it redacted."""
    if not settings.enabled:
        return None
    return Redactor(settings.keys, settings.patterns, settings.replacement, counts=counts)


def _build(settings: RedactSettings, ctx: Context) -> Redactor | None:
    return redactor(settings, agents_of(ctx).redacted)


# it reads every key and string; the compiled path asks it which keys and strings it would change
SPEC = Spec(STEP, "redact", _build, RedactSettings, table="redact", reads=frozenset(),
            hot=lambda step: (Redact(step),), stderr=redactor)
