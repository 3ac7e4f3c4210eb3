"""Plan and cache logic of the recipe pipeline, with fake passes in place of the real converters (the
real ones run in test_compress_cli.py). What is under test here is which steps run, which are skipped,
what lands where, and what models.lock records."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from edgekit.cli.errors import exit_code
from edgekit.compress.hf import DEQUANTIZE
from edgekit.compress.pipeline import SourceRef, plan, run, run_recipe, status
from edgekit.compress.step import Pass, StepContext, cached_step
from edgekit.config import Settings
from edgekit.errors import CheckFailedError, RecipeError
from edgekit.files import content_sha256
from edgekit.models.lock import Lockfile


class FakePass:
    """Writes a file (or folder) naming its step and its inputs' content, and remembers each call."""

    def __init__(self, calls: list[str], fail: bool = False) -> None:
        self.calls, self.fail = calls, fail

    def run(self, ctx: StepContext) -> None:
        self.calls.append(ctx.step.id)
        body = json.dumps(
            {
                "step": ctx.step.id,
                "config": dict(ctx.step.config),
                "inputs": {k: _read(v) for k, v in sorted(ctx.inputs.items())},
            },
            sort_keys=True,
        )
        if ctx.step.folder:
            (ctx.out / "model.onnx").write_text(body)
        else:
            ctx.out.write_text("GGUF" + body)  # the magic models.lock's format detection reads
        if self.fail:
            raise RuntimeError("pass failed")


class FakeEval:
    def __init__(self, calls: list[str], passed: bool) -> None:
        self.calls, self.passed = calls, passed

    def run(self, ctx: StepContext) -> None:
        self.calls.append(ctx.step.id)
        gate = {
            "name": "drift.all.max_mean_kld",
            "gate": "max_mean_kld",
            "value": 0.01 if self.passed else 0.4,
            "threshold": 0.1,
            "status": "pass" if self.passed else "fail",
            "margin": 0.09 if self.passed else -0.3,
        }
        ctx.out.write_text(json.dumps({"passed": self.passed, "gates": [gate]}))


def _read(path: Path) -> str:
    if path.is_dir():
        return ",".join(sorted(p.name for p in path.iterdir()))
    return path.read_text(errors="replace")[:200]


def fakes(calls: list[str], *, passed: bool = True, failing: str = "") -> Mapping[str, Pass]:
    kinds = ("dequantize", "distill", "convert", "imatrix", "gguf", "export", "onnx")
    passes: dict[str, Pass] = {k: FakePass(calls, fail=(k == failing)) for k in kinds}
    passes["eval"] = FakeEval(calls, passed)
    return passes


