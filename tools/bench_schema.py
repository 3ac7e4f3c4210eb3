"""Schema-constrained generation speed against raw free generation, in the same run, on the default model.

    EDGEKIT_THREADS=1 python tools/bench_schema.py [--rounds 3] [--max-tokens 96] [--json out.json]

Four sides, interleaved round by round so drift on a shared machine hits all of them:
  raw        llama-cpp-python's own ``Llama.generate``, no grammar (the baseline)
  llama-gbnf llama-cpp-python with llama.cpp's JSON-schema grammar (``LlamaGrammar.from_json_schema``)
  free       edgekit's llama.cpp backend, no schema
  schema     edgekit's llama.cpp backend with the schema (llguidance token masks)
Speed is decode tokens per second after the first token (prompt processing excluded). Target: schema >= 0.90x
raw. Also prints the mean mask time per token measured inside the schema runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import edgekit  # noqa: E402
from edgekit.runtime.types import GenerationParams  # noqa: E402
from edgekit.schema import compile_schema  # noqa: E402
from edgekit.schema import matcher as matcher_mod  # noqa: E402
from edgekit.schema.generate import with_instruction  # noqa: E402

SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 60},
        "year": {"type": "integer", "minimum": 1900, "maximum": 2100},
        "genres": {
            "type": "array",
            "items": {"enum": ["drama", "comedy", "action", "horror"]},
            "maxItems": 3,
        },
        "plot": {"type": "string", "maxLength": 1000},
    },
    "required": ["title", "year", "genres", "plot"],
    "additionalProperties": False,
}
PROMPT = "Invent a film and describe its plot in detail."


def rate(stamps: list[float]) -> tuple[int, float]:
    return len(stamps), (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 2 else 0.0


def run_raw(backend, tokens: list[int], n: int, seed: int, grammar=None) -> tuple[int, float]:
    llm = backend.llm
    llm.set_seed(seed)
    stamps: list[float] = []
    gen = llm.generate(tokens, top_k=40, top_p=0.95, min_p=0.0, temp=0.7, repeat_penalty=1.0, grammar=grammar)
    for tok in gen:
        stamps.append(time.perf_counter())
        if llm._model.token_is_eog(tok) if hasattr(llm._model, "token_is_eog") else tok == llm.token_eos():
            break
        if len(stamps) >= n:
            break
    gen.close()
    return rate(stamps)


def run_edgekit(backend, msgs, params: GenerationParams) -> tuple[int, float]:
    stamps = [time.perf_counter() for chunk in backend.stream(msgs, params) if chunk.signals]
    return rate(stamps)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from llama_cpp import LlamaGrammar

    compiled = compile_schema(SCHEMA)
    model = edgekit.load()
    backend = model.backend
    msgs = with_instruction([{"role": "user", "content": PROMPT}], compiled)
    tokens = backend.prompt_tokens(msgs)
    gbnf = LlamaGrammar.from_json_schema(json.dumps(SCHEMA), verbose=False)
    matcher_mod.tokenizer_for(backend)  # built once per model (about a second), not part of generation

    mask_time = [0.0, 0]
    original = matcher_mod.GrammarMask.apply

    def timed_apply(self, logits):
        t = time.perf_counter()
        out = original(self, logits)
        mask_time[0] += time.perf_counter() - t
        mask_time[1] += 1
        return out

    matcher_mod.GrammarMask.apply = timed_apply  # type: ignore[method-assign]
    sides: dict[str, list[tuple[int, float]]] = {"raw": [], "llama-gbnf": [], "free": [], "schema": []}
    for r in range(args.rounds):
        free = GenerationParams(max_tokens=args.max_tokens, temperature=0.7, seed=r)
        sides["raw"].append(run_raw(backend, tokens, args.max_tokens, r))
        sides["llama-gbnf"].append(run_raw(backend, tokens, args.max_tokens, r, grammar=gbnf))
        sides["free"].append(run_edgekit(backend, msgs, free))
        sides["schema"].append(
            run_edgekit(
                backend,
                msgs,
                GenerationParams(
                    max_tokens=args.max_tokens,
                    temperature=0.7,
                    seed=r,
                    response_format=compiled.response_format(),
                ),
            )
        )
    result: dict[str, object] = {"threads": os.environ.get("EDGEKIT_THREADS"), "rounds": args.rounds}
    speeds = {}
    for name, runs in sides.items():
        toks = sum(n for n, _ in runs)
        speeds[name] = sum(s * n for n, s in runs) / max(toks, 1)  # token-weighted mean tok/s
        result[name] = {"tokens": toks, "tok_per_s": round(speeds[name], 1)}
    for name in ("llama-gbnf", "free", "schema"):
        result[f"{name}/raw"] = round(speeds[name] / speeds["raw"], 3)
    result["mask_us_per_token"] = round(1e6 * mask_time[0] / max(mask_time[1], 1), 1)
    for key, value in result.items():
        print(f"{key:22} {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
