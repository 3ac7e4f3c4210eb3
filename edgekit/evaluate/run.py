"""run_eval: score a candidate against a baseline on a suite and check its gates.

Steps (each reports progress): resolve and load both models; tokenize every slice with both and check
that the ids agree; score each slice window by window (the baseline live with exact KL, or from the
cache with the top-k approximation); run the task prompts (the baseline's answers are cached too);
time generation on both; check the gates. A failing gate is a verdict in the report, not an exception.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from edgekit.api import Model, load
from edgekit.config import Settings, default_threads
from edgekit.errors import EdgekitError, InputError
from edgekit.evaluate import drift as drift_math
from edgekit.evaluate.cache import BaselineCache, CorruptCache, DriftEntry, cache_key
from edgekit.evaluate.drift import DriftSummary, PositionStats, TopK
from edgekit.evaluate.gates import check
from edgekit.evaluate.report import EvalReport, ModelInfo, SliceResult
from edgekit.evaluate.scoring import (
    Scorable,
    Tokens,
    check_same_tokens,
    scorable,
    scored_blocks,
    scorer_id,
    window_targets,
    windows,
)
from edgekit.evaluate.speed import Speed, measure
from edgekit.evaluate.suite import Slice, Suite, check_texts, load_suite
from edgekit.evaluate.tasks import TaskScores, run_tasks
from edgekit.files import ProgressFn, no_progress
from edgekit.models.resolve import fetch, locate

T = TypeVar("T")
BLOCK = 64
"""Positions per forward batch: bounds the logits held at once to BLOCK x vocab floats per model."""
STATS_ROWS = 16
"""Positions per numpy pass over the logits: bounds the temporaries of the drift math."""
TASK_N_CTX = 1024


def run_eval(
    baseline: str | Path,
    candidate: str | Path,
    *,
    suite: Suite | str | Path | None = None,
    cache: bool = True,
    threads: int | None = None,
    settings: Settings | None = None,
    progress: ProgressFn = no_progress,
) -> EvalReport:
    """Compare ``candidate`` with ``baseline`` (models.lock names, GGUF files or ONNX folders).

    ``suite`` is a loaded Suite, a suite file, or None for the shipped default. With ``cache`` the
    baseline's statistics and task answers are read from and written to the eval cache under
    EDGEKIT_CACHE_DIR; without it the baseline is always scored live (exact KL divergence).
    """
    started = time.perf_counter()
    settings = settings or Settings.from_env()
    # The two models run side by side: by default each gets half the cores, so neither waits on the other.
    threads = threads or settings.threads or max(1, default_threads() // 2)
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    check_texts(suite)
    run = _Run(suite, settings, progress, BaselineCache(settings.cache_dir / "eval") if cache else None)
    base_info = _resolve(baseline, "baseline", settings, progress)
    cand_info = _resolve(candidate, "candidate", settings, progress)
    n_ctx = max(TASK_N_CTX, *(s.chunk_tokens for s in suite.slices))
    with run.timed("load"):
        base = _load(base_info, n_ctx, threads, settings)
        try:
            cand = _load(cand_info, n_ctx, threads, settings)
        except BaseException:
            base.close()
            raise
    with contextlib.ExitStack() as models, ThreadPoolExecutor(2, thread_name_prefix="edgekit-eval") as pool:
        models.callback(lambda: base.close())  # the baseline may be reopened below: close the one open then
        models.enter_context(cand)
        run.pool = pool
        base_info = _with_backend(base_info, base)
        cand_info = _with_backend(cand_info, cand)
        prepared = run.prepare(base, cand, base_info)
        if suite.tasks is not None and all(p.cached is not None for p in prepared):
            # Only the candidate has work: a second copy of it answers the task prompts on the other
            # thread, then both copies take slices to score from one queue, so neither core idles
            # (one llama.cpp context serves one caller at a time). When the baseline's answers are
            # cached too, it only waits for the speed runs: it is closed meanwhile and opened again
            # then, so the helper takes its memory instead of adding to it.
            known = run.base_idle(base, base_info)
            if known is not None:
                base.close()
            with run.timed("load"):
                helper = _load(cand_info, n_ctx, threads, settings)
            with helper:
                # longest first: the two threads then finish close together
                queue = deque(sorted(enumerate(prepared), key=lambda ip: -ip[1].tokens.ids.size))
                pending = pool.submit(
                    run.drain,
                    queue,
                    helper,
                    lambda: run.tasks(base, helper, base_info, known, looked_up=True),
                )
                try:
                    with run.timed("score"):
                        mine, _ = run.drain(queue, cand)
                        theirs, tasks = pending.result()
                except BaseException:
                    run.abandon(pending)  # before the helper model is closed under its feet
                    raise
                done = {**mine, **theirs}
                slices = [done[i] for i in range(len(prepared))]
            if known is not None:
                with run.timed("load"):
                    base = _load(base_info, n_ctx, threads, settings)
        else:
            slices = run.score(prepared, base, cand)
            tasks = run.tasks(base, cand, base_info)
        speed = run.speed(base, cand, base_info, cand_info)
    overall = DriftSummary.of(PositionStats.concat([s.stats for s in slices]))
    drift = {"all": overall, **{s.name: s.summary for s in slices}}
    gates = check(suite, drift, tasks, speed)
    run.timings["total"] = time.perf_counter() - started
    from edgekit.version import __version__

    return EvalReport(
        baseline=base_info,
        candidate=cand_info,
        slices=tuple(slices),
        overall=overall,
        tasks=tasks,
        tasks_cache=run.tasks_cache,
        speed=speed,
        gates=tuple(gates),
        timings=run.timings,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        suite_path=suite.path,
        suite_description=suite.description,
        top_k=suite.top_k,
        edgekit_version=__version__,
    )


# --- models --------------------------------------------------------------------------------------


def _resolve(spec: str | Path, role: str, settings: Settings, progress: ProgressFn) -> ModelInfo:
    try:
        art = locate(spec, settings=settings)
        if art.entry is not None and art.format == "hf":
            raise InputError(
                f"{art.name} is a Hugging Face folder; eval scores GGUF files and ONNX folders",
                "Convert it to GGUF or export it to ONNX first, then compare the result.",
            )
        if art.entry is not None and (art.format == "data" or art.entry.role == "encoder"):
            raise InputError(
                f"{art.name} is a {art.entry.role} ({art.format}); eval compares causal language models",
                "Pick chat or escalation models from 'edgekit models list'.",
            )
        art = fetch(art, settings=settings, progress=progress, stage=f"hash {role}")
        fmt = "onnx" if art.path.is_dir() else "gguf"
        return ModelInfo(role, art.name, art.path, art.sha256, fmt, art.size)
    except EdgekitError as e:
        raise _for_role(e, role) from None


def _for_role(e: EdgekitError, role: str) -> EdgekitError:
    if e.message.startswith(f"{role}: "):
        return e
    try:
        return type(e)(f"{role}: {e.message}", e.hint)
    except TypeError:  # an error class with another constructor: keep it as it is
        return e


def _load(info: ModelInfo, n_ctx: int, threads: int | None, settings: Settings) -> Model:
    try:
        # An ONNX export knows its own window (config.json); a GGUF context is sized to what eval needs.
        model = load(
            info.path, n_ctx=None if info.format == "onnx" else n_ctx, threads=threads, settings=settings
        )
        scorable(model.backend, info.role)
        return model
    except EdgekitError as e:
        raise _for_role(e, info.role) from None


def _with_backend(info: ModelInfo, model: Model) -> ModelInfo:
    return ModelInfo(
        info.role, info.name, info.path, info.sha256, info.format, info.size_bytes, model.backend.name
    )


# --- the run -------------------------------------------------------------------------------------


@dataclass
class _Prepared:
    slice: Slice
    window: int
    tokens: Tokens
    key: dict[str, object]
    cached: DriftEntry | None
    cache_status: str


@dataclass
class _Run:
    suite: Suite
    settings: Settings
    progress: ProgressFn
    cache: BaselineCache | None
    pool: ThreadPoolExecutor | None = None
    """Runs work beside this thread (llama.cpp and onnxruntime release the GIL): the baseline's task
    prompts, or, when the baseline is cached, a helper copy's share of the candidate's work. (Scoring
    decodes each side on a thread of its own, ``_Prefetch``.)"""
    stop: threading.Event = field(default_factory=threading.Event)
    """Set when this thread fails (or is interrupted): work on the pool stops at its next prompt."""
    timings: dict[str, float] = field(default_factory=dict)
    score_s: list[float] = field(default_factory=lambda: [0.0, 0.0])
    scored: list[int] = field(default_factory=lambda: [0, 0])
    tasks_cache: str = "off"
    lock: threading.Lock = field(default_factory=threading.Lock)

    def tick(self, stage: str, done: int, total: int) -> None:
        """Progress from a worker, and its chance to stop when the run is being abandoned."""
        if self.stop.is_set():
            raise _Abandoned
        self.progress(stage, done, total)

    def abandon(self, pending: Future[Any] | None) -> None:
        """Stop the pool's work and wait for it to let go of the models (at most one prompt)."""
        self.stop.set()
        if pending is not None:
            with contextlib.suppress(BaseException):
                pending.result()

    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[phase] = self.timings.get(phase, 0.0) + time.perf_counter() - t0

    # --- drift ---------------------------------------------------------------------------------

    def prepare(self, base: Model, cand: Model, base_info: ModelInfo) -> list[_Prepared]:
        """Tokenize every slice with both models (or read the baseline's ids from the cache) and check
        they agree, before any scoring: bad input fails in seconds, not minutes."""
        b, c = scorable(base.backend, "baseline"), scorable(cand.backend, "candidate")
        with self.timed("tokenize"):
            return [self._prepare(s, base, cand, b, c, base_info) for s in self.suite.slices]

    def score(self, prepared: list[_Prepared], base: Model, cand: Model) -> list[SliceResult]:
        b, c = scorable(base.backend, "baseline"), scorable(cand.backend, "candidate")
        with self.timed("score"):
            return [self._score(p, b, c) for p in prepared]

    def drain(
        self,
        queue: deque[tuple[int, _Prepared]],
        cand: Model,
        first: Callable[[], T] | None = None,
    ) -> tuple[dict[int, SliceResult], T | None]:
        """Run ``first``, then score slices taken from ``queue`` (shared with another thread) on ``cand``
        against the cached baseline, until it is empty: ({slice index: result}, what ``first`` returned)."""
        result = first() if first is not None else None
        c = scorable(cand.backend, "candidate")
        out: dict[int, SliceResult] = {}
        while True:
            try:
                i, p = queue.popleft()
            except IndexError:
                return out, result
            out[i] = self._score(p, None, c)

    def _prepare(
        self, s: Slice, base: Model, cand: Model, b: Scorable, c: Scorable, info: ModelInfo
    ) -> _Prepared:
        limits = [s.chunk_tokens, base.n_ctx, cand.n_ctx, b.trained_context, c.trained_context]
        window = min(v for v in limits if v)
        key = cache_key(
            kind="drift",
            model=info.sha256,
            scorer=scorer_id(base.backend),
            text=hashlib.sha256(s.text.encode()).hexdigest(),
            window=window,
            top_k=self.suite.top_k,
            block=BLOCK,
        )
        cached, status = self._cached_drift(key)
        cand_tokens = Tokens.of(c, s.text)
        base_tokens = (
            Tokens(tuple(int(t) for t in cached.prefix), cached.tokens) if cached else Tokens.of(b, s.text)
        )
        check_same_tokens(s.name, base_tokens, cand_tokens)
        if base_tokens.ids.size < self.suite.min_tokens:
            raise InputError(
                f"slice '{s.name}' is {base_tokens.ids.size} tokens long; at least {self.suite.min_tokens} "
                "are needed for meaningful statistics",
                "Add held-out text to the slice's file, or lower drift.min_tokens in the suite.",
            )
        return _Prepared(s, window, base_tokens, key, cached, status)

    def _cached_drift(self, key: dict[str, object]) -> tuple[DriftEntry | None, str]:
        if self.cache is None:
            return None, "off"
        try:
            entry = self.cache.load_drift(key)
        except CorruptCache as e:
            self.cache.discard("drift", key)
            return None, f"recomputed ({e})"
        return entry, "hit" if entry is not None else "miss"

    def _score(self, p: _Prepared, b: Scorable | None, c: Scorable) -> SliceResult:
        wins = windows(p.tokens.prefix, p.tokens.ids, p.window)
        total = sum(len(w) - 1 for w in wins)
        stage = f"score {p.slice.name}"
        stats: list[PositionStats] = []
        tops: list[TopK] = []
        done = 0
        self.progress(stage, 0, total)
        for w in wins:
            targets = window_targets(w)
            at = 0
            for base_logits, cand_logits in self._blocks(w, None if p.cached else b, c):
                if base_logits is not None:
                    _check_width(base_logits, cand_logits)
                for r in range(0, cand_logits.shape[0], STATS_ROWS):
                    rows = slice(r, r + STATS_ROWS)
                    tg = targets[at + r : at + r + cand_logits[rows].shape[0]]
                    if base_logits is None:
                        assert p.cached is not None
                        top = p.cached.top.rows(done + at + r, done + at + r + tg.size)
                        stats.append(drift_math.approx(top, cand_logits[rows], tg))
                    else:
                        st, top = drift_math.exact(base_logits[rows], cand_logits[rows], tg, self.suite.top_k)
                        stats.append(st)
                        tops.append(top)
                at += cand_logits.shape[0]
                self.progress(stage, done + at, total)
            done += targets.size
        if p.cached is None and self.cache is not None:
            try:
                self.cache.save_drift(
                    p.key, DriftEntry(np.asarray(p.tokens.prefix), p.tokens.ids, TopK.concat(tops))
                )
            except EdgekitError as e:
                p.cache_status = f"{p.cache_status}, not saved ({e.message})"
        all_stats = PositionStats.concat(stats)
        return SliceResult(
            name=p.slice.name,
            text_tokens=int(p.tokens.ids.size),
            window_tokens=p.window,
            kld_method="topk" if p.cached else "exact",
            baseline_cache=p.cache_status,
            summary=DriftSummary.of(all_stats),
            stats=all_stats,
        )

    def _blocks(
        self, window: list[int], b: Scorable | None, c: Scorable
    ) -> Iterator[tuple[np.ndarray | None, np.ndarray]]:
        """Baseline and candidate logits for the same positions, block by block.

        Each side decodes on its own thread, one block ahead of the drift math done here, so the models
        never wait for the math or for each other's block; each side's decode time is added to its
        scoring time.
        """
        base_src = _Prefetch(scored_blocks(b, window, BLOCK)) if b is not None else None
        cand_src = _Prefetch(scored_blocks(c, window, BLOCK))
        try:
            while True:
                cand_block, cand_s = cand_src.next()
                base_block, base_s = base_src.next() if base_src is not None else (None, 0.0)
                if cand_block is None or (base_src is not None and base_block is None):
                    return
                with self.lock:  # two threads may score candidate slices at once
                    for side, (blk, secs) in enumerate(((base_block, base_s), (cand_block, cand_s))):
                        if blk is not None:
                            self.score_s[side] += secs
                            self.scored[side] += blk.shape[0]
                yield base_block, cand_block
        finally:
            for src in (base_src, cand_src):
                if src is not None:
                    src.close()  # waits for its thread, then leaves the backend's KV cache clean

    def _submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        if self.pool is None:  # no pool: run it here, in order
            fut: Future[T] = Future()
            try:
                fut.set_result(fn(*args))
            except BaseException as e:
                fut.set_exception(e)
            return fut
        return self.pool.submit(fn, *args)

    # --- tasks and speed -----------------------------------------------------------------------

    def _tasks_key(self, base: Model, info: ModelInfo) -> dict[str, object]:
        assert self.suite.tasks is not None
        return cache_key(
            kind="tasks",
            model=info.sha256,
            scorer=scorer_id(base.backend),
            tasks=self.suite.tasks.sha256,
            max_tokens=self.suite.task_max_tokens,
        )

    def base_idle(self, base: Model, info: ModelInfo) -> TaskScores | None:
        """The baseline's cached task answers, when there are (then it has nothing left to do but the
        speed runs)."""
        return self._cached_tasks(self._tasks_key(base, info)) if self.suite.tasks is not None else None

    def tasks(
        self,
        base: Model,
        cand: Model,
        info: ModelInfo,
        known: TaskScores | None = None,
        *,
        looked_up: bool = False,
    ) -> tuple[TaskScores, TaskScores] | None:
        """Both models' task scores; the baseline's are read from the cache when they are there (with
        ``looked_up``, ``known`` is what ``base_idle`` read, so the cache is not read twice and its status
        stays as that read left it), else it answers on the pool's thread while the candidate answers
        here."""
        tasks = self.suite.tasks
        if tasks is None:
            return None
        with self.timed("tasks"):
            key = self._tasks_key(base, info)
            base_scores = known if looked_up else self._cached_tasks(key)
            pending = None
            if base_scores is None:  # the baseline answers on the pool's thread meanwhile
                pending = self._submit(
                    run_tasks,
                    base,
                    tasks,
                    self.suite.task_max_tokens,
                    lambda i, n: self.tick("tasks baseline", i, n),
                )
            try:
                cand_scores = run_tasks(
                    cand,
                    tasks,
                    self.suite.task_max_tokens,
                    lambda i, n: self.tick("tasks candidate", i, n),
                )
            except BaseException:
                self.abandon(pending)
                raise
            if pending is not None:
                base_scores = pending.result()
            assert base_scores is not None
            if pending is not None and self.cache is not None:
                try:
                    self.cache.save_tasks(key, base_scores.to_dict())
                except EdgekitError as e:
                    self.tasks_cache += f", not saved ({e.message})"
        return base_scores, cand_scores

    def _cached_tasks(self, key: dict[str, object]) -> TaskScores | None:
        if self.cache is None:
            self.tasks_cache = "off"
            return None
        try:
            data = self.cache.load_tasks(key)
            scores = TaskScores.from_dict(data) if data is not None else None
        except (CorruptCache, KeyError, TypeError) as e:
            self.cache.discard("tasks", key)
            self.tasks_cache = f"recomputed ({e})"
            return None
        self.tasks_cache = "hit" if scores is not None else "miss"
        return scores

    def speed(self, base: Model, cand: Model, bi: ModelInfo, ci: ModelInfo) -> tuple[Speed, Speed]:
        """Timed one model at a time (never side by side), so the two numbers are comparable."""
        with self.timed("speed"):
            measured = measure(
                (base, cand),
                prompt=self.suite.speed_prompt,
                max_tokens=self.suite.speed_max_tokens,
                runs=self.suite.speed_runs,
                on_done=lambda i, n: self.progress("speed", i, n),
            )
        scoring = [n / s if s > 0 and n > 0 else None for n, s in zip(self.scored, self.score_s, strict=True)]
        if measured is None:
            return Speed(None, None, bi.size_bytes, scoring[0]), Speed(None, None, ci.size_bytes, scoring[1])
        (bt, bf), (ct, cf) = measured
        return Speed(bt, bf, bi.size_bytes, scoring[0]), Speed(ct, cf, ci.size_bytes, scoring[1])


