"""Conformance coverage of the schema-to-grammar path on the official JSON-Schema-Test-Suite (draft 2020-12).

    EDGEKIT_THREADS=1 python tools/schema_coverage.py

Per suite file: how many test groups are judged by the grammar itself, how many use a keyword that is
only validated after generation, and how many schemas are refused at compile time (unsatisfiable, or
beyond the grammar compiler); then the totals, and every invalid instance the grammar accepted (must be
none) or valid instance it refused (the declared canonical forms; see tests/schema/test_conformance.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import edgekit  # noqa: E402
from edgekit.schema.conformance import run_suite  # noqa: E402
from edgekit.schema.matcher import tokenizer_for  # noqa: E402


def main() -> None:
    with edgekit.load() as model:
        cov = run_suite(ROOT / "tests/schema/suite/draft2020-12", tokenizer_for(model.backend))
    print("\n".join(cov.lines()))
    for file, group, test in cov.false_accepts:
        print(f"FALSE ACCEPT {file}: {group}: {test}")
    for file, group, test in cov.false_rejects:
        print(f"narrower     {file}: {group}: {test}")


if __name__ == "__main__":
    main()
