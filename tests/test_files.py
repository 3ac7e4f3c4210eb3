"""The ground floor's file helpers: temporary siblings that a killed process left behind are swept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from edgekit.files import atomic_output, atomic_write_bytes


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_write_sweeps_what_a_killed_writer_left_and_keeps_the_rest(tmp_path: Path) -> None:
    final = tmp_path / "model.gguf"
    stale = tmp_path / f".model.gguf.{_dead_pid()}.abc123.tmp"
    stale_folder = tmp_path / f".model.gguf.{_dead_pid()}.def456.tmp"
    running = tmp_path / f".model.gguf.{os.getppid()}.ghi789.tmp"  # its writer still runs
    unnamed = tmp_path / ".model.gguf.jkl012.tmp"  # no process id in the name: not ours to judge
    other = tmp_path / f".other.gguf.{_dead_pid()}.mno345.tmp"
    for p in (stale, running, unnamed, other):
        p.write_bytes(b"x" * 1000)
    stale_folder.mkdir()
    (stale_folder / "model.onnx").write_bytes(b"x")
    atomic_write_bytes(final, b"new")
    assert final.read_bytes() == b"new"
    assert not stale.exists() and not stale_folder.exists()
    assert running.exists() and unnamed.exists() and other.exists()


def test_a_writer_killed_mid_output_leaves_a_temp_the_next_run_removes(tmp_path: Path) -> None:
    """SIGKILL while a quantizer writes its output: the next output to that path removes the leftover."""
    final = tmp_path / "out.gguf"
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from edgekit.files import atomic_output\n"
        "with atomic_output(Path(sys.argv[1])) as tmp:\n"
        "    tmp.write_bytes(b'x' * 100_000)\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(final)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    left = list(tmp_path.glob(".out.gguf.*.tmp"))
    assert len(left) == 1 and not final.exists()
    with atomic_output(final) as tmp:
        tmp.write_bytes(b"done")
    assert final.read_bytes() == b"done" and not list(tmp_path.glob(".out.gguf.*.tmp"))
