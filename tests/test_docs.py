"""Every code block of README.md and docs/*.md runs as written.

README runs as its reader has it after the quick start: a checkout-like folder (`.venv` links
to this venv, `config/agentflow.toml` is the repository's), the daemon `make run` starts on that
config listening on the per-user socket, and a shell with no LOGD_* variable and no `logd` on
PATH (README's first block puts it there). Per docs page, a real `logd run` is started in a
fresh folder (its config is `agentflow.toml` there, `LOGD_CONFIG`/`LOGD_SOCKET` point at it) and
the page's blocks run in order, so a later block sees what an earlier one did; a page that
starts its own daemon (`logd run` in a block, as its reader would) gets a socket path of its own:
- `sh`/`bash`/`shell`: bash with `-euo pipefail`;
- `python`: a script;
- `toml`: through `logd check` (it must be a valid config);
- `go`: a `package main` is compiled with Debian's Go and zerolog, and run.
A block preceded by `<!-- illustrative ... -->` is skipped by name (it would run in the
foreground or change the system); `text`, `json`, `console` and untagged blocks are sample
output, not code.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from ship_support import free_port
from support import DaemonProcess

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNABLE = {"sh": "shell", "bash": "shell", "shell": "shell", "python": "python", "toml": "toml", "go": "go"}
ILLUSTRATIVE = re.compile(r"<!--\s*illustrative\b")
FENCE = re.compile(r"^(\s*)```\s*([A-Za-z0-9_+-]*)")
GO_PATH = "/usr/share/gocode"  # Debian's golang-github-rs-zerolog-dev puts zerolog here


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    kind: str  # shell, python, toml, go; "" for sample output
    code: str
    illustrative: bool

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    out: list[Block] = []
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang = m.group(1), m.group(2).lower()
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith("```"):
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j])
            j += 1
        out.append(Block(page, i + 1, RUNNABLE.get(lang, ""), "\n".join(body) + "\n",
                         bool(ILLUSTRATIVE.search(previous))))
        i = j + 1
    return out


@pytest.fixture(scope="module")
def go_cache() -> Path:
    path = Path(tempfile.mkdtemp(prefix="logd-go-cache-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_block(block: Block, folder: Path, env: dict[str, str], index: int, go_cache: Path) -> None:
    saved = folder / ".shell_state.cwd"
    cwd = Path(saved.read_text().strip()) if saved.exists() else folder  # where the page's shell is now

    def check(cmd: list[str], extra_env: dict[str, str] | None = None) -> None:
        # output to files, not pipes: a daemon a block starts in the background keeps them open
        out, err = folder / f"block_{index}.out", folder / f"block_{index}.err"
        with open(out, "w") as stdout, open(err, "w") as stderr:
            code = subprocess.run(cmd, cwd=cwd, env={**env, **(extra_env or {})}, stdout=stdout, stderr=stderr,
                                  timeout=120).returncode
        assert code == 0, (f"{block.where}: {block.kind} block failed (exit {code})\n"
                           f"--- block ---\n{block.code}--- stdout ---\n{out.read_text()[-3000:]}"
                           f"--- stderr ---\n{err.read_text()[-3000:]}")

    if block.kind == "shell":
        # one terminal per page, as its reader has: a block sees the folder and the variables
        # the blocks before it left (state saved after each block, restored before the next)
        state = folder / ".shell_state"
        script = (f'[ -f "{state}" ] && source "{state}" 2>/dev/null\n'
                  "set -euo pipefail\n" + block.code +
                  f'\n{{ declare -p | grep -Ev "^declare -[a-zA-Z]*r" ; echo "cd $(printf %q "$PWD")"; }} > "{state}"\n'
                  f'pwd > "{state}.cwd"\n')
        check(["bash", "-c", script])
    elif block.kind == "python":
        script = folder / f"block_{index}.py"
        script.write_text(block.code)
        check([sys.executable, str(script)])
    elif block.kind == "toml":
        config = folder / f"block_{index}.toml"
        config.write_text(block.code)
        names = re.findall(r'"env:([A-Za-z_][A-Za-z0-9_]*)"', block.code)  # a reader has these set
        check([sys.executable, "-m", "logd", "check", "--config", str(config)],
              {name: "example" for name in names})
    elif block.kind == "go":
        assert "package main" in block.code, f"{block.where}: a Go block must be a whole program, or illustrative"
        source = folder / f"go_{index}" / "main.go"
        source.parent.mkdir()
        source.write_text(block.code)
        binary = source.parent / "program"
        go_env = {**env, "GO111MODULE": "off", "GOPATH": f"{folder / 'gopath'}:{GO_PATH}",
                  "GOCACHE": str(go_cache), "GOFLAGS": ""}
        result = subprocess.run(["go", "build", "-o", str(binary), str(source)], cwd=source.parent, env=go_env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{block.where}: go build failed\n{result.stderr}"
        check([str(binary)])


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_code_block_runs(page: Path, tmp_path: Path, sock_dir: Path, go_cache: Path) -> None:
    runnable = [b for b in blocks(page) if b.kind and not b.illustrative]
    if not runnable:
        return  # a page of prose and sample output only
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    if page.name == "README.md":
        after_the_quick_start(runnable, tmp_path, sock_dir, go_cache)
        return
    sock = sock_dir / "logd.sock"
    env = {**os.environ, "NO_COLOR": "1", "LOGD_SOCKET": str(sock), "PAGER": "cat", "LOGD_OTLP_LISTEN": "",
           "LOGD_DEMO": str(tmp_path / "demo"),  # docs/reading.md's folder (/tmp/logd-demo is shared)
           "LOGD_MONITORING": str(sock_dir / "monitoring"),  # docs/monitoring.md's: its socket is in it
           "LOGD_TRACES_DEMO": str(sock_dir / "traces"),  # docs/traces.md's
           "LOGD_OTLP_DEMO": str(sock_dir / "otlp"), "OTLP_ADDRESS": f"127.0.0.1:{free_port()}",  # docs/otlp.md's
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("LOGD_CONFIG", None)
    if any(b.kind == "shell" and "logd run" in b.code for b in runnable):
        # the page starts (and stops) its own daemon, as a reader would; it gets a socket of its own
        for index, block in enumerate(runnable):
            run_block(block, tmp_path, env, index, go_cache)
        return
    config = tmp_path / "agentflow.toml"
    config.write_text(f'[logging]\nlevel = "debug"\nfile = "logs/agent.log"\n\n[logging.socket]\npath = "{sock}"\n')
    daemon = DaemonProcess(config, sock, tmp_path).start()
    env = {**env, **daemon.env, "LOGD_CONFIG": str(config), "PATH": env["PATH"]}
    try:
        for index, block in enumerate(runnable):
            run_block(block, tmp_path, env, index, go_cache)
    finally:
        code = daemon.stop()
    assert code == 0, f"logd exited with {code} after {page.name}'s blocks: {daemon.stderr()[-2000:]}"


def after_the_quick_start(runnable: list[Block], folder: Path, runtime: Path, go_cache: Path) -> None:
    """README's blocks in a second terminal beside `make run`, as pasted."""
    (folder / "config").mkdir()
    config = folder / "config" / "agentflow.toml"
    shutil.copy(ROOT / "config" / "agentflow.toml", config)
    user_socket = runtime / "logd" / "logd.sock"  # where `make run`'s daemon listens: its config names none
    daemon = DaemonProcess(config, user_socket, folder, env={"XDG_RUNTIME_DIR": str(runtime)}).start()
    venv_bin = Path(sys.executable).parent
    path = [p for p in os.environ["PATH"].split(os.pathsep) if p and not (Path(p) / "logd").exists()]
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("LOGD_") or name == "LOGD_SYSTEM_ROOT"}  # the suite's own system root
    env.update({"NO_COLOR": "1", "PAGER": "cat", "XDG_RUNTIME_DIR": str(runtime), "PATH": os.pathsep.join(path)})
    assert not shutil.which("logd", path=env["PATH"]) and (venv_bin / "logd").exists()
    try:
        for index, block in enumerate(runnable):
            run_block(block, folder, env, index, go_cache)
    finally:
        code = daemon.stop()
    assert code == 0, f"logd exited with {code} after README's blocks: {daemon.stderr()[-2000:]}"
    stored = (folder / "logs" / "agent.log").read_text()
    for sent in ("Agent execution completed", "slow tool", "calling tool", '"duration":2000,"session_id":"s-42"'):
        assert sent in stored, sent  # the shell, Python and Go blocks reached `make run`'s daemon


def test_readme_is_a_front_door():
    assert len((ROOT / "README.md").read_text().splitlines()) < 250


def test_every_page_is_linked_from_readme():
    readme = (ROOT / "README.md").read_text()
    for page in PAGES[1:]:
        assert f"docs/{page.name}" in readme, f"README does not link docs/{page.name}"


def test_config_reference_is_generated_from_the_validators():
    from logd.config_doc import reference_markdown

    assert (ROOT / "docs" / "config-reference.md").read_text() == reference_markdown(), \
        "regenerate it: python -m logd.config_doc > docs/config-reference.md"


def test_illustrative_blocks_are_few():
    every = [b for page in PAGES for b in blocks(page) if b.kind]
    skipped = [b.where for b in every if b.illustrative]
    assert len(skipped) <= len(every) // 3, skipped
