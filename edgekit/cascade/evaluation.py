"""Router evaluation, RouteLLM-style: how much remote quality does the cascade keep per remote call?

Every labeled prompt is answered once by the first local tier and once by the remote; the gates run too.
The routing policies are then compared offline on those answers: always-local, always-remote, the oracle
(escalate exactly where the local answer is wrong), and the cascade as its mean-probability threshold
moves. The threshold is chosen on the calibration split (the smallest remote share whose quality is at
least ``target`` x always-remote) and reported on the test split only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from edgekit.cascade.learned import (
    NEIGHBOURS,
    AcceptModel,
    Embed,
    Evidence,
    answer_agreement,
    feature_layout,
    leave_one_out_scores,
)
from edgekit.cascade.router import Router, remote_tokens
from edgekit.errors import InputError
from edgekit.runtime.types import ChatMessage, Completion

Split = Literal["calibration", "test"]
T = TypeVar("T")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")

_OPPOSITE = {"yes": "no", "no": "yes"}


def _normal(text: str) -> str:
    return unicodedata.normalize("NFC", text).lower().strip()


class _Check(BaseModel):
    """How an item's answer is judged (see ``is_correct``).

    ``any`` / ``word``: one of ``values`` appears as a whole word (the two are the same since 2026-12-02);
    ``number``: the answer's last number equals ``value``; ``regex``: ``pattern`` matches. ``reject``: the
    wrong candidates the prompt offers (the other names of a comparison, "no" for a yes item; for
    ``number``, numbers): an answer that names one of them has not chosen one candidate and is wrong.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["any", "word", "number", "regex"]
    values: list[str] | None = None
    value: float | None = None
    pattern: str | None = None
    reject: list[str] | None = None

    @model_validator(mode="after")
    def _candidates(self) -> _Check:
        rejected = {_normal(r) for r in self.reject or []}
        if self.type == "number":
            for r in self.reject or []:
                if not _NUMBER.fullmatch(r.strip()):
                    raise ValueError(f"a number check rejects numbers, not {r!r}")
                if self.value is not None and float(r) == self.value:
                    raise ValueError(f"{r!r} is both the value and rejected")
        elif both := rejected & {_normal(v) for v in self.values or []}:
            raise ValueError(f"{sorted(both)} both accepted and rejected")
        return self


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    category: str
    prompt: str
    check: _Check
    test_only: bool = False
    """An item of a set kept for testing only (another distribution than the calibration data)."""

    @property
    def split(self) -> Split:
        if self.test_only:
            return "test"
        return "calibration" if hashlib.sha256(self.id.encode()).digest()[0] % 2 == 0 else "test"

    @property
    def digest(self) -> str:
        """Identifies what the models were asked: saved answers are reused only for the same prompt."""
        return hashlib.sha256(self.prompt.encode()).hexdigest()[:16]


def default_items_path() -> Path:
    from importlib import resources

    shipped = resources.files("edgekit") / "_data" / "router-prompts.jsonl"
    if shipped.is_file():
        return Path(str(shipped))
    return Path(__file__).resolve().parents[2] / "recipes" / "data" / "router" / "prompts.jsonl"


