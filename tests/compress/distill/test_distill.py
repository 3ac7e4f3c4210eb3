"""Distillation end to end on the real default model (135M, 30 layers), with few steps and short windows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from edgekit.compress.distill import DistillConfig, DistillResult, distill, register
from edgekit.errors import InputError
from edgekit.models.lock import Lockfile

pytestmark = [pytest.mark.model, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
TRAIN = ROOT / "recipes" / "data" / "distill" / "train.txt"
DROP = 6


def small(teacher: Path, out: Path, **kw: object) -> DistillConfig:
    base: dict[str, object] = {
        "teacher": str(teacher),
        "drop_layers": DROP,
        "out": out,
        "data": TRAIN,
        "steps": 4,
        "seq_len": 32,
        "batch_size": 2,
        "lr": 1e-4,
        "checkpoint_every": 2,
        "importance_windows": 4,
        "threads": 1,
    }
    return DistillConfig(**{**base, **kw})  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def trained(
    default_hf: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[DistillConfig, DistillResult]:
    config = small(default_hf, tmp_path_factory.mktemp("distill") / "student")
    return config, distill(config)


def _weights(folder: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def test_student_has_fewer_layers_loads_in_transformers_and_learned(
    trained: tuple[DistillConfig, DistillResult],
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config, result = trained
    assert (result.layers_teacher, result.layers_student) == (30, 30 - DROP)
    assert len(result.dropped) == DROP and len(result.importance) == 30
    # the dropped blocks are the ones that changed their input least
    kept = [v for i, v in enumerate(result.importance) if i not in result.dropped]
    assert max(result.importance[i] for i in result.dropped) <= min(kept)
    assert result.params_student < result.params_teacher
    assert result.loss_after < result.loss_before  # KD on the probe batch went down

    model = AutoModelForCausalLM.from_pretrained(config.out)
    assert model.config.num_hidden_layers == 30 - DROP and len(model.model.layers) == 30 - DROP
    tok = AutoTokenizer.from_pretrained(config.out)
    ids = tok("The orchard on the east slope", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape[:2] == ids.shape and torch.isfinite(logits).all()
    generated = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert generated.shape[1] == ids.shape[1] + 3  # the KV cache works with the renumbered layers

    facts = json.loads((config.out / "edgekit-provenance.json").read_text())
    assert facts["step"] == "distill" and facts["source_sha256"] == result.teacher_sha256
    assert facts["settings"]["data_sha256"] == result.data_sha256
    assert facts["settings"]["dropped_layers"] == list(result.dropped)
    assert {"torch", "transformers", "edgekit"} <= set(facts["tools"])


def test_interrupted_run_resumes_to_the_same_weights(
    trained: tuple[DistillConfig, DistillResult], tmp_path: Path
) -> None:
    straight, _ = trained
    config = replace(straight, out=tmp_path / "student")

    def stop_after_step_3(stage: str, done: int, total: int | None) -> None:
        if stage == "distill" and done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        distill(config, progress=stop_after_step_3)
    assert not config.out.exists()  # no half-written model under the final name
    assert [p.name for p in tmp_path.iterdir()] == ["student.ckpt"]

    result = distill(replace(config, resume=True))
    assert result.resumed_from == 2 and result.steps == 4 and len(result.losses) == 2
    import torch

    mine, theirs = _weights(config.out), _weights(straight.out)
    assert mine.keys() == theirs.keys()
    for key, value in mine.items():
        assert torch.equal(value, theirs[key]), key  # type: ignore[arg-type]

    with pytest.raises(InputError, match="another run"):
        distill(replace(config, resume=True, lr=3e-4))


def test_student_is_recorded_in_models_lock(
    trained: tuple[DistillConfig, DistillResult], isolated: Path
) -> None:
    config, result = trained
    lock = isolated / "models.lock"
    entry = register(result, config, name="smollm2-distilled", lock_path=lock)
    assert entry.format == "hf"
    again = Lockfile.load(lock).get("smollm2-distilled")
    assert again.sha256 == entry.sha256 == result.out_sha256
    assert again.provenance and again.provenance["source_sha256"] == result.teacher_sha256
    assert again.provenance["step"] == "distill"


def test_sequence_mode_trains_on_the_local_generators_answers(
    default_hf: Path, default_model_path: Path, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Name a primary color.\nWhat is two plus two?\n", encoding="utf-8")
    config = small(
        default_hf,
        tmp_path / "student",
        mode="sequence",
        data=None,
        prompts=prompts,
        generator=str(default_model_path),
        answer_tokens=8,
        steps=2,
        seq_len=96,
    )
    result = distill(config)
    saved = json.loads((tmp_path / "student.ckpt" / "answers.json").read_text())
    assert saved["prompts"] == ["Name a primary color.", "What is two plus two?"]
    assert all(a.strip() for a in saved["answers"])
    assert result.layers_student == 30 - DROP
    assert result.loss_after < result.loss_before  # cross-entropy on the generator's answers went down


@pytest.fixture
def empty_data(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "empty.txt"
    path.write_text("  \n\n", encoding="utf-8")
    yield path


def test_bad_input_fails_before_training(default_hf: Path, tmp_path: Path, empty_data: Path) -> None:
    with pytest.raises(InputError, match="all 30 layers"):
        distill(small(default_hf, tmp_path / "a", drop_layers=30))
    with pytest.raises(InputError, match="empty"):
        distill(small(default_hf, tmp_path / "b", data=empty_data))
    with pytest.raises(InputError, match="no checkpoint"):
        distill(small(default_hf, tmp_path / "c", resume=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt"]


def test_teacher_by_lock_name_uses_the_dequantized_default(default_hf: Path) -> None:
    from edgekit.compress.distill.teacher import resolve_teacher
    from edgekit.config import Settings

    settings = Settings.from_env()
    entry = Lockfile.load(settings.lock_path).get("smollm2-135m-instruct")
    teacher = resolve_teacher("smollm2-135m-instruct", settings)
    assert teacher.folder == default_hf and teacher.sha256 == entry.sha256
    assert teacher.license == entry.license
    with pytest.raises(InputError, match="no such file"):
        resolve_teacher("missing/teacher", settings)


def test_cached_top_k_teacher_targets_train_the_student(default_hf: Path, tmp_path: Path) -> None:
    result = distill(small(default_hf, tmp_path / "student", teacher_top_k=32, steps=2))
    assert result.loss_after < result.loss_before
    facts = json.loads((tmp_path / "student" / "edgekit-provenance.json").read_text())
    assert facts["settings"]["teacher_top_k"] == 32
