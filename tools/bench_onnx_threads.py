"""Generation speed of an ONNX build idle and beside a busy neighbour: edgekit's adaptive threads against
fixed thread counts, in one process.

    python tools/bench_onnx_threads.py MODEL_DIR [--rounds N] [--max-tokens N] [--threads N ...]

MODEL_DIR is an ONNX folder (``tools/bench_onnx.py`` leaves its builds in ``~/.cache/edgekit/bench-onnx``).
Each side is one backend: ``auto`` (no thread count given: each generation runs on a session with as many
threads as cores are free, see edgekit/runtime/onnx.py) and each fixed count. For each condition (idle,
then with a process spinning on one core) every side answers the same greedy prompt ``--rounds`` times,
sides taken in turn; medians of generation tok/s, and each side's ratio to the best side of that
condition.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import edgekit

PROMPT = "Write a short paragraph about the history of the bicycle and why people still ride one today."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, nargs="*", default=[2, 1], help="fixed counts to compare")
    opts = parser.parse_args()
    sides = {"auto": edgekit.load(str(opts.model))}
    sides.update({str(n): edgekit.load(str(opts.model), threads=n) for n in opts.threads})
    for model in sides.values():  # warm-up
        model.chat("Hello", temperature=0.0, max_tokens=4)
    print(f"{opts.model}: generation tok/s, medians of {opts.rounds} rounds of {opts.max_tokens} tokens")
    for busy in (False, True):
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            time.sleep(0.5)
            seen: dict[str, list[float]] = {k: [] for k in sides}
            for r in range(opts.rounds):
                for label, model in sides.items():
                    reply = model.chat(
                        f"Request {r + 1}. {PROMPT}", temperature=0.0, max_tokens=opts.max_tokens
                    )
                    seen[label].append(reply.timings.tokens_per_s)
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
        med = {k: statistics.median(v) for k, v in seen.items()}
        best = max(med.values())
        row = ", ".join(f"{k} {v:.1f} ({v / best:.2f}x best)" for k, v in med.items())
        print(f"{'one core busy' if busy else 'idle':>13}: {row}")
    for model in sides.values():
        model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
