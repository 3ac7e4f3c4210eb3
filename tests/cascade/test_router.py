from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from edgekit.cascade.budget import BudgetLedger
from edgekit.cascade.policy import Policy, PolicyError
from edgekit.cascade.resilience import CircuitBreaker
from edgekit.cascade.router import Router
from edgekit.cascade.trace import TraceStore, stats
from edgekit.errors import RemoteAuthError, RemoteServerError, RemoteUnreachableError
from edgekit.runtime.types import ChatMessage, Completion

from .fakes import FakeModel

POLICY = """
[defaults]
temperature = 0.0
seed = 1
max_tokens = 64

[[tiers]]
name = "tiny"
kind = "local"
model = "tiny"
accept = { min_mean_prob = 0.7 }

[[tiers]]
name = "small"
kind = "local"
model = "small"
accept = { min_mean_prob = 0.7 }

[[tiers]]
name = "remote"
kind = "remote"
model = "big"
retries = 1

[budget]
max_remote_tokens_per_request = 500
max_remote_tokens_per_day = 1000

[[gates]]
kind = "keywords"
label = "domain"
patterns = ["\\\\bdosage\\\\b"]

[[gates]]
kind = "keywords"
label = "private"
patterns = ["\\\\bmy diary\\\\b"]
verdict = "local"
"""


def make(
    tmp_path: Path,
    tiny: FakeModel,
    small: FakeModel,
    remote: FakeModel | None,
    *,
    breaker: CircuitBreaker | None = None,
) -> Router:
    policy = Policy.parse(POLICY)
    return Router(
        policy,
        local=[tiny, small],
        remote=remote,
        traces=TraceStore(tmp_path / "t.jsonl"),
        ledger=BudgetLedger(policy.budget, tmp_path / "budget.json"),
        breaker=breaker,
    )


def test_confident_tiny_answer_is_accepted_locally(tmp_path: Path) -> None:
    tiny, small, remote = FakeModel("Paris.", 0.95), FakeModel(), FakeModel("remote")
    r = make(tmp_path, tiny, small, remote).route("Which city is the capital of France?")
    assert r.route == "local:tiny" and r.completion.text == "Paris."
    assert not small.calls and not remote.calls


def test_low_confidence_climbs_the_tiers_then_escalates(tmp_path: Path) -> None:
    tiny, small, remote = FakeModel("eh", 0.3), FakeModel("hmm", 0.4), FakeModel("Remote answer.", 0.99)
    r = make(tmp_path, tiny, small, remote).route("Explain monads.")
    assert r.route == "remote:remote" and r.completion.text == "Remote answer."
    assert r.escalation_reason and r.escalation_reason.startswith(
        "signals: small: mean token probability 0.400 < 0.7"
    )
    assert len(r.rejections) == 2 and len(tiny.calls) == len(small.calls) == len(remote.calls) == 1


def test_a_confident_answer_cut_off_by_the_token_limit_is_not_accepted(tmp_path: Path) -> None:
    class CutOff(FakeModel):
        def chat(self, msgs: Sequence[ChatMessage], **params: Any) -> Completion:
            return replace(super().chat(msgs, **params), finish_reason="length")

    tiny, remote = CutOff("Let's solve this step by step. First", 0.99), FakeModel("42.", 0.9)
    r = make(tmp_path, tiny, FakeModel("eh", 0.3), remote).route("What is six times seven?")
    assert r.route == "remote:remote"
    assert r.rejections[0].startswith("tiny: cut off by the token limit after 7 tokens")


def test_second_tier_can_accept(tmp_path: Path) -> None:
    r = make(tmp_path, FakeModel("eh", 0.3), FakeModel("Good.", 0.9), FakeModel()).route("q")
    assert r.route == "local:small" and r.rejections[0].startswith("tiny: ")


def test_gate_escalates_without_asking_the_local_model(tmp_path: Path) -> None:
    tiny, remote = FakeModel(), FakeModel("See a doctor.")
    r = make(tmp_path, tiny, FakeModel(), remote).route("What dosage of ibuprofen is safe?")
    assert r.route == "remote:remote" and not tiny.calls
    assert r.escalation_reason == "gate keywords:domain: domain: matched \\bdosage\\b"


def test_local_verdict_pins_the_request_on_device(tmp_path: Path) -> None:
    tiny, remote = FakeModel("ok", 0.1), FakeModel()
    r = make(tmp_path, tiny, FakeModel(), remote).route("Summarise my diary: the dosage was wrong")
    assert r.route == "local:tiny" and not remote.calls


def test_remote_down_degrades_to_the_best_local_answer(tmp_path: Path) -> None:
    down = FakeModel(fail=lambda: RemoteUnreachableError("connection refused"))
    r = make(tmp_path, FakeModel("tiny says", 0.3), FakeModel("small says", 0.4), down).route("q")
    assert r.route == "degraded:small" and r.completion.text == "small says"
    assert r.degraded_reason and "connection refused" in r.degraded_reason
    assert len(down.calls) == 2, "one retry of a retryable error"


