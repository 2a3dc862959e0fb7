"""The bearer tokens of the HTTP ingest listener (``[logging.otlp] token_file``).

The file holds one token per line, ``name:token`` (a bare token is named ``default``);
``#`` starts a comment. The name is what records sent with that token carry (``_sender``),
so senders can be told apart; the token is what exporters send
(``OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer <token>"``).

The file is a secret that the agents' users must read: owned by logd's user and the
writers' group (``logd-writers``), mode 0640. One readable or writable by every local
user, or writable by the group, is refused: anyone could then send as any agent.
"""

from __future__ import annotations

import hmac
import os
import re
import stat
from pathlib import Path

DEFAULT_NAME = "default"
MIN_TOKEN_CHARS = 16
# RFC 6750's b64token: what may follow "Bearer " in an Authorization header
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
MAX_FILE_BYTES = 1 << 20


class TokenFileError(ValueError):
    """The token file cannot be used; the message says why and what to do."""


def read_tokens(path: Path) -> dict[str, str]:
    """token -> name, from ``path``; raises :class:`TokenFileError`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise TokenFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise TokenFileError(f"{path} is not a regular file")
        if st.st_mode & 0o007 or st.st_mode & 0o020:
            raise TokenFileError(f"{path} has mode 0o{stat.S_IMODE(st.st_mode):o}: every local user could read "
                                 "or change the tokens; make it readable by logd and the writers' group only "
                                 f"(chmod 0640 {path})")
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise TokenFileError(f"{path} is over {MAX_FILE_BYTES} bytes: not a token file")
    tokens: dict[str, str] = {}
    for number, raw in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, token = line.rpartition(":")
        name = name.strip() if sep else DEFAULT_NAME
        token = token.strip()
        if not _NAME.fullmatch(name):
            raise TokenFileError(f"{path}:{number}: the name before ':' must be 1-64 letters, digits, '_', '.', '-'")
        if not _TOKEN.fullmatch(token) or len(token) < MIN_TOKEN_CHARS:
            raise TokenFileError(f"{path}:{number}: a token must be at least {MIN_TOKEN_CHARS} characters of "
                                 "A-Z a-z 0-9 - . _ ~ + / (e.g. openssl rand -hex 32)")
        if token in tokens:
            raise TokenFileError(f"{path}:{number}: the same token as {tokens[token]!r}")
        tokens[token] = name
    if not tokens:
        raise TokenFileError(f"{path} holds no token (one 'name:token' per line)")
    return tokens


def sender(tokens: dict[str, str], authorization: str) -> str | None:
    """The name of the token an ``Authorization: Bearer ...`` header carries, or None.
    Every token is compared, in constant time, so the answer's timing tells nothing."""
    scheme, _, value = authorization.strip().partition(" ")
    sent = value.strip().encode("latin-1", "replace")
    found = None
    for token, name in tokens.items():
        if hmac.compare_digest(token.encode(), sent) and scheme.lower() == "bearer":
            found = name
    return found
