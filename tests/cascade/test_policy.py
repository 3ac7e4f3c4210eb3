from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgekit.cascade.gates import Request, build_gate
from edgekit.cascade.learned import AcceptModel
from edgekit.cascade.policy import GateSpec, Policy, PolicyError, default_policy_path, resolve_policy
from edgekit.cli.errors import exit_code

ROOT = Path(__file__).resolve().parents[2]
MIN = """
[[tiers]]
name = "tiny"
kind = "local"
model = "smollm2-135m-instruct"
"""


def test_shipped_default_policy_loads_and_builds_its_gates() -> None:
    policy = Policy.load(default_policy_path())
    assert policy.tiers[0].kind == "local" and policy.remote_tier is not None
    assert [build_gate(g).name for g in policy.gates][:2] == ["context", "keywords:domain"]
    assert default_policy_path().read_text() == (ROOT / "recipes" / "cascade" / "default.toml").read_text()


def test_every_shipped_policy_loads_with_its_models_and_is_found_by_name() -> None:
    shipped = sorted((ROOT / "recipes" / "cascade").glob("*.toml"))
    assert {p.stem for p in shipped} >= {"default", "cross-check"}
    for path in shipped:
        policy = Policy.load(resolve_policy(path.stem))
        assert resolve_policy(path.stem).read_text() == path.read_text()
        for tier in policy.local_tiers:
            if tier.accept.learned:
                model = AcceptModel.load(path.parent / tier.accept.learned)
                assert model.threshold is not None and "calibration split" in model.trained_on
                assert not model.uses_agreement or tier.cross_check is not None
    with pytest.raises(PolicyError, match="no shipped cascade policy named 'nope'") as e:
        resolve_policy("nope")
    assert "cross-check" in e.value.hint
    assert resolve_policy(Path("my.toml")) == Path("my.toml")


def test_shipped_keyword_patterns_have_no_unbounded_wildcard() -> None:
    """'first.*then' searched a 96,000-character prompt for 11 s (quadratic backtracking); a bounded gap
    keeps every shipped pattern linear in the prompt's length."""
    for path in sorted((ROOT / "recipes" / "cascade").glob("*.toml")):
        for gate in Policy.load(path).gates:
            for pattern in (gate.model_extra or {}).get("patterns", []):
                assert not re.search(r"(?<!\\)[.\]][*+]", pattern), f"{path.name}: {pattern}"
    (spec,) = [g for g in Policy.load(default_policy_path()).gates if "then" in str(g.model_extra)]
    gate = build_gate(spec)
    text = "First boil the water, then add the pasta."
    decision = gate.decide(Request(text=text, prompt_tokens=12, local_n_ctx=2048, max_tokens=64))
    assert decision.verdict == "escalate" and "then" in decision.reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MIN + "[budget]\nmax_remote_tokens_per_dya = 5\n", "Did you mean 'max_remote_tokens_per_day'"),
        (MIN + "[budget]\nmax_remote_tokens_per_day = 0\n", "budget.max_remote_tokens_per_day"),
        (MIN + "[budget]\nmax_remote_tokens_per_request = -5\n", "greater than 0"),
        (MIN.replace('kind = "local"', 'kind = "remote"'), "first tier must be local"),
        (MIN + MIN, "tier names must be unique"),
        ("preference = 'bold'\n" + MIN, "preference"),
        ("tiers = []\n", "tiers"),
        (MIN + "[[tiers]]\nname='a'\nkind='local'\nmodel='m'\naccept={min_mean_prob=1.5}\n", "min_mean_prob"),
        ("x = [\n", "invalid TOML"),
        (MIN + "[budget]\ncost_per_1k_tokens = inf\n", "budget.cost_per_1k_tokens"),
        (MIN + "[[tiers]]\nname='r'\nkind='remote'\nmodel='m'\ntimeout_s={standard=nan}\n", "timeout_s"),
        (MIN + "[[tiers]]\nname='r'\nkind='remote'\nmodel='m'\ntimeout_s={fast=-1.0}\n", "greater than 0"),
        (MIN + "[[tiers]]\nname='a'\nkind='local'\nmodel='m'\naccept={max_mean_entropy=inf}\n", "finite"),
    ],
)
def test_invalid_policies_name_the_key(text: str, expected: str) -> None:
    with pytest.raises(PolicyError) as info:
        Policy.parse(text, Path("p.toml"))
    assert expected in f"{info.value.message} {info.value.hint}" and info.value.message.startswith("p.toml:")
    assert exit_code(info.value) == 2


def test_unknown_gate_suggests_a_name() -> None:
    with pytest.raises(PolicyError) as info:
        build_gate(GateSpec(kind="keyword"))
    assert "unknown gate 'keyword'" in info.value.message and "keywords" in info.value.hint
    with pytest.raises(PolicyError, match="bad pattern"):
        build_gate(GateSpec(kind="keywords", patterns=["("]))  # type: ignore[call-arg]


def req(text: str, prompt_tokens: int = 20, n_ctx: int = 2048, output_type: str = "text") -> Request:
    return Request(text, prompt_tokens, n_ctx, 256, output_type)  # type: ignore[arg-type]


def test_heuristic_gates_explain_themselves() -> None:
    ctx = build_gate(GateSpec(kind="context", max_prompt_tokens=100))  # type: ignore[call-arg]
    assert ctx.decide(req("hi")).verdict == "pass"
    assert "exceed the local context" in ctx.decide(req("hi", prompt_tokens=1900)).reason
    assert ctx.decide(req("hi", prompt_tokens=150)).verdict == "escalate"
    domain = build_gate(GateSpec(kind="keywords", label="domain", patterns=[r"\bdosage\b"]))  # type: ignore[call-arg]
    hit = domain.decide(req("What dosage of ibuprofen is safe?"))
    assert hit.verdict == "escalate" and hit.reason.startswith("domain: matched")
    assert domain.decide(req("What is a good name for a cat?")).verdict == "pass"
    out = build_gate(GateSpec(kind="output_type", tool="escalate"))  # type: ignore[call-arg]
    assert out.decide(req("x", output_type="tool")).verdict == "escalate"
    assert out.decide(req("x")).verdict == "pass"


def test_a_policy_cannot_run_code_it_names_unless_the_user_allows_the_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "ran"
    spec = GateSpec.model_validate({"kind": "os:system", "command": f"touch {marker}"})
    monkeypatch.delenv("EDGEKIT_GATE_MODULES", raising=False)
    with pytest.raises(PolicyError, match="names code outside edgekit") as info:
        build_gate(spec)
    assert "EDGEKIT_GATE_MODULES=os" in info.value.hint and not marker.exists()
    monkeypatch.setenv("EDGEKIT_GATE_MODULES", "os")  # allowed, yet not a gate class: refused uncalled
    with pytest.raises(PolicyError, match="not a gate class"):
        build_gate(spec)
    assert not marker.exists()
    monkeypatch.setenv("EDGEKIT_GATE_MODULES", "edgekit.cascade")
    gate = build_gate(GateSpec.model_validate({"kind": "edgekit.cascade.gates:ContextGate"}))
    assert gate.name == "context"
