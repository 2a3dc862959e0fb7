"""Shell completion and the man page, generated from the one argparse parser so they cannot
drift from the commands: ``python -m logd.cli.generate DIR`` (``make man`` runs it) writes
``DIR/man/logd.1``, ``DIR/completion/logd.bash`` and ``DIR/completion/_logd`` (zsh).
Needs shtab and argparse-manpage (the ``test`` extra); ``make install`` installs the results."""

from __future__ import annotations

import sys
from pathlib import Path

from logd.cli import build_parser
from logd.extras import require


def man_page() -> str:
    manpage = require("argparse_manpage.manpage", "generating the man page")
    parser = build_parser()
    text = str(manpage.Manpage(parser, _data={"description": parser.description, "project_name": "logd",
                                               "url": "file:///usr/share/doc/logd/README.md"}))
    return text


def completion(shell: str) -> str:
    shtab = require("shtab", "generating shell completion")
    return str(shtab.complete(build_parser(), shell=shell))


def write_all(folder: Path) -> list[Path]:
    outputs = {folder / "man" / "logd.1": man_page(),
               folder / "completion" / "logd.bash": completion("bash"),
               folder / "completion" / "_logd": completion("zsh")}
    for path, text in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(outputs)


if __name__ == "__main__":
    for written in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "build")):
        print(written)
