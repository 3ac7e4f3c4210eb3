"""Benchmark edgekit eval: the default model against itself on the default suite (about 4,100 tokens),
cold (empty eval cache) and then against the cached baseline, each in its own process.

    python tools/bench_eval.py [--suite FILE] [--threads N]

Prints wall time, peak RSS and peak RSS above an idle process that has imported the same libraries,
for both runs, and the phase timings from the JSON report. Targets (README, Benchmarks): cold <= 60 s and
<= 1 GB extra on 2 cores; the cached run about half the cold one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import edgekit


def run_child(args: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, exit code) of one child process, measured by wait4."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 and proc.stderr is not None:
        sys.stderr.write(proc.stderr.read().decode(errors="replace")[-2000:])
    return wall, usage.ru_maxrss / 1024, proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, default=None, help="suite file [default: the shipped one]")
    parser.add_argument("--threads", type=int, default=None, help="EDGEKIT_THREADS for the runs (per model)")
    opts = parser.parse_args()
    model = str(edgekit.pull())
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-eval-") as tmp:
        env = {**os.environ, "EDGEKIT_CACHE_DIR": str(Path(tmp) / "cache")}
        if opts.threads:
            env["EDGEKIT_THREADS"] = str(opts.threads)
        idle = [sys.executable, "-c", "import edgekit, edgekit.evaluate.run, llama_cpp, numpy"]
        _, idle_mb, _ = run_child(idle, env)
        rows = []
        for label in ("cold", "cached"):
            report = Path(tmp) / f"{label}.json"
            args = [sys.executable, "-m", "edgekit", "eval", "-b", model, "-c", model, "--json", str(report)]
            if opts.suite:
                args += ["--suite", str(opts.suite)]
            wall, peak_mb, code = run_child(args, env)
            if code != 0:
                print(f"{label} run failed with exit code {code}", file=sys.stderr)
                return code
            data = json.loads(report.read_text())
            rows.append((label, wall, peak_mb, data))
    tokens = rows[0][3]["drift"]["all"]["tokens"]
    print(f"edgekit eval, default model against itself, {tokens} scored tokens per model")
    threads = env.get("EDGEKIT_THREADS", "default (half the cores)")
    print(f"threads per model: {threads}, cores: {os.cpu_count()}")
    print(f"idle process (imports only): {idle_mb:.0f} MB")
    for label, wall, peak_mb, data in rows:
        phases = ", ".join(f"{k} {v:.1f}" for k, v in data["timings_s"].items() if k != "total")
        print(
            f"{label:>6}: {wall:6.1f} s wall, peak RSS {peak_mb:5.0f} MB "
            f"({peak_mb - idle_mb:+.0f} MB over idle); "
            f"phases (s): {phases}"
        )
    print(f"cached / cold wall time: {rows[1][1] / rows[0][1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
