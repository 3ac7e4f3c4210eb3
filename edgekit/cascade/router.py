"""The cascade router: gates first, then local tiers smallest first, then the remote, with reasons.

Decision path for one request:
1. Gates read request features. Any ``local`` verdict pins the request on device (privacy wins). Otherwise
   any ``escalate`` verdict sends it to the remote directly (the local model is not asked).
2. Otherwise each local tier answers in turn; its answer is accepted when its confidence signals (mean and
   minimum chosen-token probability, mean entropy, computed during generation) pass the tier's thresholds
   (and its learned model, cross-check agreement, self-consistency where the tier sets them). A tier whose
   ``cross_check`` has ``accept`` keeps the second model's answer instead when its own is rejected and
   that answer passes (route ``local:<tier>:cross-check``).
3. If no local tier is accepted, the remote tier answers, within the budget, with retries and a circuit
   breaker.
4. If the remote is missing, over budget, failing or returns garbage, the best local answer is returned
   marked ``degraded`` with the reason: never silently, never lost.

Streaming contract: text that might be withdrawn is never shown. ``chat(stream=True)`` buffers until the
accept decision, then yields the accepted answer; the final chunk carries finish_reason and usage.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from edgekit.cascade.budget import BudgetLedger
from edgekit.cascade.gates import Gate, GateDecision, OutputType, Request, build_gate
from edgekit.cascade.learned import AcceptModel, Embed, Evidence, answer_agreement, default_embed
from edgekit.cascade.policy import (
    DEFAULT_TIMEOUTS,
    Acceptance,
    LatencyClass,
    Policy,
    PolicyError,
    SelfConsistency,
    Tier,
)
from edgekit.cascade.resilience import CircuitBreaker, call_with_retries
from edgekit.cascade.trace import Trace, TraceStore, new_trace_id
from edgekit.errors import ContextOverflowError, RemoteError, SchemaOutputError
from edgekit.runtime.types import ChatMessage, Chunk, Completion, Confidence, normalize_messages


@dataclass
class Seen:
    """What one request's routing produced on its first local tier, for the shadow policy to judge."""

    first: Completion | None = None
    other: Completion | None = None
    """The first tier's cross-check answer, when one was generated."""

    def note(self, tier: Tier, policy: Policy, other: Completion) -> None:
        if tier is policy.local_tiers[0]:
            self.other = other


@dataclass(frozen=True)
class RouteResult:
    completion: Completion
    route: str
    """'local:<tier>', 'remote:<tier>' or 'degraded:<tier>'."""
    gates: tuple[GateDecision, ...]
    escalation_reason: str | None = None
    degraded_reason: str | None = None
    rejections: tuple[str, ...] = ()
    """Why each local tier's answer was not accepted, in order."""
    latency_ms: dict[str, float] = field(default_factory=dict)
    trace_id: str = field(default_factory=new_trace_id)
    """The id of this request's trace line (also when no trace store is kept)."""

    @property
    def degraded(self) -> bool:
        return self.degraded_reason is not None


def acceptance_failures(completion: Completion, accept: Acceptance) -> list[str]:
    """The thresholds a local answer fails (empty when it is accepted)."""
    conf = completion.confidence
    out = []
    if completion.finish_reason == "length":  # confident rambling is still cut off mid-answer
        out.append(f"cut off by the token limit after {completion.usage.completion_tokens} tokens")
    if accept.min_tokens is not None and completion.usage.completion_tokens < accept.min_tokens:
        out.append(f"only {completion.usage.completion_tokens} tokens < {accept.min_tokens}")
    checks: list[tuple[float | None, float | None, str, bool]] = [
        (conf.mean_prob, accept.min_mean_prob, "mean token probability", True),
        (conf.min_prob, accept.min_min_prob, "minimum token probability", True),
        (conf.mean_entropy, accept.max_mean_entropy, "mean entropy", False),
    ]
    for value, limit, label, at_least in checks:
        if limit is None:
            continue
        if value is None:
            out.append(f"{label} unknown")
        elif (value < limit) if at_least else (value > limit):
            out.append(f"{label} {value:.3f} {'<' if at_least else '>'} {limit}")
    return out


