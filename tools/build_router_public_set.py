"""Build the router's second evaluation set, from public data no one here wrote, for testing only.

    python tools/build_router_public_set.py [--data ../shared/data] [--out router-public.jsonl]

The shipped set (recipes/data/router/prompts.jsonl) is short questions from tables written for edgekit;
its calibration half chose every shipped threshold. This set is another distribution: longer,
multi-sentence prompts from two public sources, every item marked ``test_only`` (never calibrated on):

- ``gsm8k-N``: grade-school math word problems (openai/grade-school-math, train split, line N of
  ``safety/benign/gsm8k-train.jsonl``; MIT), asked as written. Check: the answer's last number is the
  reference's final answer (after ``####``).
- ``table-N``: a question about a table (microsoft/BIPIA's table split, from WikiTableQuestions, line N of
  ``safety/bipia-train/table/train.jsonl``; MIT). Only items whose reference answer is one cell of the
  table; the check accepts that cell as a whole word and rejects the other cells of its column (the
  candidates the table offers), so an answer must choose exactly one and an echo of the table fails.

Items are drawn with a fixed seed; rerunning gives the same file. Every item's prompt alone fails its own
check (the echo rule of ``tools/build_router_set.py``). The file is written outside the repository
(nothing from ../shared/data is copied into it); the per-item results the README cites name items by id.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path
from typing import Any

from edgekit.cascade.evaluation import Item, is_correct, term_in
from edgekit.files import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
GSM8K = "safety/benign/gsm8k-train.jsonl"
TABLES = "safety/bipia-train/table/train.jsonl"
N_GSM8K, N_TABLES = 60, 90
MAX_TABLE_CHARS = 2500  # about 800 tokens: the prompt stays inside the local model's context gate
SEED = 20261202
_FINAL = re.compile(r"####\s*(-?[\d,]*\.?\d+)\s*$")


def _rows(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError as e:
        raise SystemExit(
            f"{path}: cannot read ({e.strerror}); pass --data DIR (the shared data folder)"
        ) from None


def gsm8k_items(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for n, row in enumerate(rows, 1):
        final = _FINAL.search(row["answer"].strip())
        if final is None:
            continue
        check = {"type": "number", "value": float(final.group(1).replace(",", ""))}
        out.append(
            {"id": f"gsm8k-{n}", "category": "math", "prompt": row["question"].strip(), "check": check}
        )
    return out


def _cells(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.strip().splitlines()]


def _plain(cell: str) -> str:
    return cell.strip().strip('"').strip()


def table_items(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for n, row in enumerate(rows, 1):
        table, ideal = row["context"], _plain(row["ideal"])
        if len(table) > MAX_TABLE_CHARS or not re.search(r"\w", ideal):
            continue
        grid = _cells(table)
        columns = {j for r in grid[1:] for j, c in enumerate(r) if _plain(c).lower() == ideal.lower()}
        if len(columns) != 1:
            continue  # the answer is not exactly one column's cell (a sum, a count, a phrase)
        (col,) = columns
        others = {_plain(r[col]) for r in grid[1:] if len(r) > col}
        # candidates: the column's other cells with a word in them, none that the answer itself contains
        reject = sorted(
            c for c in others if re.search(r"\w", c) and c.lower() != ideal.lower() and not term_in(c, ideal)
        )
        if not reject:
            continue
        prompt = f"{table.rstrip()}\n\nAnswer using the table above: {row['question'].strip()}"
        check = {"type": "word", "values": [ideal.lower()], "reject": [c.lower() for c in reject]}
        out.append({"id": f"table-{n}", "category": "table", "prompt": prompt, "check": check})
    return out


def build(data: Path) -> list[Item]:
    rng = random.Random(SEED)
    chosen: list[dict[str, Any]] = []
    for pool, k in (
        (gsm8k_items(_rows(data / GSM8K)), N_GSM8K),
        (table_items(_rows(data / TABLES)), N_TABLES),
    ):
        fair = [d for d in pool if not is_correct(d["prompt"], Item.model_validate(d).check)]  # echo rule
        chosen += sorted(rng.sample(fair, k), key=lambda d: int(d["id"].rsplit("-", 1)[1]))
    return [Item.model_validate({**d, "test_only": True}) for d in chosen]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=Path("router-public.jsonl"))
    args = ap.parse_args()
    items = build(args.data)
    atomic_write_text(args.out, "".join(i.model_dump_json(exclude_defaults=True) + "\n" for i in items))
    print(f"{len(items)} items -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
