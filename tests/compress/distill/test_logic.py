"""Distillation logic without a model: config checks, layer choice, losses, data order, missing torch."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from edgekit.cli.errors import exit_code
from edgekit.compress.distill import DistillConfig, distill
from edgekit.compress.distill.data import Example, batch_at, collate
from edgekit.compress.distill.losses import ce_loss, kd_loss, topk_kd_loss
from edgekit.compress.distill.prune import choose_layers
from edgekit.errors import InputError, MissingDependencyError


def cfg(**kw: object) -> DistillConfig:
    base: dict[str, object] = {"teacher": "t", "drop_layers": 2, "out": Path("out")}
    return DistillConfig(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"drop_layers": -1}, "negative"),
        ({"mode": "words"}, "unknown mode"),
        ({"steps": 0}, "--steps"),
        ({"temperature": 0.0}, "--temperature"),
        ({"alpha": 1.5}, "--alpha"),
        ({"mode": "sequence"}, "generator"),
    ],
)
def test_bad_settings_are_input_errors(kw: dict[str, object], needle: str) -> None:
    with pytest.raises(InputError, match=needle) as e:
        cfg(**kw)
    assert exit_code(e.value) == 2 and e.value.hint


def test_fingerprint_tracks_what_shapes_the_weights() -> None:
    a = cfg().fingerprint("teacher", "data")
    assert cfg(steps=999, checkpoint_every=7, out=Path("elsewhere")).fingerprint("teacher", "data") == a
    assert cfg(lr=1e-3).fingerprint("teacher", "data") != a
    assert cfg(drop_layers=3).fingerprint("teacher", "data") != a
    assert cfg().fingerprint("teacher", "other data") != a
    assert cfg().fingerprint("other teacher", "data") != a


def test_least_influential_blocks_are_dropped_and_never_all() -> None:
    assert choose_layers([0.9, 0.1, 0.5, 0.05, 0.7], 2) == (1, 3)
    assert choose_layers([0.2, 0.2, 0.9], 1) == (1,)  # a tie goes to the later block
    assert choose_layers([0.3, 0.1], 0) == ()
    with pytest.raises(InputError, match="all 3 layers"):
        choose_layers([0.1, 0.2, 0.3], 3)


def test_kd_loss_is_zero_on_the_teacher_and_grows_with_disagreement() -> None:
    gen = torch.Generator().manual_seed(0)
    teacher = torch.randn(2, 6, 11, generator=gen)
    ids = torch.randint(0, 11, (2, 6), generator=gen)
    mask = torch.ones(2, 6, dtype=torch.bool)
    assert float(kd_loss(teacher, teacher, ids, mask, temperature=2.0)) == pytest.approx(0.0, abs=1e-6)
    near = teacher + 0.1 * torch.randn(2, 6, 11, generator=gen)
    far = teacher + 1.0 * torch.randn(2, 6, 11, generator=gen)
    assert (
        0
        < float(kd_loss(near, teacher, ids, mask, temperature=2.0))
        < float(kd_loss(far, teacher, ids, mask, temperature=2.0))
    )
    # alpha=1 is the plain cross-entropy on the real tokens
    mixed = kd_loss(far, teacher, ids, mask, temperature=2.0, alpha=1.0)
    assert float(mixed) == pytest.approx(float(ce_loss(far, ids, mask)), rel=1e-5)


def test_only_masked_positions_count() -> None:
    gen = torch.Generator().manual_seed(1)
    student, teacher = torch.randn(1, 5, 7, generator=gen), torch.randn(1, 5, 7, generator=gen)
    ids = torch.randint(0, 7, (1, 5), generator=gen)
    mask = torch.tensor([[False, False, False, True, True]])
    changed = student.clone()
    changed[0, 0:2] += 5.0  # positions 0 and 1 predict tokens 1 and 2, which are not targets
    assert float(kd_loss(changed, teacher, ids, mask, temperature=1.0)) == pytest.approx(
        float(kd_loss(student, teacher, ids, mask, temperature=1.0))
    )


def test_data_order_is_seeded_and_resumable_by_position() -> None:
    examples = [Example(torch.tensor([i, i + 1, i + 2]), torch.ones(3, dtype=torch.bool)) for i in range(5)]
    stream = [batch_at(examples, p, 1, seed=3, pad_id=0).input_ids[0, 0].item() for p in range(10)]
    assert sorted(stream[:5]) == sorted(stream[5:]) == [0, 1, 2, 3, 4]  # each epoch sees every example
    assert stream[:5] != stream[5:]  # and reshuffled between epochs
    again = [batch_at(examples, p, 1, seed=3, pad_id=0).input_ids[0, 0].item() for p in range(10)]
    assert again == stream
    other = [batch_at(examples, p, 1, seed=4, pad_id=0).input_ids[0, 0].item() for p in range(10)]
    assert other != stream


def test_collate_pads_and_masks() -> None:
    a = Example(torch.tensor([5, 6, 7]), torch.tensor([False, True, True]))
    b = Example(torch.tensor([8]), torch.tensor([True]))
    batch = collate([a, b], pad_id=0)
    assert batch.input_ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch.loss_mask.tolist() == [[False, True, True], [False, False, False]]


def test_missing_torch_names_the_pip_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # what find_spec sees when torch is not installed
    with pytest.raises(MissingDependencyError) as e:
        distill(cfg(out=tmp_path / "out"))
    assert "pip install" in e.value.hint and "torch" in e.value.hint
    assert not (tmp_path / "out").exists()


def test_topk_targets_bound_the_full_kl_and_match_it_over_the_whole_vocabulary() -> None:
    gen = torch.Generator().manual_seed(2)
    student, teacher = torch.randn(2, 5, 9, generator=gen), 3 * torch.randn(2, 5, 9, generator=gen)
    ids = torch.randint(0, 9, (2, 5), generator=gen)
    mask = torch.ones(2, 5, dtype=torch.bool)
    full = float(kd_loss(student, teacher, ids, mask, temperature=2.0))

    def cached(k: int) -> float:
        logp = torch.log_softmax(teacher[:, :-1].reshape(-1, 9) / 2.0, dim=-1)
        top, idx = logp.topk(k, dim=-1)
        tail = torch.log1p(-top.exp().sum(-1).clamp(max=1 - 1e-6))
        return float(topk_kd_loss(student, ids, mask, top, idx, tail, temperature=2.0))

    assert cached(9) == pytest.approx(full, rel=1e-4)
    assert 0 < cached(2) < cached(5) <= full + 1e-6