@pytest.fixture
def project(isolated: Path) -> Path:
    """A recipe over a (fake) Hugging Face folder with two GGUF targets, one calibrated, and an ONNX one."""
    root = isolated / "project"
    (root / "hf").mkdir(parents=True)
    (root / "hf" / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    (root / "cal.txt").write_text("calibration text " * 200)
    (root / "slice.txt").write_text("held-out text " * 50)
    (root / "suite.toml").write_text(
        'version = 1\n[slices.prose]\nfile = "slice.txt"\n[gates]\nmax_mean_kld = 0.1\n'
    )
    (root / "recipe.toml").write_text(RECIPE)
    return root


RECIPE = """version = 1
[source]
model = "hf"
[calibration]
data = "cal.txt"
[[targets]]
name = "m-q4"
format = "gguf"
type = "Q4_K_M"
[[targets]]
name = "m-q8"
format = "gguf"
type = "Q8_0"
calibrate = false
[[targets]]
name = "m-int4"
format = "onnx"
type = "int4"
[eval]
suite = "suite.toml"
targets = ["m-q4"]
[output]
dir = "out"
"""


def ran(result: object) -> list[str]:
    return [s.step.id for s in result.steps if s.status == "ran"]  # type: ignore[attr-defined]


def test_plan_orders_steps_and_shares_conversion_and_calibration(project: Path) -> None:
    p = plan(project / "recipe.toml")
    assert [s.id for s in p.steps] == [
        "convert",
        "imatrix",
        "target:m-q4",
        "target:m-q8",
        "export",
        "target:m-int4",
        "eval:m-q4",
    ]
    assert p.step("target:m-q4").inputs == {"model": "convert", "imatrix": "imatrix"}
    assert p.step("target:m-q8").inputs == {"model": "convert"}
    assert p.step("eval:m-q4").inputs == {"baseline": "convert", "candidate": "target:m-q4"}
    assert p.step("target:m-q4").out == project / "out" / "m-q4.gguf"
    assert len({s.key for s in p.steps}) == len(p.steps)
    assert plan(project / "recipe.toml").steps == p.steps  # keys are deterministic
    assert all(r.status == "run" for r in status(p))


def test_second_run_skips_everything_and_pins_each_target(project: Path, isolated: Path) -> None:
    calls: list[str] = []
    first = run(plan(project / "recipe.toml"), passes=fakes(calls))
    assert ran(first) == [s.step.id for s in first.steps] and calls == ran(first)
    assert first.passed and first.gates[0].target == "m-q4"
    lock = Lockfile.load(isolated / "models.lock")
    entry = lock.get("m-q4")
    assert entry.sha256 == first.steps[2].sha256
    assert entry.provenance is not None
    assert entry.provenance["recipe_sha256"] == first.plan.recipe.sha256
    assert entry.provenance["quant_type"] == "Q4_K_M"
    assert entry.provenance["calibration_sha256"] == first.plan.file_hashes[f"file:{project / 'cal.txt'}"]
    assert entry.provenance["imatrix_sha256"] == first.steps[1].sha256
    assert "calibration_sha256" not in (lock.get("m-q8").provenance or {})
    assert lock.get("m-int4").format == "onnx"

    calls.clear()
    again = run(plan(project / "recipe.toml"), passes=fakes(calls))
    assert calls == [] and all(s.status == "cached" for s in again.steps)
    assert [s.sha256 for s in again.steps] == [s.sha256 for s in first.steps]
    assert all(r.status == "cached" for r in status(again.plan))


def test_changed_calibration_reruns_only_what_reads_it(project: Path) -> None:
    calls: list[str] = []
    run(plan(project / "recipe.toml"), passes=fakes(calls))
    (project / "cal.txt").write_text("other calibration text " * 200)
    calls.clear()
    p = plan(project / "recipe.toml")
    assert [r.step.id for r in status(p) if r.status == "run"] == ["imatrix", "target:m-q4", "eval:m-q4"]
    result = run(p, passes=fakes(calls))
    assert calls == ["imatrix", "target:m-q4", "eval:m-q4"] == ran(result)


def test_changed_target_settings_rerun_that_target_only(project: Path) -> None:
    calls: list[str] = []
    run(plan(project / "recipe.toml"), passes=fakes(calls))
    recipe = project / "recipe.toml"
    recipe.write_text(recipe.read_text().replace('type = "Q8_0"', 'type = "Q6_K"'))
    calls.clear()
    run(plan(recipe), passes=fakes(calls))
    assert calls == ["target:m-q8"]


def test_missing_or_edited_output_is_rebuilt_and_force_runs_all(project: Path) -> None:
    calls: list[str] = []
    run(plan(project / "recipe.toml"), passes=fakes(calls))
    (project / "out" / "m-q8.gguf").unlink()
    (project / "out" / "m-q4.gguf").write_text("tampered")
    calls.clear()
    p = plan(project / "recipe.toml")
    reasons = {r.step.id: r.reason for r in status(p) if r.status == "run"}
    assert reasons["target:m-q8"] == "output missing"
    assert reasons["target:m-q4"] == "output changed since it was built"
    assert reasons["eval:m-q4"] == "target:m-q4 runs again"
    run(p, passes=fakes(calls))
    assert calls == ["target:m-q4", "target:m-q8", "eval:m-q4"]
    calls.clear()
    run(p, force=True, passes=fakes(calls))
    assert calls == [s.id for s in p.steps]


def test_a_failing_step_leaves_no_output_and_no_record(project: Path) -> None:
    calls: list[str] = []
    with pytest.raises(RuntimeError, match="pass failed"):
        run(plan(project / "recipe.toml"), passes=fakes(calls, failing="gguf"))
    out = project / "out"
    assert not (out / "m-q4.gguf").exists()
    assert [p.name for p in out.iterdir()] == []  # no temporary sibling left behind either
    calls.clear()
    run(plan(project / "recipe.toml"), passes=fakes(calls))
    assert calls[:2] == ["target:m-q4", "target:m-q8"]  # convert and imatrix were kept


def test_failing_gate_is_a_check_failure_after_the_targets_are_built(project: Path) -> None:
    calls: list[str] = []
    result = run(plan(project / "recipe.toml"), passes=fakes(calls, passed=False))
    assert not result.passed
    assert (project / "out" / "m-q4.gguf").is_file()
    (failure,) = result.gates[0].failures
    assert failure["name"] == "drift.all.max_mean_kld"
    with pytest.raises(CheckFailedError, match=r"m-q4: drift\.all\.max_mean_kld 0\.4 \(limit 0\.1\)") as e:
        from edgekit.compress.pipeline import gate_error

        raise gate_error(result)
    assert exit_code(e.value) == 1


def test_compress_checks_the_gate(project: Path) -> None:
    calls: list[str] = []
    with pytest.raises(CheckFailedError):
        run_recipe(project / "recipe.toml", passes=fakes(calls, passed=False))
    assert not run_recipe(project / "recipe.toml", check=False, passes=fakes(calls, passed=False)).passed


def test_calibration_overlapping_the_eval_text_is_a_plan_warning(project: Path) -> None:
    assert plan(project / "recipe.toml").warnings == ()
    (project / "cal.txt").write_text((project / "slice.txt").read_text() * 4 + "calibration text " * 100)
    (warning,) = plan(project / "recipe.toml").warnings
    assert "shares" in warning and "evaluation text" in warning


def test_too_little_calibration_text_fails_the_plan(project: Path) -> None:
    from edgekit.compress.calibration import CalibrationError

    (project / "cal.txt").write_text("too short")
    with pytest.raises(CalibrationError, match="at least"):
        plan(project / "recipe.toml")


@pytest.mark.model  # a real model file as the baseline path
def test_eval_baseline_can_be_a_lock_name_or_a_file(project: Path, default_model_path: Path) -> None:
    from edgekit.errors import RecipeError

    recipe = project / "recipe.toml"
    text = recipe.read_text()
    recipe.write_text(
        text.replace('suite = "suite.toml"', 'suite = "suite.toml"\nbaseline = "smollm2-135m-instruct"')
    )
    p = plan(recipe)
    assert p.step("eval:m-q4").inputs["baseline"] == "lock:smollm2-135m-instruct"
    assert (
        p.file_hashes["lock:smollm2-135m-instruct"]
        == Lockfile.load(project.parent / "models.lock").get().sha256
    )
    (project / "base.gguf").symlink_to(default_model_path)
    recipe.write_text(text.replace('suite = "suite.toml"', 'suite = "suite.toml"\nbaseline = "base.gguf"'))
    assert plan(recipe).step("eval:m-q4").inputs["baseline"] == f"file:{default_model_path.resolve()}"
    recipe.write_text(
        text.replace('suite = "suite.toml"', 'suite = "suite.toml"\nbaseline = "no-such-model"')
    )
    with pytest.raises(
        RecipeError, match=r"eval baseline 'no-such-model' is not a file or a models\.lock name"
    ):
        plan(recipe)


def test_unquantized_baseline_is_each_targets_own_float_build(project: Path) -> None:
    recipe = project / "recipe.toml"
    recipe.write_text(
        recipe.read_text().replace(
            'targets = ["m-q4"]', 'targets = ["m-q4", "m-int4"]\nbaseline = "unquantized"'
        )
    )
    p = plan(recipe)
    assert p.step("eval:m-q4").inputs == {"baseline": "convert", "candidate": "target:m-q4"}
    assert p.step("eval:m-int4").inputs == {"baseline": "export", "candidate": "target:m-int4"}


def test_every_step_kind_loads_its_pass_from_beside_its_function() -> None:
    from edgekit.compress.pipeline import PASSES, load_pass

    for kind, target in PASSES.items():
        impl = load_pass(kind)
        assert callable(impl.run) and type(impl).__module__ == target.partition(":")[0], kind


def _onnx_recipe(root: Path, model: str, *types: str) -> Path:
    targets = "".join(f'[[targets]]\nname = "t-{t}"\nformat = "onnx"\ntype = "{t}"\n' for t in types)
    path = root / "onnx.toml"
    path.write_text(f'version = 1\n[source]\nmodel = "{model}"\n{targets}[output]\ndir = "out"\n')
    return path


def test_an_fp32_onnx_target_is_the_export_the_quantized_targets_start_from(project: Path) -> None:
    p = plan(_onnx_recipe(project, "hf", "fp32", "int4"))
    assert [(s.id, s.kind) for s in p.steps] == [("target:t-fp32", "export"), ("target:t-int4", "onnx")]
    assert p.step("target:t-int4").inputs == {"model": "target:t-fp32"}
    calls: list[str] = []
    run(p, passes=fakes(calls))
    prov = Lockfile.load(project.parent / "models.lock").get("t-fp32").provenance or {}
    assert prov["step"] == "export" and prov["quant_type"] == "fp32"


def test_an_onnx_export_source_is_only_quantized(project: Path) -> None:
    export = project / "export"
    export.mkdir()
    (export / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    (export / "model.onnx").write_bytes(b"\x08\x07")
    p = plan(_onnx_recipe(project, "export", "int8-dynamic"))
    assert [(s.id, s.kind, dict(s.inputs)) for s in p.steps] == [
        ("target:t-int8-dynamic", "onnx", {"model": "source"})
    ]
    with pytest.raises(RecipeError, match="ONNX export already"):
        plan(_onnx_recipe(project, "export", "fp32"))
    with pytest.raises(RecipeError, match="ONNX targets only"):
        plan(project / "recipe.toml", source=SourceRef("export", "onnx", "ab" * 32))


def test_an_encoder_source_is_built_by_the_encoder_passes(project: Path) -> None:
    enc = project / "enc"
    enc.mkdir()
    (enc / "config.json").write_text('{"architectures": ["BertModel"], "model_type": "bert"}')
    p = plan(_onnx_recipe(project, "enc", "fp32", "int8"))
    assert [(s.id, s.kind) for s in p.steps] == [("target:t-fp32", "encoder"), ("target:t-int8", "encoder")]
    (enc / "model.safetensors").write_bytes(b"{}")  # BERT with safetensors: the torch-free int8 build
    p = plan(_onnx_recipe(project, "enc", "int8"))
    assert [(s.id, s.kind) for s in p.steps] == [("target:t-int8", "bert-encoder")]
    with pytest.raises(RecipeError, match="causal LMs only"):
        plan(_onnx_recipe(project, "enc", "int4"))


def test_a_gguf_dequantized_outside_a_recipe_is_the_one_its_dequantize_step_finds(project: Path) -> None:
    """One cache: ``hf.dequantized`` (quantize's ONNX path, distillation teachers) and a recipe's dequantize
    step share key, folder and record, so the second one finds the first one's folder."""
    gguf = project / "m.gguf"
    gguf.write_bytes(b"GGUF not really")
    sha = content_sha256(gguf)
    calls: list[str] = []
    settings = Settings.from_env()
    once = {"model": (gguf, sha)}
    folder = cached_step(
        "dequantize", FakePass(calls), once, DEQUANTIZE, "hf", folder=True, settings=settings
    )
    again = cached_step("dequantize", FakePass(calls), once, DEQUANTIZE, "hf", folder=True, settings=settings)
    assert again == folder and calls == ["dequantize"]
    p = plan(_onnx_recipe(project, "m.gguf", "int4"), source=SourceRef("m.gguf", "gguf", sha, path=gguf))
    assert p.step("dequantize").out == folder
    result = run(p, passes=fakes(calls))
    assert [(s.step.id, s.status) for s in result.steps] == [
        ("dequantize", "cached"),
        ("export", "ran"),
        ("target:t-int4", "ran"),
    ]
