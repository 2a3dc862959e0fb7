"""Records into the systemd journal (``[logging.journald]``), native protocol: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER
(the agent), every field (``journalctl AGENT=planner``). A journal that refuses raises OSError: the pipeline retries."""

import fcntl
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import orjson

from logd.components import Batch, SinkBase
from logd.settings import boolean, setting, string
from logd.spec import SINK, Spec

PRIORITY = {"trace": "7", "debug": "7", "info": "6", "warn": "4", "error": "3", "fatal": "2", "panic": "0"}


@dataclass(frozen=True)
class JournaldSettings:
    """``[logging.journald]``: the systemd journal as one more sink (off unless ``enabled``)."""
    enabled: bool = setting(False, doc="send every record to the systemd journal too", check=boolean)
    socket: Path = setting(Path("/run/systemd/journal/socket"), doc="journald's socket", check=string, relative=True)


def field(name: str, value: object) -> bytes:  # NAME=value, NAME A-Z 0-9 _; length-prefixed if the value has a newline
    key = "".join(c if c.isascii() and c.isalnum() else "_" for c in name.upper()).lstrip("_0123456789")[:64]
    data = value.encode() if isinstance(value, str) else orjson.dumps(value, default=str)
    size = b"\n" + len(data).to_bytes(8, "little") if b"\n" in data else b"="
    return (key or "FIELD").encode() + size + data + b"\n"


class JournaldSink(SinkBase):
    name = "journald"

    def __init__(self, settings: JournaldSettings) -> None:
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.unsent, self.address = list[bytes](), settings.socket

    def write(self, batch: Batch) -> None:
        self.unsent += [b"".join([field("SYSLOG_IDENTIFIER", r.get("agent") or "logd"), field("PRIORITY", PRIORITY[
            r["level"]]), *(field(k, v) for k, v in r.items() if k != "level")]) for r in batch.records]
        self.flush()

    def flush(self) -> None:  # in order; what the journal refuses stays for the pipeline's retry
        self.socket.connect(os.fspath(self.address))  # again at each try: the journal may have been restarted
        while self.unsent:
            if len(entry := self.unsent[0]) < 65536:  # larger: a sealed memfd, as sd_journal_send does
                self.socket.send(entry)
            else:
                with os.fdopen(os.memfd_create("logd-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING), "wb", 0) as fd:
                    fd.write(entry), fcntl.fcntl(fd, fcntl.F_ADD_SEALS, 15)  # sealed: journald takes no other
                    socket.send_fds(self.socket, [b""], [fd.fileno()])
            self.sent_bytes += len(self.unsent.pop(0))

    def close(self) -> None:
        self.socket.close()


SPEC = Spec(SINK, "journald", lambda s, ctx: JournaldSink(s) if s.enabled else None, JournaldSettings, table="journald")