class _Abandoned(Exception):
    """Raised inside pool work after the main thread failed; never reaches the caller."""


class _Prefetch:
    """Runs a logits generator on its own thread, one block ahead of its reader.

    The backend's block is a view of its output buffer, which the next decode overwrites, so each block is
    copied into one buffer this side owns, once the reader is done with the last one: the reader holds a
    block while the next one decodes, and memory stays at one extra block per side.
    """

    def __init__(self, gen: Iterator[np.ndarray]) -> None:
        self._gen = gen
        self._ready: queue.Queue[tuple[np.ndarray | None, float] | BaseException] = queue.Queue(maxsize=1)
        self._free = threading.Semaphore(1)
        """Released by the reader when it asks for the next block: the buffer may be overwritten."""
        self._held = False
        self._buf: np.ndarray | None = None
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._work, name="edgekit-eval-decode", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        try:
            while not self._halt.is_set():
                t0 = time.perf_counter()
                block = next(self._gen, None)
                secs = time.perf_counter() - t0
                if block is None:
                    self._put((None, secs))
                    return
                while not self._free.acquire(timeout=0.05):
                    if self._halt.is_set():
                        return
                if (
                    self._buf is None
                    or self._buf.shape[0] < block.shape[0]
                    or self._buf.shape[1:] != block.shape[1:]
                ):
                    self._buf = np.empty(block.shape, dtype=block.dtype)
                out = self._buf[: block.shape[0]]
                np.copyto(out, block)
                self._put((out, secs))
        except BaseException as e:  # handed to the reader, which raises it
            self._put(e)

    def _put(self, item: tuple[np.ndarray | None, float] | BaseException) -> None:
        while not self._halt.is_set():
            try:
                self._ready.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def next(self) -> tuple[np.ndarray | None, float]:
        """The next block and its decode seconds; (None, secs) at the end. The block returned before is
        overwritten from now on."""
        if self._held:
            self._held = False
            self._free.release()
        item = self._ready.get()
        if isinstance(item, BaseException):
            raise item
        self._held = item[0] is not None
        return item

    def close(self) -> None:
        self._halt.set()
        self._thread.join()
        close = getattr(self._gen, "close", None)
        if close is not None:
            close()


def _check_width(base: np.ndarray, cand: np.ndarray) -> None:
    if base.shape[1] != cand.shape[1]:
        raise InputError(
            "baseline and candidate have vocabularies of different sizes "
            f"({base.shape[1]} vs {cand.shape[1]} logits)",
            "Compare builds of the same model: drift needs one vocabulary on both sides.",
        )