def learned_failures(
    model: AcceptModel,
    accept: Acceptance,
    request: Request,
    completion: Completion,
    embed: Embed,
    agreement: float | None = None,
) -> list[str]:
    """The learned acceptance model's verdict on a local answer (empty when it is accepted)."""
    conf = completion.confidence
    evidence = Evidence(
        request.text,
        conf.mean_prob or 0.0,
        conf.min_prob or 0.0,
        conf.mean_entropy or 0.0,
        completion.usage.completion_tokens,
        agreement,
    )
    score = model.score(evidence, embed)
    least = accept.min_score if accept.min_score is not None else model.threshold
    least = 0.5 if least is None else least
    if score >= least:
        return []
    seen = "" if agreement is None else f" (cross-check agreement {agreement:.2f})"
    return [f"learned acceptance score {score:.3f} < {least:.3f}{seen}"]


def _gist(text: str) -> str:
    first = next((line for line in text.strip().splitlines() if line.strip()), "")
    return " ".join(re.sub(r"[^\w\s]", " ", first.lower()).split())


def self_consistency_failures(
    model: Any, msgs: list[ChatMessage], params: dict[str, Any], answer: Completion, probe: SelfConsistency
) -> list[str]:
    """Sample ``probe.samples`` more answers (other seeds, higher temperature); fail if too few agree."""
    seed = params.get("seed") or 0
    gist = _gist(answer.text)
    agree = sum(
        _gist(model.chat(msgs, **{**params, "temperature": probe.temperature, "seed": seed + i + 1}).text)
        == gist
        for i in range(probe.samples)
    )
    share = agree / probe.samples
    return (
        []
        if share >= probe.min_agreement
        else [f"self-consistency {agree}/{probe.samples} < {probe.min_agreement}"]
    )


class ChatModel(Protocol):
    """What the router asks of each model it routes between (``edgekit.Model`` is one, local or remote):
    a non-streamed ``chat``, its context window, its count of a prompt's tokens, ``close``."""

    name: str

    @property
    def n_ctx(self) -> int: ...

    def chat(
        self,
        messages: Sequence[ChatMessage],
        /,
        *,
        max_tokens: int = ...,
        temperature: float = ...,
        top_p: float = ...,
        seed: int | None = ...,
        stop: Sequence[str] = ...,
        schema: Any = ...,
        timeout: float | None = ...,
    ) -> Completion: ...

    def prompt_tokens(self, messages: Sequence[ChatMessage], /) -> int: ...

    def close(self) -> None: ...


