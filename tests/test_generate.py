"""Shell completion and the man page come from the argparse parser, so every command is in them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from logd.cli import build_parser
from logd.cli.generate import completion, man_page

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


def test_bash_completion_completes_commands_and_flags(tmp_path):
    script = tmp_path / "logd.bash"
    script.write_text(completion("bash"))

    def complete(*words: str) -> list[str]:
        line = " ".join(f"'{w}'" for w in words)
        out = subprocess.run(["bash", "-c", f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
                              "_shtab_logd; printf '%s\\n' \"${COMPREPLY[@]}\""],
                             capture_output=True, text=True, check=True)
        return out.stdout.split()

    assert sorted(complete("logd", "")) >= sorted(set(COMMANDS) - {""})
    assert complete("logd", "qu") == ["query"]
    assert "--since" in complete("logd", "query", "--si")


def test_man_page_documents_every_command(tmp_path):
    page = man_page()
    for command in COMMANDS:
        assert f"'logd {command}'" in page, command
    (tmp_path / "man1").mkdir()
    (tmp_path / "man1" / "logd.1").write_text(page)
    rendered = subprocess.run(["man", "-M", str(tmp_path), "-P", "cat", "logd"], capture_output=True, text=True,
                              env={"MANWIDTH": "100", "PATH": "/usr/bin:/bin"})
    assert rendered.returncode == 0, rendered.stderr
    assert "Log daemon for multi-agent systems" in rendered.stdout


def test_generate_writes_the_files_make_install_installs(tmp_path):
    out = subprocess.run([sys.executable, "-m", "logd.cli.generate", str(tmp_path)], capture_output=True, text=True,
                         check=True)
    assert sorted(out.stdout.split()) == sorted(str(tmp_path / p) for p in
                                                ("man/logd.1", "completion/logd.bash", "completion/_logd"))


def test_make_man_puts_the_page_where_man_finds_it_with_the_venv_on_path():
    """`make run` builds the man page (issue 29, item 3): with README's PATH line, `man logd` works."""
    made = subprocess.run(["make", "--no-print-directory", "man"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert made.returncode == 0, made.stdout + made.stderr
    venv_bin = Path(sys.executable).parent
    env = {"PATH": f"{venv_bin}:/usr/bin:/bin", "MANWIDTH": "100"}  # no MANPATH: man-db maps PATH's bin to share/man
    found = subprocess.run(["man", "-w", "logd"], capture_output=True, text=True, env=env, timeout=30)
    assert found.returncode == 0 and found.stdout.strip() == str(venv_bin.parent / "share" / "man" / "man1" / "logd.1")
