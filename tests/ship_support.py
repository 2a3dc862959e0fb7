"""Real remote ends for shipping tests: an rsyslogd process and a local HTTP collector process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import orjson

from support import wait_for

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


class Rsyslog:
    """``rsyslogd -n`` with its own work folder: imtcp on 127.0.0.1:<port>, each message to
    ``out.log`` as ``APP-NAME<TAB>STRUCTURED-DATA<TAB>MSG``. The main queue is direct, so a
    message rsyslog has read is in the file before it closes the connection."""

    def __init__(self, folder: Path, port: int | None = None, tls: Certificates | None = None,
                 client_certs: bool = False) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.out = folder / "out.log"
        self.conf = folder / "rsyslog.conf"
        self.pidfile = folder / "rsyslogd.pid"
        if tls is None:
            transport = 'module(load="imtcp")'
        else:  # RFC 5425 through rsyslog's GnuTLS driver; clients are not asked for certificates
            transport = f"""global(DefaultNetstreamDriver="gtls" DefaultNetstreamDriverCAFile="{tls.ca}"
       DefaultNetstreamDriverCertFile="{tls.cert}" DefaultNetstreamDriverKeyFile="{tls.key}")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1"
       StreamDriver.AuthMode="{'x509/certvalid' if client_certs else 'anon'}")"""
        self.conf.write_text(f"""
global(workDirectory="{folder}" maxMessageSize="64k")
{transport}
main_queue(queue.type="Direct")
template(name="keep" type="string" string="%app-name%\\t%structured-data%\\t%msg%\\n")
input(type="imtcp" port="{self.port}" address="127.0.0.1" ruleset="ship")
ruleset(name="ship") {{ action(type="omfile" file="{self.out}" template="keep" flushOnTXEnd="on") }}
""")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Rsyslog:
        self.pidfile.unlink(missing_ok=True)
        with open(self.folder / "rsyslogd.stderr", "ab") as log:
            self.proc = subprocess.Popen([RSYSLOGD, "-n", "-f", str(self.conf), "-i", str(self.pidfile)],
                                         stdout=log, stderr=log)
        wait_for(lambda: self._alive() and port_open(self.port), 15, what=f"rsyslogd on port {self.port}")
        return self

    def _alive(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"rsyslogd exited: {self.diagnostics()}")
        return True

    def diagnostics(self) -> str:
        """What rsyslogd said about itself (stderr, -n): errors, refused peers."""
        return (self.folder / "rsyslogd.stderr").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def lines(self) -> list[str]:
        if not self.out.exists():
            return []
        data = self.out.read_bytes()
        return data[: data.rfind(b"\n") + 1].decode("utf-8", "replace").splitlines()

    def messages(self) -> list[str]:
        return [line.split("\t", 2)[2] for line in self.lines() if line.count("\t") >= 2]


_COLLECTOR = r'''
import gzip, http.server, json, os, sys, threading, time
folder = sys.argv[1]
plan_path = os.path.join(folder, "plan.json")
log_path = os.path.join(folder, "requests.jsonl")
lock = threading.Lock()
served = [0]

def next_response():
    # plan.json: a list of {"status", "headers", "body"} answered in order, then 200s
    with lock:
        n = served[0]
        served[0] += 1
        try:
            plan = json.load(open(plan_path))
        except (OSError, ValueError):
            plan = []
    return plan[n] if n < len(plan) else {"status": 200}

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        answer = next_response()
        entry = {"time": time.time(), "path": self.path, "status": answer["status"],
                 "headers": dict(self.headers), "body": body.hex()}
        with lock, open(log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")
        out = answer.get("body", "").encode()
        self.send_response(answer["status"])
        for k, v in answer.get("headers", {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Handler)
if len(sys.argv) > 4:  # HTTPS: certificate and key
    import ssl
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[3], sys.argv[4])
    server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
'''


class Collector:
    """A local HTTP server process that records every POST (decompressed) and answers by plan."""

    def __init__(self, folder: Path, tls: Certificates | None = None) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, path: str = "/") -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{path}"

    def plan(self, responses: list[dict]) -> None:
        (self.folder / "plan.json").write_text(orjson.dumps(responses).decode())

    def start(self) -> Collector:
        tls = [str(self.tls.cert), str(self.tls.key)] if self.tls else []
        self.proc = subprocess.Popen([sys.executable, "-c", _COLLECTOR, str(self.folder), str(self.port), *tls])
        wait_for(lambda: port_open(self.port), 15, what="the HTTP collector")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def requests(self) -> list[dict]:
        path = self.folder / "requests.jsonl"
        if not path.exists():
            return []
        out = []
        data = path.read_bytes()
        for line in data[: data.rfind(b"\n") + 1].splitlines():  # a line being written waits
            entry = orjson.loads(line)
            entry["body"] = bytes.fromhex(entry["body"])
            out.append(entry)
        return out

    def accepted_bodies(self) -> list[bytes]:
        return [r["body"] for r in self.requests() if 200 <= r["status"] < 300]


class Certificates:
    """A throw-away CA and a server certificate for 127.0.0.1, made with the openssl CLI."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.ca, self.cert, self.key = folder / "ca.pem", folder / "server.pem", folder / "server.key"
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
        run("req", "-x509", *ec, "-keyout", str(folder / "ca.key"), "-out", str(self.ca), "-days", "2",
            "-subj", "/CN=logd test CA")
        run("req", *ec, "-keyout", str(self.key), "-out", str(folder / "server.csr"), "-subj", "/CN=127.0.0.1")
        (folder / "ext").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        run("x509", "-req", "-in", str(folder / "server.csr"), "-CA", str(self.ca), "-CAkey", str(folder / "ca.key"),
            "-CAcreateserial", "-out", str(self.cert), "-days", "2", "-extfile", str(folder / "ext"))
        # a client certificate from the same CA, for servers that ask for one (mutual TLS)
        self.client_cert, self.client_key = folder / "client.pem", folder / "client.key"
        run("req", *ec, "-keyout", str(self.client_key), "-out", str(folder / "client.csr"), "-subj", "/CN=logd")
        run("x509", "-req", "-in", str(folder / "client.csr"), "-CA", str(self.ca), "-CAkey", str(folder / "ca.key"),
            "-CAcreateserial", "-out", str(self.client_cert), "-days", "2")


def ship_config(*targets: str, extra: str = "") -> str:
    """A [logging] body: the file sink, then ``[[logging.ship]]`` tables (given as their bodies)."""
    body = 'file = "agent.log"\nfile_only = true\nstate_dir = "state"\n' + extra
    for target in targets:
        body += "\n[[logging.ship]]\n" + target.strip() + "\n"
    return body


def numbered(count: int, start: int = 0, **fields: object) -> list[dict]:
    return [{"level": "info", "message": f"rec {i:06d}", "agent": "planner", "seq": i, **fields}
            for i in range(start, start + count)]


def pids_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False