class Router:
    """Implements the same ``chat`` as ``edgekit.Model``, so apps and ``edgekit serve`` can use either."""

    def __init__(
        self,
        policy: Policy,
        *,
        local: Sequence[ChatModel],
        remote: ChatModel | None = None,
        traces: TraceStore | None = None,
        ledger: BudgetLedger | None = None,
        breaker: CircuitBreaker | None = None,
        embed: Embed | None = None,
        cross_check: Mapping[str, ChatModel] | None = None,
        shadow: Policy | None = None,
    ) -> None:
        """``local``: one model per local tier; ``cross_check``: tier name -> its second-opinion model;
        ``shadow``: another policy whose verdict on each request goes into its trace (so it needs
        ``traces``), never acted on (``edgekit.cascade.shadow``)."""
        if len(local) != len(policy.local_tiers):
            raise ValueError("one local model per local tier is needed")
        self.policy = policy
        self.local = list(local)
        self.cross_check = dict(cross_check or {})
        for t in policy.local_tiers:
            if t.cross_check and t.name not in self.cross_check:
                raise ValueError(f"no cross-check model for tier {t.name}")
        self.remote = remote
        self.traces = traces
        self.ledger = ledger or BudgetLedger(policy.budget, None)
        self.breaker = breaker or CircuitBreaker()
        self.gates: list[Gate] = [build_gate(g) for g in policy.gates]
        self.accept_models = {
            t.name: AcceptModel.load(policy.beside(t.accept.learned))
            for t in policy.local_tiers
            if t.accept.learned
        }
        self.check_accept_models = {
            t.name: AcceptModel.load(policy.beside(t.cross_check.accept.learned))
            for t in policy.local_tiers
            if t.cross_check and t.cross_check.accept and t.cross_check.accept.learned
        }
        for t in policy.local_tiers:
            learned = self.accept_models.get(t.name)
            if learned is not None and learned.uses_agreement and not t.cross_check:
                raise PolicyError(
                    f"{policy.path}: tier {t.name!r}: its accept model uses cross-check agreement",
                    'Add cross_check = { model = "..." } to the tier, or retrain without agreement.',
                )
        self._embed = embed
        self.name = "cascade"
        self.shadow: Any = None
        if shadow is not None:
            from edgekit.cascade.shadow import Shadow  # it builds a Router of its own

            self.shadow = Shadow(shadow, self)

    def embed(self, texts: Sequence[str]) -> Any:
        """Prompt embeddings for learned acceptance (the on-device encoder, loaded on first use)."""
        if self._embed is None:
            self._embed = default_embed()
        return self._embed(texts)

    # --- the Model-compatible surface ------------------------------------------------------------

    def chat(
        self,
        messages: str | Sequence[ChatMessage],
        *,
        stream: bool = False,
        system: str | None = None,
        **params: Any,
    ) -> Completion | Iterator[Chunk]:
        """The routed answer alone; ``route`` (or ``edgekit.Assistant``) also says how it was reached."""
        completion = self.route(messages, system=system, **params).completion
        if not stream:
            return completion
        return iter(
            [
                Chunk(completion.text, completion.signals),
                Chunk("", finish_reason=completion.finish_reason, usage=completion.usage),
            ]
        )

    @property
    def n_ctx(self) -> int:
        """The smallest local context: what a conversation must fit to stay on device."""
        return min(m.n_ctx for m in self.local)

    def prompt_tokens(self, msgs: Sequence[ChatMessage]) -> int:
        """Tokens of ``msgs`` as the first local model counts them."""
        return self.local[0].prompt_tokens(msgs)

    def close(self) -> None:
        for m in [*self.local, *self.cross_check.values()]:
            m.close()
        if self.remote is not None:
            self.remote.close()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- routing ---------------------------------------------------------------------------------

    def features(
        self,
        msgs: list[ChatMessage],
        max_tokens: int,
        output_type: OutputType = "text",
        safety: Mapping[str, str] | None = None,
    ) -> Request:
        text = "\n".join(m["content"] for m in msgs if m["role"] in ("user", "tool"))
        return Request(
            text=text,
            prompt_tokens=self.prompt_tokens(msgs),
            local_n_ctx=self.local[0].n_ctx,
            max_tokens=max_tokens,
            output_type=output_type,
            safety=dict(safety or {}),
        )

    def decide(self, request: Request) -> tuple[tuple[GateDecision, ...], str | None, bool]:
        """Run the gates: (decisions, escalation reason or None, pinned local)."""
        decisions = tuple(g.decide(request) for g in self.gates)
        if any(d.verdict == "local" for d in decisions):
            return decisions, None, True
        escalate = [d for d in decisions if d.verdict == "escalate"]
        if escalate:
            return decisions, f"gate {escalate[0].gate}: {escalate[0].reason}", False
        return decisions, None, False

    def route(
        self,
        messages: str | Sequence[ChatMessage],
        *,
        system: str | None = None,
        dry_run: bool = False,
        latency_class: LatencyClass | None = None,
        safety: Mapping[str, str] | None = None,
        output_type: OutputType | None = None,
        **params: Any,
    ) -> RouteResult:
        """Answer one request through the cascade. ``dry_run`` never calls the remote (route explain).

        ``latency_class`` (fast, standard, escalation; default: the policy's) picks the remote tier's
        timeout for this request. ``safety``: category -> action from the guard that screened the
        request, for the safety gate. ``output_type``: what the caller asked for (default: json with a
        schema, else text; ``edgekit.Assistant`` says tool for a tool call).
        """
        t0 = time.perf_counter()
        if latency_class is not None and latency_class not in DEFAULT_TIMEOUTS:
            raise PolicyError(
                f"unknown latency class {latency_class!r}", f"Use one of: {', '.join(DEFAULT_TIMEOUTS)}."
            )
        klass = latency_class or self.policy.latency_class
        msgs = normalize_messages(messages, system)
        d = self.policy.defaults
        params = {"temperature": d.temperature, "seed": d.seed, "max_tokens": d.max_tokens, **params}
        if output_type is None:
            output_type = "json" if params.get("schema") is not None else "text"
        request = self.features(msgs, int(params["max_tokens"]), output_type, safety)
        gates, escalation, pinned = self.decide(request)
        latency: dict[str, float] = {"gates": _ms(t0)}
        seen = Seen()
        best: tuple[Tier, Completion] | None = None
        rejections: list[str] = []
        if escalation is None or self.remote is None or pinned:
            for tier, model in zip(self.policy.local_tiers, self.local, strict=True):
                t1 = time.perf_counter()
                try:
                    completion = model.chat(msgs, **params)
                except SchemaOutputError as e:  # no valid structured answer: a reason to escalate
                    latency[f"local:{tier.name}"] = _ms(t1)
                    rejections.append(f"{tier.name}: schema: {e.message}")
                    if pinned:
                        raise
                    continue
                except ContextOverflowError as e:  # the degraded path cuts the prompt to fit, and says so
                    if pinned:
                        raise
                    rejections.append(f"{tier.name}: {e.message}")
                    continue
                latency[f"local:{tier.name}"] = _ms(t1)
                best = (tier, completion)
                if tier is self.policy.local_tiers[0]:
                    seen.first = completion
                if escalation is not None and not pinned:
                    break  # a gate wants the remote and there is none: this answer is degraded, not accepted
                failed = acceptance_failures(completion, tier.accept)
                agreement, other = None, None
                if not failed and tier.cross_check is not None:
                    other = self._second_opinion(tier, msgs, params, latency)
                    agreement = answer_agreement(request.text, completion.text, other.text)
                    seen.note(tier, self.policy, other)
                    least = tier.cross_check.min_agreement
                    if least is not None and agreement < least:
                        failed.append(f"cross-check agreement {agreement:.2f} < {least}")
                if not failed and (learned := self.accept_models.get(tier.name)) is not None:
                    failed += learned_failures(
                        learned, tier.accept, request, completion, self.embed, agreement
                    )
                if not failed and tier.self_consistency is not None:
                    t2 = time.perf_counter()
                    failed = self_consistency_failures(model, msgs, params, completion, tier.self_consistency)
                    latency[f"consistency:{tier.name}"] = _ms(t2)
                if not failed or pinned:
                    result = RouteResult(
                        completion, f"local:{tier.name}", gates, None, None, tuple(rejections), latency
                    )
                    return self._finish(result, request, t0, msgs, seen)
                rejections.append(f"{tier.name}: {'; '.join(failed)}")
                if tier.cross_check is not None and tier.cross_check.accept is not None:
                    other = other or self._second_opinion(tier, msgs, params, latency)
                    agreement = answer_agreement(request.text, completion.text, other.text)
                    seen.note(tier, self.policy, other)
                    failed = self._second_failures(tier, request, other, agreement)
                    if not failed:
                        route = f"local:{tier.name}:cross-check"
                        result = RouteResult(other, route, gates, None, None, tuple(rejections), latency)
                        return self._finish(result, request, t0, msgs, seen)
                    rejections.append(f"{tier.name} cross-check: {'; '.join(failed)}")
            # here a gate escalated (and there is no remote), or every local tier was rejected
            escalation = escalation or f"signals: {rejections[-1]}"
        return self._escalate(
            msgs, params, request, gates, escalation, best, rejections, latency, t0, dry_run, klass, seen
        )

    def _second_opinion(
        self, tier: Tier, msgs: list[ChatMessage], params: dict[str, Any], latency: dict[str, float]
    ) -> Completion:
        t = time.perf_counter()
        other: Completion = self.cross_check[tier.name].chat(msgs, **params)
        latency[f"cross-check:{tier.name}"] = _ms(t)
        return other

    def _second_failures(
        self, tier: Tier, request: Request, other: Completion, agreement: float
    ) -> list[str]:
        """Why the cross-check model's answer is not kept in place of the tier's rejected one."""
        assert tier.cross_check is not None and tier.cross_check.accept is not None
        accept = tier.cross_check.accept
        failed = acceptance_failures(other, accept)
        if not failed and (learned := self.check_accept_models.get(tier.name)) is not None:
            failed = learned_failures(learned, accept, request, other, self.embed, agreement)
        return failed

    def _escalate(
        self,
        msgs: list[ChatMessage],
        params: dict[str, Any],
        request: Request,
        gates: tuple[GateDecision, ...],
        reason: str,
        best: tuple[Tier, Completion] | None,
        rejections: list[str],
        latency: dict[str, float],
        t0: float,
        dry_run: bool,
        klass: LatencyClass,
        seen: Seen,
    ) -> RouteResult:
        tier = self.policy.remote_tier
        refusal = None
        estimate = request.prompt_tokens + int(params["max_tokens"])
        if tier is None or self.remote is None:
            refusal = "no remote tier is configured"
        elif dry_run:
            refusal = "dry run: the remote is not called"
        else:
            refusal = self.ledger.reserve(estimate)
        if refusal is None and tier is not None and self.remote is not None:
            remote = self.remote
            t1 = time.perf_counter()
            # The latency class's timeout is a deadline for the whole escalation, retries included.
            deadline = time.monotonic() + tier.timeout_s.get(klass, DEFAULT_TIMEOUTS[klass])
            try:
                completion, _ = call_with_retries(
                    lambda: remote.chat(msgs, **params, timeout=max(0.05, deadline - time.monotonic())),
                    breaker=self.breaker,
                    retries=tier.retries,
                    deadline=deadline,
                )
                if not completion.text.strip():
                    raise RemoteError("the remote returned an empty answer")
            except (RemoteError, SchemaOutputError) as e:
                self.ledger.settle(estimate, 0)
                refusal = f"remote failed: {e.message}"
            except BaseException:
                self.ledger.settle(estimate, 0)
                raise
            else:
                latency[f"remote:{tier.name}"] = _ms(t1)
                self.ledger.settle(estimate, remote_tokens(request, completion))
                result = RouteResult(
                    completion, f"remote:{tier.name}", gates, reason, None, tuple(rejections), latency
                )
                return self._finish(result, request, t0, msgs, seen)
        # Degrade: the best local answer, generated now if the gates skipped the local tiers.
        if best is None and params.get("schema") is not None and rejections:
            # Every local answer failed the schema and the remote could not help: never pass one off.
            raise SchemaOutputError(
                f"no tier produced output matching the schema ({refusal}): {rejections[-1]}"
            )
        if best is None:
            t1 = time.perf_counter()
            local_tier, model = self.policy.local_tiers[0], self.local[0]
            room = model.n_ctx - int(params["max_tokens"])
            fitted, note = fit_to_context(model, msgs, room)
            if note:
                refusal = f"{refusal}; {note}"
            best = (local_tier, model.chat(fitted, **params))
            latency[f"local:{local_tier.name}"] = _ms(t1)
        result = RouteResult(
            best[1], f"degraded:{best[0].name}", gates, reason, refusal, tuple(rejections), latency
        )
        return self._finish(result, request, t0, msgs, seen)

    def _finish(
        self, result: RouteResult, request: Request, t0: float, msgs: list[ChatMessage], seen: Seen
    ) -> RouteResult:
        result.latency_ms["total"] = _ms(t0)
        if self.traces is not None:
            c = result.completion
            conf = Confidence.of(c.signals)
            remote = result.route.startswith("remote:")
            tokens = remote_tokens(request, c) if remote else 0
            digest = hashlib.sha256("\n".join(m["content"] for m in msgs).encode()).hexdigest()[:12]
            self.traces.append(
                Trace(
                    time=time.time(),
                    route=result.route,
                    gates=[{"gate": g.gate, "verdict": g.verdict, "reason": g.reason} for g in result.gates],
                    escalation_reason=result.escalation_reason,
                    degraded_reason=result.degraded_reason,
                    signals={
                        "mean_prob": conf.mean_prob,
                        "min_prob": conf.min_prob,
                        "mean_entropy": conf.mean_entropy,
                    },
                    tiers_tried=[k for k in result.latency_ms if ":" in k],
                    latency_ms=dict(result.latency_ms),
                    prompt_tokens=request.prompt_tokens,
                    completion_tokens=c.usage.completion_tokens,
                    remote_tokens=tokens,
                    cost=self.ledger.cost(tokens),
                    prompt_sha=digest,
                    trace_id=result.trace_id,
                    shadow=None if self.shadow is None else self.shadow.decide(request, msgs, seen),
                )
            )
        return result