def test_gate_escalation_with_remote_down_still_answers_locally(tmp_path: Path) -> None:
    tiny = FakeModel("local", 0.9)
    down = FakeModel(fail=lambda: RemoteServerError("500"))
    r = make(tmp_path, tiny, FakeModel(), down).route("dosage?")
    assert r.route == "degraded:tiny" and r.completion.text == "local" and len(tiny.calls) == 1


def test_non_retryable_remote_errors_are_not_retried(tmp_path: Path) -> None:
    bad = FakeModel(fail=lambda: RemoteAuthError("401"))
    r = make(tmp_path, FakeModel("x", 0.1), FakeModel("y", 0.1), bad).route("q")
    assert r.degraded and len(bad.calls) == 1


def test_circuit_breaker_fails_fast_once_open(tmp_path: Path) -> None:
    down = FakeModel(fail=lambda: RemoteUnreachableError("refused"))
    router = make(
        tmp_path,
        FakeModel("x", 0.1),
        FakeModel("y", 0.1),
        down,
        breaker=CircuitBreaker(failures=2, reset_after_s=60),
    )
    router.route("q")
    assert router.breaker.state == "open"
    r = router.route("q again")
    assert len(down.calls) == 2, "no call while the circuit is open"
    assert r.degraded_reason and "circuit open" in r.degraded_reason


def test_budget_ceilings(tmp_path: Path) -> None:
    remote = FakeModel("remote", 0.9)
    router = make(tmp_path, FakeModel("x", 0.1), FakeModel("y", 0.1), remote)
    r = router.route("word " * 600)  # estimate above the per-request ceiling of 500
    assert r.degraded_reason and "per-request ceiling" in r.degraded_reason and not remote.calls
    router.ledger.record(990)
    r = router.route("short")
    assert r.degraded_reason and "daily remote budget spent" in r.degraded_reason


def test_remote_that_reports_no_prompt_tokens_is_charged_the_local_count(tmp_path: Path) -> None:
    from dataclasses import replace

    class Unreported(FakeModel):
        def chat(self, msgs: Sequence[ChatMessage], **params: Any) -> Completion:
            c = super().chat(msgs, **params)
            return replace(c, usage=replace(c.usage, prompt_tokens=0))

    router = make(tmp_path, FakeModel("x", 0.1), FakeModel("y", 0.1), Unreported("Paris is the capital."))
    r = router.route("one two three four five")
    assert r.route == "remote:remote"
    prompt = router.features([{"role": "user", "content": "one two three four five"}], 64).prompt_tokens
    assert prompt > 0 and router.ledger.spent_today() == prompt + 4
    assert router.traces.read()[-1]["remote_tokens"] == prompt + 4  # type: ignore[union-attr]


def test_a_remote_cannot_report_its_way_under_the_budget(tmp_path: Path) -> None:
    """An answer of 80,000 characters reported as 4 tokens is charged at least one token per 8 characters."""
    from dataclasses import replace

    class Understated(FakeModel):
        def chat(self, msgs: Sequence[ChatMessage], **params: Any) -> Completion:
            c = super().chat(msgs, **params)
            return replace(c, usage=replace(c.usage, prompt_tokens=1, completion_tokens=3))

    router = make(tmp_path, FakeModel("x", 0.1), FakeModel("y", 0.1), Understated("Paris " * 13_334))
    assert router.route("one two three").route == "remote:remote"
    assert router.ledger.spent_today() >= 80_000 // 8


def test_empty_remote_answer_is_not_success(tmp_path: Path) -> None:
    r = make(tmp_path, FakeModel("x", 0.1), FakeModel("y", 0.1), FakeModel("   ")).route("q")
    assert r.route == "degraded:small" and "empty answer" in (r.degraded_reason or "")


def test_no_remote_configured(tmp_path: Path) -> None:
    r = make(tmp_path, FakeModel("x", 0.1), FakeModel("y", 0.2), None).route("q")
    assert r.route == "degraded:small" and r.degraded_reason == "no remote tier is configured"


def test_dry_run_never_calls_the_remote(tmp_path: Path) -> None:
    remote = FakeModel()
    r = make(tmp_path, FakeModel("x", 0.1), FakeModel("y", 0.1), remote).route("q", dry_run=True)
    assert r.escalation_reason and r.degraded_reason and "dry run" in r.degraded_reason and not remote.calls


def test_stream_contract_shows_only_the_accepted_answer(tmp_path: Path) -> None:
    router = make(
        tmp_path, FakeModel("withdrawn", 0.1), FakeModel("also withdrawn", 0.1), FakeModel("final", 0.9)
    )
    chunks = list(router.chat("q", stream=True))
    assert "".join(c.text for c in chunks) == "final" and chunks[-1].finish_reason == "stop"