def _jsonl(path: Path, what: str, parse: Callable[[Any], T]) -> list[T]:
    """One object per non-empty line; a bad line is an InputError naming file and line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    out = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                out.append(parse(json.loads(line)))
            except (ValueError, TypeError, ValidationError) as e:
                raise InputError(f"{path}:{n}: bad {what}: {str(e).splitlines()[0]}") from None
    return out


def load_items(path: Path) -> list[Item]:
    items = _jsonl(path, "item", Item.model_validate)
    if len({i.id for i in items}) != len(items):
        raise InputError(f"{path}: item ids must be unique")
    return items


@cache
def _term(value: str) -> re.Pattern[str]:
    """``value`` as a whole word, case-insensitive: not glued to a letter or digit (any script) on either
    side, so "no" is not found in "not" nor "0" in "100"; a number is not glued to a decimal part either
    ("7" is not in "7.5"). Inner spaces match any run of whitespace ("buenos  aires"). A value that starts
    or ends with a non-word character ("c++", ".5") gets the same rule: no letter or digit right beside it.
    """
    v = _normal(value)
    body = r"\s+".join(re.escape(w) for w in v.split())
    before = r"(?<!\w)" + (r"(?<!\d[.,])" if v[:1].isdigit() else "")
    after = r"(?!\w)" + (r"(?![.,]\d)" if v[-1:].isdigit() else "")
    return re.compile(before + body + after, re.IGNORECASE)


def term_in(value: str, text: str) -> bool:
    """Whether ``value`` appears in ``text`` as a whole word (the checkers' rule, ``_term``)."""
    return bool(value.strip()) and _term(value).search(_normal(text)) is not None


def _rejected(check: _Check) -> list[str]:
    """The check's reject candidates; a yes/no item always rejects the opposite word too."""
    out = list(check.reject or [])
    if check.type in ("any", "word"):
        accepted = {_normal(v) for v in check.values or []}
        out += [_OPPOSITE[v] for v in accepted if v in _OPPOSITE and _OPPOSITE[v] not in accepted]
    return out


def is_correct(answer: str, check: _Check) -> bool:
    """Whether ``answer`` passes ``check``: an accepted value is present and no rejected candidate is (the
    answer must choose exactly one candidate; a yes/no item needs exactly one of the two words).

    Values and candidates match as whole words (``_term``). ``number``: the answer's last number equals
    the value and none of its numbers is a rejected one. An echo of the prompt must fail its own check
    (``tools/build_router_set.py --check`` enforces it for the shipped set).
    """
    if check.type == "number":
        numbers = [float(n) for n in _NUMBER.findall(answer.replace(",", ""))]
        if not numbers or check.value is None or abs(numbers[-1] - check.value) >= 1e-9:
            return False
        rejected = [float(r) for r in check.reject or []]
        return not any(abs(n - r) < 1e-9 for n in numbers for r in rejected)
    text = _normal(answer)
    if check.type == "regex":
        chosen = bool(check.pattern and re.search(check.pattern, answer))
    else:
        chosen = any(_term(v).search(text) for v in check.values or [] if v.strip())
    return chosen and not any(_term(r).search(text) for r in _rejected(check) if r.strip())


@dataclass(frozen=True)
class Observation:
    id: str
    category: str
    split: Split
    local_ok: bool
    remote_ok: bool
    mean_prob: float
    gate_reason: str | None
    pinned_local: bool
    remote_tokens: int
    min_prob: float = 0.0
    mean_entropy: float = 0.0
    local_tokens: int = 0
    item_digest: str = ""
    """``Item.digest`` of the prompt answered ("" in files from before it was recorded: never reused)."""
    local_answer: str | None = None
    remote_answer: str | None = None
    """The answers themselves, to audit a checker and re-score after fixing one (None: not recorded)."""
    agreement: float | None = None
    """With a cross-check model on the first tier: the local answer's agreement with its answer."""
    check_answer: str | None = None
    """The cross-check model's answer (agreement is measured again from it when re-scoring)."""
    local_finish: str = ""
    """The local answer's finish reason ('length': cut off by the token limit; "": not recorded)."""
    check_ok: bool | None = None
    """Whether the cross-check model's answer is right (None: no such answer)."""
    check_mean_prob: float | None = None
    check_min_prob: float | None = None
    check_mean_entropy: float | None = None
    check_tokens: int | None = None
    check_finish: str = ""
    """The cross-check answer's own signals, as for the local answer (None / "": not recorded)."""

    @property
    def local_cut(self) -> bool:
        return self.local_finish == "length"

    @property
    def check_signals(self) -> bool:
        return self.check_ok is not None and self.check_mean_prob is not None


def observe(
    router: Router,
    items: Sequence[Item],
    *,
    max_tokens: int = 64,
    progress: Callable[[int, int], None] = lambda done, total: None,
    reuse: Sequence[Observation] = (),
    sink: Callable[[Observation], None] = lambda o: None,
) -> list[Observation]:
    """Answer every item with the first local tier and the remote; one observation per item, in order.

    ``reuse``: observations saved earlier (same models, policy and ``max_tokens``); an item whose id and
    prompt match one is not answered again (its recorded answers are judged again by the current check).
    ``sink`` gets every observation, in item order, as soon as it exists (resumable runs).
    """
    tier = router.policy.local_tiers[0]
    checked = tier.cross_check is not None
    saved = {o.id: o for o in rescore(reuse, items) if o.item_digest and (o.agreement is not None) == checked}
    todo = {i.id for i in items if not (i.id in saved and saved[i.id].item_digest == i.digest)}
    if todo and router.remote is None:
        raise InputError("the router has no remote tier", "Set EDGEKIT_REMOTE_URL to the remote's /v1 URL.")
    out = []
    for item in items:
        if item.id not in todo:
            out.append(saved[item.id])
            sink(saved[item.id])
            continue
        assert router.remote is not None
        msgs: list[ChatMessage] = [{"role": "user", "content": item.prompt}]
        request = router.features(msgs, max_tokens)
        _, gate_reason, pinned = router.decide(request)
        params: dict[str, Any] = {"temperature": 0.0, "max_tokens": max_tokens}
        local = router.local[0].chat(msgs, **params)
        check = router.cross_check[tier.name].chat(msgs, **params) if checked else None
        remote = router.remote.chat(msgs, **params)
        conf = local.confidence
        new = Observation(
            item.id,
            item.category,
            item.split,
            is_correct(local.text, item.check),
            is_correct(remote.text, item.check),
            conf.mean_prob or 0.0,
            gate_reason,
            pinned,
            remote_tokens(request, remote),
            conf.min_prob or 0.0,
            conf.mean_entropy or 0.0,
            local.usage.completion_tokens,
            item.digest,
            local.text,
            remote.text,
            None if check is None else answer_agreement(item.prompt, local.text, check.text),
            None if check is None else check.text,
            local.finish_reason,
            *(() if check is None else _check_fields(check, item)),
        )
        out.append(new)
        sink(new)
        progress(len(out) - (len(items) - len(todo)), len(todo))
    return out


def _check_fields(check: Completion, item: Item) -> tuple[Any, ...]:
    conf = check.confidence
    return (
        is_correct(check.text, item.check),
        conf.mean_prob or 0.0,
        conf.min_prob or 0.0,
        conf.mean_entropy or 0.0,
        check.usage.completion_tokens,
        check.finish_reason,
    )


def observe_to_file(
    router: Router,
    items: Sequence[Item],
    path: Path | None,
    *,
    resume: bool = False,
    max_tokens: int = 64,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> tuple[list[Observation], int]:
    """``observe``, saving to ``path``: each result goes to ``path``.partial as soon as it exists and the
    complete file is renamed to ``path`` at the end, so an interrupted run leaves only the .partial file.
    ``resume`` reuses the results already in either file. Returns the observations and how many of them
    were reused."""
    partial = path.with_name(path.name + ".partial") if path else None
    reuse = [o for f in (path, partial) if resume and f and f.is_file() for o in observations_from_jsonl(f)]
    with partial.open("w", encoding="utf-8") if partial else contextlib.nullcontext() as sink:

        def save(o: Observation) -> None:
            if sink is not None:
                sink.write(observations_to_jsonl([o]))
                sink.flush()

        obs = observe(router, items, max_tokens=max_tokens, progress=progress, reuse=reuse, sink=save)
    if path and partial:
        partial.replace(path)
    saved = {(o.id, o.item_digest) for o in reuse}
    return obs, sum(1 for o in obs if (o.id, o.item_digest) in saved)


def rescore(
    obs: Sequence[Observation], items: Sequence[Item], max_tokens: int | None = None
) -> list[Observation]:
    """Judge recorded answers again with the items' current checks (a checker may have been fixed), and
    measure the cross-check agreement again where its answer was recorded. ``max_tokens``: the limit the
    answers were made under, for files that did not record the finish reason (an answer of exactly that
    many tokens was cut off).

    Observations without recorded answers, or whose prompt changed or is gone, are kept as they are.
    """
    by_id = {i.id: i for i in items}
    out = []
    for o in obs:
        if not o.local_finish and max_tokens is not None:
            o = replace(o, local_finish="length" if o.local_tokens >= max_tokens else "stop")
        item = by_id.get(o.id)
        if item is None or o.item_digest != item.digest or o.local_answer is None or o.remote_answer is None:
            out.append(o)
            continue
        local_ok, remote_ok = is_correct(o.local_answer, item.check), is_correct(o.remote_answer, item.check)
        agreement, check_ok = o.agreement, o.check_ok
        if o.check_answer is not None:
            agreement = answer_agreement(item.prompt, o.local_answer, o.check_answer)
            check_ok = is_correct(o.check_answer, item.check)
        out.append(replace(o, local_ok=local_ok, remote_ok=remote_ok, agreement=agreement, check_ok=check_ok))
    return out


def _escalates(o: Observation, threshold: float, score: float | None = None) -> str | None:
    """Why the cascade at ``threshold`` escalates this observation (None: it stays local).

    ``score`` is the learned acceptance model's score when one is used; else the mean token probability.
    """
    if o.pinned_local:
        return None
    if o.gate_reason:
        return o.gate_reason.split(": ", 1)[0]  # "gate keywords:domain"
    if o.local_cut:  # as the router: a cut-off answer is never accepted, however confident
        return "cut off"
    value = o.mean_prob if score is None else score
    return ("learned" if score is not None else "signals") if value < threshold else None


Scores = Sequence[float] | None


def route_decisions(obs: Sequence[Observation], threshold: float, scores: Scores = None) -> list[str | None]:
    """Per observation, why the cascade at ``threshold`` escalates it (None: it stays local)."""
    return [_escalates(o, threshold, None if scores is None else scores[i]) for i, o in enumerate(obs)]


def operating_point(obs: Sequence[Observation], threshold: float, scores: Scores = None) -> dict[str, float]:
    n = len(obs) or 1
    decisions = route_decisions(obs, threshold, scores)
    good = sum((o.remote_ok if d else o.local_ok) for o, d in zip(obs, decisions, strict=True))
    return {"threshold": threshold, "quality": good / n, "remote_share": sum(1 for d in decisions if d) / n}


def threshold_grid(scores: Sequence[float]) -> list[float]:
    """Thresholds that visit every distinct operating point: just above each score, and both ends."""
    return sorted({0.0, 1.01, *(round(float(v) + 1e-6, 6) for v in scores)})


def choose_threshold(
    obs: Sequence[Observation], grid: Sequence[float], target: float, scores: Scores = None
) -> float:
    """The threshold with the smallest remote share whose quality is >= target x always-remote."""
    remote = sum(o.remote_ok for o in obs) / (len(obs) or 1)
    ok = [p for p in (operating_point(obs, t, scores) for t in grid) if p["quality"] >= target * remote]
    return min(ok, key=lambda p: (p["remote_share"], -p["quality"]))["threshold"] if ok else 1.01


def evidence(o: Observation, prompt: str) -> Evidence:
    return Evidence(prompt, o.mean_prob, o.min_prob, o.mean_entropy, o.local_tokens, o.agreement)


def summarize(
    obs: Sequence[Observation],
    *,
    target: float = 0.95,
    prompts: Mapping[str, str] | None = None,
    embed: Embed | None = None,
    calibration: Sequence[Observation] | None = None,
) -> dict[str, Any]:
    """The report. With ``prompts`` (id -> prompt text), also the learned acceptance model's cascade: fit
    on the calibration split (threshold from leave-one-out scores there), reported on the test split.
    ``embed`` is needed when the model uses neighbours (see ``calibrate_accept_model``).

    ``calibration``: observations of another set whose calibration split chooses the thresholds and fits
    the model (``obs``'s own calibration split is then ignored): a test-only set of another distribution
    is reported with thresholds fixed before it was seen. ``prompts`` must cover both sets.
    """
    source = obs if calibration is None else calibration
    cal = [o for o in source if o.split == "calibration"]
    test = [o for o in obs if o.split == "test"]
    grid = threshold_grid([o.mean_prob for o in cal])
    chosen = choose_threshold(cal, grid, target)
    report: dict[str, Any] = {
        "items": {"calibration": len(cal), "test": len(test)},
        "target": f"quality >= {target} x always-remote, chosen on calibration",
        "threshold": chosen,
        "calibration": _split_report(cal, chosen, grid, target=target),
        "test": _split_report(test, chosen, threshold_grid([o.mean_prob for o in test]), target=target),
    }
    if prompts is not None:
        try:
            report["learned"] = _learned_report(cal, test, prompts, embed, target)
        except ValueError as e:  # too few calibration items, the local tier always right or wrong, no encoder
            report["learned_skipped"] = f"calibration split: {e}"
        if cal and test and all(o.check_signals for o in [*cal, *test]):
            from edgekit.cascade.chain import chain_report

            try:
                report["chain"] = chain_report(cal, test, prompts, target)
            except ValueError as e:
                report["chain_skipped"] = f"calibration split: {e}"
    return report


def learned_features(cal: Sequence[Observation], neighbours: bool | None = None) -> tuple[str, ...]:
    """The acceptance model's features for these observations: cross-check agreement when it was measured
    on every item; the neighbour feature by default only without it (on the shipped set's calibration
    split, leave-one-out, neighbours added nothing once agreement was there)."""
    agreement = bool(cal) and all(o.agreement is not None for o in cal)
    use_neighbours = (not agreement) if neighbours is None else neighbours
    return feature_layout(agreement=agreement, neighbours=use_neighbours)


def calibrate_accept_model(
    cal: Sequence[Observation],
    prompts: Mapping[str, str],
    embed: Embed | None,
    *,
    target: float = 0.95,
    neighbours: bool | None = None,
    trained_on: str = "",
) -> tuple[AcceptModel, list[float]]:
    """Fit the acceptance model on calibration observations, with the threshold at the smallest remote share
    whose quality is >= ``target`` x always-remote, judged on leave-one-out scores. Returns the model
    (threshold set) and those scores."""
    features = learned_features(cal, neighbours)
    if NEIGHBOURS in features and embed is None:
        raise ValueError("the neighbour feature needs the sentence encoder (an embed function)")
    ev = [evidence(o, prompts[o.id]) for o in cal]
    emb = embed([e.prompt for e in ev]) if embed is not None and NEIGHBOURS in features else None
    right = [o.local_ok for o in cal]
    loo = [float(v) for v in leave_one_out_scores(ev, right, emb, features=features)]
    grid = threshold_grid(loo)
    model = AcceptModel.fit(ev, right, emb, features=features, trained_on=trained_on)
    return model.with_threshold(choose_threshold(cal, grid, target, loo)), loo


def _learned_report(
    cal: Sequence[Observation],
    test: Sequence[Observation],
    prompts: Mapping[str, str],
    embed: Embed | None,
    target: float,
) -> dict[str, Any]:
    model, loo = calibrate_accept_model(cal, prompts, embed, target=target)
    assert model.threshold is not None
    grid = threshold_grid(loo)
    test_ev = [evidence(o, prompts[o.id]) for o in test]
    emb = embed([e.prompt for e in test_ev]) if embed is not None and model.uses_neighbours else None
    test_scores = [float(v) for v in model.scores(test_ev, emb)]
    test_grid = threshold_grid(test_scores)
    return {
        "features": list(model.features),
        "threshold": model.threshold,
        "calibration": _split_report(cal, model.threshold, grid, loo, target),
        "test": _split_report(test, model.threshold, test_grid, test_scores, target),
    }


def _at_target(
    curve: Sequence[dict[str, float]], remote_q: float, oracle_share: float, target: float
) -> dict[str, float] | None:
    """RouteLLM-style: the curve's smallest remote share whose quality is >= target x always-remote, read
    off this split's own curve (on the test split: how good the ranking is, with the threshold known)."""
    ok = [p for p in curve if p["quality"] >= target * remote_q]
    if not ok:
        return None
    best = min(ok, key=lambda p: (p["remote_share"], -p["quality"]))
    ratio = best["remote_share"] / oracle_share if oracle_share else float("inf")
    return {**best, "share_vs_oracle": ratio}


def _split_report(
    obs: Sequence[Observation],
    threshold: float,
    grid: Sequence[float],
    scores: Scores = None,
    target: float = 0.95,
) -> dict[str, Any]:
    n = len(obs) or 1
    local_q = sum(o.local_ok for o in obs) / n
    remote_q = sum(o.remote_ok for o in obs) / n
    oracle_share = sum(1 for o in obs if not o.local_ok) / n
    oracle_q = sum((o.local_ok or o.remote_ok) for o in obs) / n
    at = operating_point(obs, threshold, scores)
    decisions = route_decisions(obs, threshold, scores)
    curve = [operating_point(obs, t, scores) for t in grid]
    all_remote_tokens = sum(o.remote_tokens for o in obs) or 1
    used = sum(o.remote_tokens for o, d in zip(obs, decisions, strict=True) if d)
    return {
        "always_local": {"quality": local_q, "remote_share": 0.0},
        "always_remote": {"quality": remote_q, "remote_share": 1.0},
        "oracle": {"quality": oracle_q, "remote_share": oracle_share},
        "cascade": at,
        "quality_vs_remote": at["quality"] / remote_q if remote_q else 0.0,
        "share_vs_oracle": at["remote_share"] / oracle_share if oracle_share else float("inf"),
        "remote_tokens_saved": 1 - used / all_remote_tokens,
        "interval_95": bootstrap_interval(obs, decisions),
        "curve": curve,
        "curve_at_target": _at_target(curve, remote_q, oracle_share, target),
        "reasons": _reasons(obs, decisions),
        "by_category": {
            c: sum(o.local_ok for o in obs if o.category == c) / max(1, sum(o.category == c for o in obs))
            for c in sorted({o.category for o in obs})
        },
    }


def bootstrap_interval(
    obs: Sequence[Observation], decisions: Sequence[str | None], *, rounds: int = 2000, seed: int = 0
) -> dict[str, list[float]]:
    """95% percentile intervals of the cascade's quality (of always-remote) and remote share (of the
    oracle's) for these routing decisions, resampling the items with replacement (seeded: reproducible)."""
    got = [o.remote_ok if d else o.local_ok for o, d in zip(obs, decisions, strict=True)]
    return ratio_intervals(obs, got, [d is not None for d in decisions], rounds=rounds, seed=seed)


def ratio_intervals(
    obs: Sequence[Observation],
    got: Sequence[bool],
    sent: Sequence[bool],
    *,
    rounds: int = 2000,
    seed: int = 0,
) -> dict[str, list[float]]:
    """``bootstrap_interval`` for any routing: ``got`` whether each item's routed answer is right, ``sent``
    whether it went remote."""
    import numpy as np

    if not obs:
        return {}
    right = np.array(got, float)
    remote = np.array([o.remote_ok for o in obs], float)
    sent_ = np.array(sent, float)
    needed = np.array([not o.local_ok for o in obs], float)
    pick = np.random.default_rng(seed).integers(0, len(obs), size=(rounds, len(obs)))
    with np.errstate(divide="ignore", invalid="ignore"):
        quality = right[pick].sum(1) / remote[pick].sum(1)
        share = sent_[pick].sum(1) / needed[pick].sum(1)

    def span(values: np.ndarray) -> list[float]:
        finite = values[np.isfinite(values)]
        return [round(float(np.percentile(finite, q)), 4) for q in (2.5, 97.5)] if finite.size else []

    return {"quality_vs_remote": span(quality), "share_vs_oracle": span(share)}


def _reasons(obs: Sequence[Observation], decisions: Sequence[str | None]) -> dict[str, dict[str, float]]:
    """Escalation precision (the local answer was wrong) and recall (of wrong local answers) per reason."""
    wrong = sum(1 for o in obs if not o.local_ok) or 1
    out: dict[str, dict[str, float]] = {}
    for reason in sorted({d for d in decisions if d}):
        hits = [o for o, d in zip(obs, decisions, strict=True) if d == reason]
        needed = sum(1 for o in hits if not o.local_ok)
        out[reason] = {"escalations": len(hits), "precision": needed / len(hits), "recall": needed / wrong}
    return out


def observations_to_jsonl(obs: Sequence[Observation]) -> str:
    return "".join(json.dumps(asdict(o)) + "\n" for o in obs)


def observations_from_jsonl(path: Path) -> list[Observation]:
    """Read observations written by ``eval-router --observations`` (re-score without re-running models)."""
    return _jsonl(path, "observation", lambda obj: Observation(**obj))
