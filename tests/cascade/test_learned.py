"""The learned acceptance model: fitting, saving, loading, and its place in the router.

These are unit tests of the logic around the encoder seam: ``embed`` here is a deterministic bag-of-words
embedding, so they need no model. The real encoder is exercised by the safety tests.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from edgekit.cascade.evaluation import Observation, summarize
from edgekit.cascade.learned import AcceptModel, Evidence, leave_one_out_scores
from edgekit.cascade.policy import Policy, PolicyError
from edgekit.cascade.router import Router

from .fakes import FakeModel


def embed(texts: Sequence[str]) -> np.ndarray:
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in re.findall(r"[a-z]+", t.lower()):
            out[i, zlib.crc32(w.encode()) % 64] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def _examples(n: int, seed: int = 0) -> tuple[list[Evidence], list[bool]]:
    """Arithmetic prompts the local model gets wrong, capital-city prompts it gets right, with signals
    drawn from one distribution for both: only the prompt tells them apart."""
    rng = random.Random(seed)
    ev, right = [], []
    for i in range(n):
        p = rng.uniform(0.5, 0.9)
        if i % 2:
            prompt = f"What is {rng.randint(10, 99)} times {rng.randint(10, 99)}?"
        else:
            prompt = f"What is the capital of country {i}?"
        ev.append(Evidence(prompt, p, p, 0.5, rng.randint(1, 8)))
        right.append(i % 2 == 0)
    return ev, right


def _fit(ev: list[Evidence], right: list[bool], **kw: object) -> AcceptModel:
    return AcceptModel.fit(ev, right, embed([e.prompt for e in ev]), **kw)  # type: ignore[arg-type]


def test_fit_separates_what_signals_alone_cannot(tmp_path: Path) -> None:
    ev, right = _examples(40)
    model = _fit(ev, right, trained_on="synthetic")
    held_out, truth = _examples(20, seed=1)
    scores = model.scores(held_out, embed([e.prompt for e in held_out]))
    assert all((s >= 0.5) == t for s, t in zip(scores, truth, strict=True))
    path = tmp_path / "accept.json"
    path.write_text(model.to_json())
    again = AcceptModel.load(path)
    assert again.trained_on == "synthetic"
    assert list(again.scores(held_out, embed([e.prompt for e in held_out]))) == pytest.approx(
        list(scores), abs=1e-4
    )


def test_leave_one_out_scores_come_from_models_that_did_not_see_the_item() -> None:
    ev, right = _examples(12)
    emb = embed([e.prompt for e in ev])
    loo = leave_one_out_scores(ev, right, emb)
    full = _fit(ev, right).scores(ev, emb)
    assert loo.shape == (12,)
    # held-out scores are less confident than in-sample ones on average
    assert abs(loo - 0.5).mean() < abs(full - 0.5).mean()


def test_fit_needs_both_outcomes() -> None:
    ev, _ = _examples(6)
    with pytest.raises(ValueError, match="both right and wrong"):
        _fit(ev, [True] * 6)


@pytest.mark.parametrize(
    "text", ["{", "[]", '{"kind": "other"}', '{"kind": "edgekit.accept-model", "version": 1}']
)
def test_bad_model_file_is_a_policy_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "accept.json"
    path.write_text(text)
    with pytest.raises(PolicyError, match="accept model"):
        AcceptModel.load(path)


def _policy(tmp_path: Path, accept: str) -> Policy:
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(f'[[tiers]]\nname = "tiny"\nkind = "local"\nmodel = "tiny"\naccept = {accept}\n')
    return Policy.load(policy_file)


def test_router_rejects_local_answers_the_model_scores_low(tmp_path: Path) -> None:
    ev, right = _examples(40)
    (tmp_path / "accept.json").write_text(_fit(ev, right).to_json())
    policy = _policy(tmp_path, '{ learned = "accept.json", min_score = 0.5 }')
    router = Router(policy, local=[FakeModel(answer="42", prob=0.6)], embed=embed)
    wrong = router.route("What is 37 times 59?")
    assert wrong.route == "degraded:tiny"
    assert "learned acceptance score" in wrong.rejections[0]
    assert router.route("What is the capital of country 8?").route == "local:tiny"


def test_missing_model_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"nope\.json"):
        Router(_policy(tmp_path, '{ learned = "nope.json" }'), local=[FakeModel()])


def test_summary_reports_the_learned_cascade_on_the_test_split() -> None:
    ev, right = _examples(80)
    obs, prompts = [], {}
    for i, (e, ok) in enumerate(zip(ev, right, strict=True)):
        split = "calibration" if i < 40 else "test"
        obs.append(
            Observation(
                f"q{i}", "x", split, ok, True, e.mean_prob, None, False, 10,
                e.min_prob, e.mean_entropy, e.answer_tokens,
            )
        )  # fmt: skip
        prompts[f"q{i}"] = e.prompt
    report = summarize(obs, prompts=prompts, embed=embed)
    learned = report["learned"]["test"]
    plain = report["test"]
    # signals alone carry no information here, so the probability threshold must escalate almost all;
    # the learned model escalates about the wrong half only
    assert plain["share_vs_oracle"] > 1.6
    assert learned["share_vs_oracle"] < 1.25
    assert learned["cascade"]["quality"] >= 0.85
    assert "learned" not in summarize(obs, prompts=prompts)  # no encoder, no learned report


def test_saved_observations_read_back_and_bad_lines_are_named(tmp_path: Path) -> None:
    from edgekit.cascade.evaluation import observations_from_jsonl, observations_to_jsonl
    from edgekit.errors import InputError

    obs = [Observation("a", "fact", "test", True, False, 0.9, None, False, 12, 0.5, 0.4, 3)]
    path = tmp_path / "obs.jsonl"
    path.write_text(observations_to_jsonl(obs) + '{"id": "b"}\n')
    with pytest.raises(InputError, match=r"obs\.jsonl:2: bad observation"):
        observations_from_jsonl(path)
    path.write_text(observations_to_jsonl(obs))
    assert observations_from_jsonl(path) == obs


def _agreement_examples(n: int, seed: int = 0) -> tuple[list[Evidence], list[bool]]:
    """Right answers agree with the cross-check model, wrong ones do not; signals carry nothing."""
    rng = random.Random(seed)
    ev, right = [], []
    for i in range(n):
        ok = i % 2 == 0
        agreement = rng.uniform(0.6, 1.0) if ok else rng.uniform(0.0, 0.4)
        p = rng.uniform(0.5, 0.9)
        ev.append(Evidence(f"question {i}", p, p, 0.5, rng.randint(1, 8), agreement))
        right.append(ok)
    return ev, right


def test_agreement_model_needs_no_embeddings_and_keeps_its_threshold(tmp_path: Path) -> None:
    from edgekit.cascade.learned import feature_layout

    ev, right = _agreement_examples(40)
    layout = feature_layout(agreement=True, neighbours=False)
    model = AcceptModel.fit(ev, right, None, features=layout).with_threshold(0.42)
    held_out, truth = _agreement_examples(20, seed=1)
    assert all((s >= 0.5) == t for s, t in zip(model.scores(held_out), truth, strict=True))
    path = tmp_path / "accept.json"
    path.write_text(model.to_json())
    again = AcceptModel.load(path)
    assert again.features == layout and again.threshold == 0.42 and not again.uses_neighbours
    assert list(again.scores(held_out)) == pytest.approx(list(model.scores(held_out)), abs=1e-6)
    with pytest.raises(ValueError, match="no agreement was measured"):
        model.scores([Evidence("q", 0.5, 0.5, 0.5, 3)])


@pytest.mark.parametrize(
    ("answer", "other", "expected"),
    [
        ("The capital of France is Paris.", "Paris is the capital of France.", 1.0),
        ("The capital of France is Lyon.", "The capital of France is Paris.", 0.0),
        ("The capital of France is Paris, a big city.", "Paris.", 1 / 4),
        ("France.", "The capital of France.", 0.0),  # answers that add nothing agree on nothing
    ],
)
def test_answer_agreement_compares_what_the_answers_add_to_the_prompt(
    answer: str, other: str, expected: float
) -> None:
    from edgekit.cascade.learned import answer_agreement

    assert answer_agreement("What is the capital of France?", answer, other) == pytest.approx(expected)


def _cross_policy(tmp_path: Path, extra: str) -> Policy:
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(
        f'[[tiers]]\nname = "tiny"\nkind = "local"\nmodel = "tiny"\n{extra}\n'
        '[[tiers]]\nname = "remote"\nkind = "remote"\nmodel = "big"\n'
    )
    return Policy.load(policy_file)


def test_cross_check_disagreement_escalates_and_agreement_keeps_the_answer(tmp_path: Path) -> None:
    policy = _cross_policy(tmp_path, 'cross_check = { model = "small", min_agreement = 0.5 }')
    tiny, small, remote = FakeModel(answer="Lyon."), FakeModel(answer="Paris."), FakeModel(answer="Paris!")
    router = Router(policy, local=[tiny], remote=remote, cross_check={"tiny": small})
    result = router.route("What is the capital of France?")
    assert result.route == "remote:remote" and len(small.calls) == 1
    assert result.rejections == ("tiny: cross-check agreement 0.00 < 0.5",)
    assert "cross-check:tiny" in result.latency_ms
    tiny.answer = "Paris is the capital."
    assert router.route("What is the capital of France?").route == "local:tiny"
    router.close()
    assert small.closed, "the router owns its cross-check models"


def test_cross_check_setup_errors(tmp_path: Path) -> None:
    policy = _cross_policy(tmp_path, 'cross_check = { model = "small" }')
    with pytest.raises(ValueError, match="no cross-check model for tier tiny"):
        Router(policy, local=[FakeModel()])
    with pytest.raises(PolicyError, match="local tiers only"):
        Policy.parse(
            '[[tiers]]\nname = "tiny"\nkind = "local"\nmodel = "t"\n'
            '[[tiers]]\nname = "r"\nkind = "remote"\nmodel = "b"\ncross_check = { model = "s" }\n'
        )
    ev, right = _agreement_examples(20)
    from edgekit.cascade.learned import feature_layout

    model = AcceptModel.fit(ev, right, None, features=feature_layout(agreement=True, neighbours=False))
    (tmp_path / "accept.json").write_text(model.to_json())
    with pytest.raises(PolicyError, match="uses cross-check agreement"):
        Router(_cross_policy(tmp_path, 'accept = { learned = "accept.json" }'), local=[FakeModel()])


def test_learned_model_with_agreement_uses_its_calibrated_threshold(tmp_path: Path) -> None:
    from edgekit.cascade.evaluation import calibrate_accept_model

    ev, right = _agreement_examples(40)
    obs = [
        Observation(
            f"q{i}", "x", "calibration", ok, True, e.mean_prob, None, False, 10,
            e.min_prob, e.mean_entropy, e.answer_tokens, agreement=e.agreement,
        )
        for i, (e, ok) in enumerate(zip(ev, right, strict=True))
    ]  # fmt: skip
    model, loo = calibrate_accept_model(obs, {o.id: e.prompt for o, e in zip(obs, ev, strict=True)}, None)
    assert model.uses_agreement and not model.uses_neighbours and len(loo) == 40
    assert model.threshold is not None and 0.0 < model.threshold < 1.0
    (tmp_path / "accept.json").write_text(model.to_json())
    policy = _cross_policy(
        tmp_path, 'accept = { learned = "accept.json" }\ncross_check = { model = "small" }'
    )
    tiny, small = FakeModel(answer="Lyon."), FakeModel(answer="Paris.")
    router = Router(policy, local=[tiny], remote=FakeModel(answer="Paris."), cross_check={"tiny": small})
    result = router.route("What is the capital of France?")
    assert result.route == "remote:remote"
    assert result.rejections[0].startswith("tiny: learned acceptance score")
    assert f"< {model.threshold:.3f}" in result.rejections[0]


def test_a_rejected_answer_gives_way_to_the_cross_check_answer_it_accepts(tmp_path: Path) -> None:
    """cross_check.accept: the second model's answer is kept before the remote is called, on its own
    thresholds; it is generated once (reused from the agreement check), and the remote answers when it
    fails too."""
    policy = _cross_policy(
        tmp_path,
        "accept = { min_mean_prob = 0.9 }\n"
        'cross_check = { model = "small", accept = { min_mean_prob = 0.8 } }',
    )
    tiny, small, remote = (
        FakeModel(answer="Lyon.", prob=0.5),
        FakeModel(answer="Paris.", prob=0.85),
        FakeModel(),
    )
    router = Router(policy, local=[tiny], remote=remote, cross_check={"tiny": small})
    result = router.route("What is the capital of France?")
    assert result.route == "local:tiny:cross-check" and result.completion.text == "Paris."
    assert result.rejections == ("tiny: mean token probability 0.500 < 0.9",)
    assert len(small.calls) == 1 and not remote.calls and "cross-check:tiny" in result.latency_ms
    small.prob = 0.6
    again = router.route("What is the capital of France?")
    assert again.route == "remote:remote" and len(small.calls) == 2
    assert again.rejections[-1] == "tiny cross-check: mean token probability 0.600 < 0.8"
    tiny.prob = 0.95  # accepted: the second model is asked only for agreement, if at all
    assert router.route("What is the capital of France?").route == "local:tiny"