def fit_to_context(model: ChatModel, msgs: list[ChatMessage], room: int) -> tuple[list[ChatMessage], str]:
    """``msgs`` cut to at most ``room`` prompt tokens for a degraded local answer, and a note saying so
    ("" when they fit): the oldest turns go first (the system prompt and the last message stay), then the
    middle of the last message, whose start and end usually hold the task and the question."""
    total = model.prompt_tokens(msgs)
    if total <= room or room < 1:
        return msgs, ""
    older = [i for i, m in enumerate(msgs[:-1]) if m["role"] != "system"]

    def without_oldest(k: int) -> list[ChatMessage]:
        gone = set(older[:k])
        return [m for i, m in enumerate(msgs) if i not in gone]

    # The fewest oldest turns whose removal makes it fit, found by bisection (a count per step, not per
    # turn: a long history is not tokenized once for every turn it drops).
    lo, hi = 1, len(older)
    while lo < hi:
        mid = (lo + hi) // 2
        if model.prompt_tokens(without_oldest(mid)) <= room:
            hi = mid
        else:
            lo = mid + 1
    fitted = without_oldest(min(lo, len(older)))
    last = fitted[-1]
    text, keep = str(last.get("content") or ""), 1.0
    while model.prompt_tokens(fitted) > room and keep > 0.01:
        keep *= 0.8
        half = int(len(text) * keep / 2)
        fitted[-1] = {**last, "content": f"{text[:half]}\n[...]\n{text[len(text) - half :]}"}
    used = model.prompt_tokens(fitted)
    return fitted, f"the prompt was cut from {total} to {used} tokens to fit the local context"


CHARS_PER_TOKEN_AT_MOST = 8
"""No tokenizer packs more text than this into its tokens on average, so the answer's length gives a floor
for what it cost, whatever the server reports."""


def remote_tokens(request: Request, completion: Completion) -> int:
    """Tokens a remote answer spent. Servers that report no prompt tokens (llama-cpp-python's ignores
    ``stream_options.include_usage``) are charged the prompt's local token count, and no answer is charged
    fewer tokens than its length allows (a server reporting 48 tokens for megabytes of text), so budgets
    hold."""
    usage = completion.usage
    answer = max(usage.completion_tokens, len(completion.text) // CHARS_PER_TOKEN_AT_MOST)
    return (usage.prompt_tokens or request.prompt_tokens) + answer


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)


__all__ = ["ChatModel", "RouteResult", "Router", "acceptance_failures"]