def test_traces_record_decisions_without_text_and_stats_summarise(tmp_path: Path) -> None:
    router = make(tmp_path, FakeModel("Paris.", 0.95), FakeModel(), FakeModel("remote", 0.9))
    router.route("capital of France?")
    router.route("dosage of aspirin?")
    router.route("unsure", temperature=0.5)  # still accepted: tiny is confident
    traces = router.traces.read()  # type: ignore[union-attr]
    assert [t["route"] for t in traces] == ["local:tiny", "remote:remote", "local:tiny"]
    raw = (tmp_path / "t.jsonl").read_text()
    assert "France" not in raw and "aspirin" not in raw, "traces never hold the prompt text"
    assert traces[1]["gates"][0]["verdict"] == "escalate" and traces[1]["remote_tokens"] > 0
    s = stats(traces)
    assert (
        s["requests"] == 3 and s["routes"]["local"]["count"] == 2 and s["routes"]["remote"]["share"] == 1 / 3
    )
    assert s["escalation_reasons"]["gate keywords"]["count"] == 1
    assert s["latency_ms"]["local:tiny"]["count"] == 2 and s["remote_tokens"] == traces[1]["remote_tokens"]


def test_policy_defaults_set_determinism(tmp_path: Path) -> None:
    seen: dict[str, object] = {}

    class Spy(FakeModel):
        def chat(self, msgs, **params):  # type: ignore[no-untyped-def, override]
            seen.update(params)
            return super().chat(msgs, **params)

    make(tmp_path, Spy("a", 0.9), FakeModel(), None).route("q")
    assert seen == {"temperature": 0.0, "seed": 1, "max_tokens": 64}


def test_one_local_model_per_tier_is_required(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one local model per local tier"):
        Router(Policy.parse(POLICY), local=[FakeModel()])


class Sampler(FakeModel):
    """Greedy answer first, then scripted answers for the resampled probes."""

    def __init__(self, answers: list[str]) -> None:
        super().__init__(answers[0], 0.95)
        self.answers = answers

    def chat(self, msgs, **params):  # type: ignore[no-untyped-def, override]
        self.answer = self.answers[len(self.calls)]
        return super().chat(msgs, **params)


def consistency_policy(tmp_path: Path) -> str:
    return POLICY.replace(
        'model = "tiny"\naccept = { min_mean_prob = 0.7 }',
        'model = "tiny"\naccept = { min_mean_prob = 0.7 }\n'
        "self_consistency = { samples = 3, temperature = 0.9, min_agreement = 0.6 }",
    )


@pytest.mark.parametrize(
    ("answers", "route"),
    [
        (["Paris.", "paris", "Paris!", "Lyon."], "local:tiny"),  # 2 of 3 agree
        (["Paris.", "Lyon.", "Nice.", "paris"], "remote:remote"),  # 1 of 3
    ],
)
def test_self_consistency_probe(tmp_path: Path, answers: list[str], route: str) -> None:
    policy = Policy.parse(consistency_policy(tmp_path))
    tiny = Sampler(answers)
    router = Router(policy, local=[tiny, FakeModel("eh", 0.1)], remote=FakeModel("Remote.", 0.9))
    result = router.route("Which city is the capital of France?")
    assert result.route == route and len(tiny.calls) == 4
    if route != "local:tiny":
        assert result.rejections[0] == "tiny: self-consistency 1/3 < 0.6"


class _TimedRemote(FakeModel):
    def __init__(self) -> None:
        super().__init__("remote answer")
        self.timeouts: list[float | None] = []

    def chat(self, msgs: Sequence[ChatMessage], **params: Any) -> Completion:
        self.timeouts.append(params.get("timeout"))
        return super().chat(msgs, **params)


def test_latency_class_picks_the_remote_timeout_per_request(tmp_path: Path) -> None:
    remote = _TimedRemote()
    router = make(tmp_path, FakeModel("?", 0.1), FakeModel("?", 0.1), remote)
    router.route("Which city?", latency_class="fast")
    router.route("Which city?")
    router.route("Which city?", latency_class="escalation")
    # the tier's defaults per class (policy: standard), as what is left of the escalation's deadline
    assert remote.timeouts == pytest.approx([5.0, 30.0, 60.0], abs=0.5)
    with pytest.raises(PolicyError, match="latency class"):
        router.route("Which city?", latency_class="instant")  # type: ignore[arg-type]


def test_fit_to_context_drops_the_fewest_oldest_turns_with_few_counts() -> None:
    from edgekit.cascade.router import fit_to_context

    class Counting(FakeModel):
        counts = 0

        def prompt_tokens(self, msgs: Sequence[ChatMessage]) -> list[int]:
            Counting.counts += 1
            return super().prompt_tokens(msgs)

    turn = " ".join(["word"] * 10)  # 14 tokens a message with the fake's template
    history: list[ChatMessage] = [{"role": "system", "content": "be brief"}]  # 6 tokens
    history += [{"role": ("user", "assistant")[i % 2], "content": f"{i} {turn}"} for i in range(200)]
    history.append({"role": "user", "content": "the question"})  # 6 tokens
    model = Counting()
    fitted, note = fit_to_context(model, history, 6 + 6 + 15 * 30)  # room for the 30 newest turns
    assert fitted[0]["role"] == "system" and fitted[-1]["content"] == "the question"
    assert [m["content"].split()[0] for m in fitted[1:-1]] == [str(i) for i in range(170, 200)]
    assert "cut from" in note and Counting.counts <= 12  # bisection: not one count per dropped turn
