"""Benchmark edgekit distill: the distilled student against the same pruned student before training, and
the teacher, on the held-out evaluation text (recipes/data/eval/, never trained on).

    nice python tools/bench_distill.py [--teacher NAME|DIR] [--drop-layers N] [--steps N] [--threads N]

Distills the teacher (default: the default model, dequantized to a Hugging Face folder) on
recipes/data/distill/train.txt, rebuilds the pruned student before training (the same dropped layers),
and reports for teacher, student before and student after, in the same run on the same threads:
parameters, safetensors size, greedy generation tok/s (transformers, fp32, alternating rounds) and
KL(teacher || model) per token on the evaluation windows (mean, top-1 agreement with the teacher,
perplexity). Target (issue 3): the distilled student's KLD below the undistilled one's, smaller and
faster than the teacher.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from edgekit.compress.distill import DistillConfig, distill
from edgekit.compress.distill.data import text_windows
from edgekit.compress.distill.prune import drop_layers
from edgekit.compress.distill.teacher import resolve_teacher
from edgekit.config import Settings

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT / "recipes" / "data" / "eval"
EVAL_FILES = ("prose.txt", "code.txt", "structured.txt", "multilingual.txt", "long_context.txt")


@torch.no_grad()
def drift(model: torch.nn.Module, teacher_logits: list[torch.Tensor], windows: list[torch.Tensor]) -> dict:
    kld_sum = agree = nll = tokens = 0.0
    for ids, t_logits in zip(windows, teacher_logits, strict=True):
        logits = model(input_ids=ids.unsqueeze(0), use_cache=False).logits[0, :-1].float()
        log_p, log_q = torch.log_softmax(t_logits, -1), torch.log_softmax(logits, -1)
        kld_sum += float((log_p.exp() * (log_p - log_q)).sum())
        agree += float((t_logits.argmax(-1) == logits.argmax(-1)).sum())
        nll -= float(log_q.gather(-1, ids[1:, None]).sum())
        tokens += ids.numel() - 1
    return {
        "kld": kld_sum / tokens,
        "top1": agree / tokens,
        "ppl": float(torch.exp(torch.tensor(nll / tokens))),
    }


@torch.no_grad()
def tok_per_s(model: torch.nn.Module, prompt: torch.Tensor, new_tokens: int) -> float:
    started = time.perf_counter()
    out = model.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
    )
    assert out.shape[1] == prompt.shape[1] + new_tokens
    return new_tokens / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="smollm2-135m-instruct")
    parser.add_argument("--drop-layers", type=int, default=6)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--teacher-top-k", type=int, default=0, help="cached top-K teacher targets (0: full)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-window", type=int, default=256)
    parser.add_argument("--gen-tokens", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=2)
    opts = parser.parse_args()
    torch.set_num_threads(opts.threads)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    teacher_dir = resolve_teacher(opts.teacher, Settings.from_env()).folder
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-distill-") as tmp:
        config = DistillConfig(
            teacher=str(teacher_dir),
            drop_layers=opts.drop_layers,
            out=Path(tmp) / "student",
            steps=opts.steps,
            seq_len=opts.seq_len,
            batch_size=opts.batch_size,
            lr=opts.lr,
            temperature=opts.temperature,
            teacher_top_k=opts.teacher_top_k,
            checkpoint_every=opts.steps,
            threads=opts.threads,
        )
        started = time.perf_counter()
        last = [0.0]

        def progress(stage: str, done: int, total: int | None) -> None:
            if stage == "distill" and time.perf_counter() - last[0] > 30:
                last[0] = time.perf_counter()
                print(f"  distill step {done}/{total} ({last[0] - started:.0f} s)", flush=True)

        result = distill(config, progress=progress)
        train_s = time.perf_counter() - started
        teacher = AutoModelForCausalLM.from_pretrained(teacher_dir, dtype=torch.float32).eval()
        before = drop_layers(teacher, result.dropped).eval()
        after = AutoModelForCausalLM.from_pretrained(config.out, dtype=torch.float32).eval()
        tok = AutoTokenizer.from_pretrained(teacher_dir)
        size = {
            "teacher": (teacher_dir / "model.safetensors").stat().st_size,
            "student": (config.out / "model.safetensors").stat().st_size,
        }

        text = "\n\n".join((EVAL / name).read_text(encoding="utf-8") for name in EVAL_FILES)
        windows = [e.input_ids for e in text_windows(text, tok, opts.eval_window)]
        with torch.no_grad():
            t_logits = [
                teacher(input_ids=w.unsqueeze(0), use_cache=False).logits[0, :-1].float() for w in windows
            ]
        scores = {
            name: drift(m, t_logits, windows)
            for name, m in (("teacher", teacher), ("before", before), ("after", after))
        }

        prompt = tok(
            "Write a short paragraph about the history of the bicycle.", return_tensors="pt"
        ).input_ids
        speed: dict[str, list[float]] = {"teacher": [], "student": []}
        tok_per_s(after, prompt, 4)  # warm-up
        for r in range(opts.rounds):  # ABBA: drift on a shared machine hits both sides
            order = [("teacher", teacher), ("student", after)]
            for name, m in order if r % 2 == 0 else order[::-1]:
                speed[name].append(tok_per_s(m, prompt, opts.gen_tokens))
        tps = {k: sorted(v)[len(v) // 2] for k, v in speed.items()}

    n_tokens = sum(w.numel() - 1 for w in windows)
    print(f"teacher {opts.teacher}: {result.layers_teacher} layers; student drops {list(result.dropped)}")
    print(
        f"distilled {result.steps} steps x {opts.batch_size} x {opts.seq_len} tokens in {train_s:.0f} s "
        f"({opts.threads} thread(s), teacher top-k {opts.teacher_top_k or 'all'}); "
        f"probe KD loss {result.loss_before:.4f} -> {result.loss_after:.4f}"
    )
    print(f"held-out: {len(windows)} windows, {n_tokens} predicted tokens from recipes/data/eval/")
    print(
        f"{'model':<16}{'layers':>7}{'params':>10}{'size MB':>9}{'tok/s':>8}{'KLD':>9}{'top1':>7}{'ppl':>8}"
    )
    rows = [
        ("teacher", result.layers_teacher, result.params_teacher, size["teacher"], tps["teacher"]),
        ("student before", result.layers_student, result.params_student, size["student"], tps["student"]),
        ("student after", result.layers_student, result.params_student, size["student"], tps["student"]),
    ]
    for (label, layers, params, nbytes, speed_), key in zip(
        rows, ("teacher", "before", "after"), strict=True
    ):
        s = scores[key]
        print(
            f"{label:<16}{layers:>7}{params / 1e6:>9.1f}M{nbytes / 1e6:>9.1f}{speed_:>8.1f}"
            f"{s['kld']:>9.4f}{s['top1']:>7.3f}{s['ppl']:>8.2f}"
        )
    ratio = scores["after"]["kld"] / scores["before"]["kld"]
    print(
        f"KLD after/before {ratio:.3f}x ({'lower' if ratio < 1 else 'NOT lower'}); "
        f"size {size['student'] / size['teacher']:.3f}x, "
        f"tok/s {tps['student'] / tps['teacher']:.3f}x the teacher"
    )
    return 0 if ratio < 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
