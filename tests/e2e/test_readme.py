"""Runs every shell and Python block of README.md, in order, as a newcomer would paste them.

Shell blocks run in one scratch directory (``bash -euo pipefail``; ``curl`` fails on an
HTTP error status), Python blocks with the venv's interpreter there. The README's ports
(50051, 15001, 8080, ...) are replaced by free ones, the same one everywhere, and the
sidecar's default listen addresses are moved to free ports through
``GRPCMESH_CFG__OUTBOUND`` / ``INBOUND`` / ``ADMIN`` (and ``GRPCMESH_SIDECAR`` for the SDK).

An HTML comment on the line before a fence says how to treat the block:

* ``<!-- readme-test: background -->`` -- each line is a long-running server: started in
  the background, ready once it logs ``listening on`` / ``sidecar ready``, stopped at the end;
* ``<!-- readme-test: file PATH -->`` -- the block is the content of PATH (then run if Python);
* ``<!-- readme-test: skip REASON -->`` -- not run here (REASON says where it is covered).

Indented (unfenced) blocks are output samples and sketches; they are not run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.procs import ManagedProcess, ProcessGroup, free_port, wait_for

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
PORTS = ("50051", "50061", "50071", "50081", "50091", "15000", "15001", "15090", "8080")
RUNNABLE = {"sh": "shell", "shell": "shell", "bash": "shell", "python": "python"}
READY = ("listening on", "sidecar ready")
_MARKER = re.compile(r"<!--\s*readme-test:\s*(\w+)\s*(.*?)\s*-->")
PREAMBLE = 'curl() { command curl --silent --show-error --fail-with-body "$@"; }\n'


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    kind: str  # shell | python
    text: str
    marker: str = ""  # background | file | skip | ""
    argument: str = ""


def readme_blocks(text: str) -> list[Block]:
    """The fenced sh/python blocks of ``text`` with the marker on the line before each."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        kind = RUNNABLE.get(fence.group(1))
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = _MARKER.search(previous)
        if kind:
            body = "\n".join(lines[i + 1 : end]) + "\n"
            blocks.append(Block(i + 1, kind, body, *(marker.groups() if marker else ("", ""))))
        i = end + 1
    return blocks


def test_the_marker_convention_is_parsed() -> None:
    sample = "x\n<!-- readme-test: background -->\n```sh\nserve\n```\n```toml\na = 1\n```\n```python\nprint(1)\n```\n"
    blocks = readme_blocks(sample)
    assert [(b.line, b.kind, b.marker, b.text) for b in blocks] == [
        (3, "shell", "background", "serve\n"),
        (9, "python", "", "print(1)\n"),
    ]


class Session:
    """One newcomer's terminal: a scratch directory, free ports, the servers started so far."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cwd = root / "work"
        self.cwd.mkdir()
        self.procs = ProcessGroup(root)
        self.ports = {p: str(free_port()) for p in PORTS}
        venv_bin = str(Path(sys.executable).parent)
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRPCMESH_")}
        env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
        env.pop("PYTHONPATH", None)
        env.update(
            GRPCMESH_SIDECAR=f"127.0.0.1:{self.ports['15001']}",
            GRPCMESH_CFG__OUTBOUND=f"127.0.0.1:{self.ports['15001']}",
            GRPCMESH_CFG__INBOUND=f"127.0.0.1:{self.ports['15000']}",
            GRPCMESH_CFG__ADMIN=f"127.0.0.1:{self.ports['15090']}",
            OTEL_BSP_SCHEDULE_DELAY="200",
        )
        self.env = env
        self.ran = 0

    def localise(self, text: str) -> str:
        return re.sub(r"\b(" + "|".join(PORTS) + r")\b", lambda m: self.ports[m.group(1)], text)

    def run(self, block: Block) -> None:
        text = self.localise(block.text)
        where = f"README.md:{block.line}"
        if block.marker == "skip":
            assert block.argument, f"{where}: a skipped block says why"
            return
        self.ran += 1
        if block.marker == "file":
            target = self.cwd / block.argument
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        if block.marker == "background":
            self.start(text, where)
            return
        argv = (
            ["bash", "-euo", "pipefail", "-c", PREAMBLE + text]
            if block.kind == "shell"
            else [sys.executable, "-c", text]
        )
        done = subprocess.run(argv, cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (
            f"{where} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )

    def start(self, text: str, where: str) -> None:
        for command in (c.strip() for c in text.splitlines()):
            if not command or command.startswith("#"):
                continue
            name = re.sub(r"\W+", "-", command)[:40]
            proc = self.procs.start(["bash", "-c", command], name, env=self.env, cwd=self.cwd)
            self._ready(proc, f"{where}: {command}")

    @staticmethod
    def _ready(proc: ManagedProcess, what: str) -> None:
        def up() -> bool:
            out = proc.output()
            if any(needle in out for needle in READY):
                return True
            if not proc.alive():
                raise AssertionError(f"{what} exited {proc.proc.returncode}:\n{out[-3000:]}")
            return False

        wait_for(up, timeout=60, interval=0.05, what=what)


@pytest.mark.timeout(400)
def test_every_readme_block_runs_verbatim(tmp_path: Path) -> None:
    blocks = readme_blocks(README.read_text())
    assert len(blocks) >= 8
    session = Session(tmp_path)
    try:
        for block in blocks:
            session.run(block)
    finally:
        session.procs.stop_all()
    assert session.ran >= len(blocks) - 3  # skipping is the exception
