"""Recipe files: what parses, and the one-line errors (file:line: key) for what does not. No models."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.compress.pipeline import plan
from edgekit.compress.recipe import from_quantize_args, load_recipe
from edgekit.errors import RecipeError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "recipes" / "compress").glob("*.toml"))

BASE = """version = 1
[source]
model = "smollm2-135m-instruct"
allow_requantize = true

[[targets]]
name = "small-q8"
format = "gguf"
type = "Q8_0"
"""


def write(tmp_path: Path, text: str, name: str = "r.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_full_recipe_parses_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cal.txt").write_text("calibration text\n")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "suite.toml").write_text("")
    recipe = write(
        tmp_path,
        """version = 1
description = "two targets from one source and one calibration set"
[source]
model = "model"
[calibration]
data = "data/cal.txt"
[[targets]]
name = "m-q4"
format = "gguf"
type = "q4_k_m"
[targets.overrides]
output = "q8_0"
tensors = { "blk\\\\.0\\\\..*" = "Q6_K" }
[[targets]]
name = "m-int4"
format = "onnx"
type = "int4"
block_size = 64
[eval]
suite = "suite.toml"
targets = ["m-q4"]
[output]
dir = "out"
""",
    )
    r = load_recipe(recipe)
    assert r.source == str(tmp_path / "model")
    assert r.calibration is not None and r.calibration.data == tmp_path / "data" / "cal.txt"
    q4, int4 = r.targets
    assert (q4.type, q4.calibrate, q4.out) == ("Q4_K_M", True, tmp_path / "out" / "m-q4.gguf")
    assert q4.overrides.output == "Q8_0" and q4.overrides.tensors == (("blk\\.0\\..*", "Q6_K"),)
    assert (int4.type, int4.calibrate, int4.block_size, int4.out) == (
        "int4",
        False,
        64,
        tmp_path / "out" / "m-int4",
    )
    assert r.eval is not None and r.eval.suite == tmp_path / "suite.toml" and r.eval.targets == ("m-q4",)
    assert len(r.sha256) == 64


def test_outputs_default_to_build_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    r = load_recipe(write(tmp_path, BASE, "mine.toml"))
    assert r.targets[0].out == tmp_path / "build" / "mine" / "small-q8.gguf"


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (
            BASE.replace("allow_requantize", "allow_requantise"),
            [":4: source.allow_requantise", "allow_requantize"],
        ),
        (
            BASE.replace('type = "Q8_0"', 'type = "Q8_0"\nblocksize = 32'),
            [":10: targets.0.blocksize", "block_size"],
        ),
        (BASE + "[evals]\nsuite = 'x.toml'\n", ["evals: unknown key", "Did you mean 'eval'?"]),
    ],
)
def test_unknown_keys_name_file_line_and_suggestion(tmp_path: Path, text: str, needles: list[str]) -> None:
    with pytest.raises(RecipeError) as e:
        load_recipe(write(tmp_path, text))
    shown = f"{e.value.message} {e.value.hint}"
    assert str(tmp_path / "r.toml") in shown
    for needle in needles:
        assert needle in shown


def test_missing_source_file(tmp_path: Path) -> None:
    text = BASE.replace('model = "smollm2-135m-instruct"', 'model = "../weights/model.gguf"')
    with pytest.raises(RecipeError, match=r"r\.toml:3: source\.model: .*model\.gguf does not exist"):
        load_recipe(write(tmp_path, text))


def test_missing_source_table(tmp_path: Path) -> None:
    text = BASE.split("[[targets]]")[1]
    with pytest.raises(RecipeError, match="source: Field required"):
        load_recipe(write(tmp_path, "version = 1\n[[targets]]" + text))


def test_source_not_in_the_lock_fails_the_plan(tmp_path: Path) -> None:
    text = BASE.replace('model = "smollm2-135m-instruct"', 'model = "no-such-model"')
    with pytest.raises(Exception, match=r"no-such-model.*not in models\.lock"):
        plan(write(tmp_path, text))


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ('type = "Q8_0"', 'type = "Q9_9"', "unknown gguf type 'Q9_9'"),
        ('format = "gguf"', 'format = "tflite"', "targets.0.format: Input should be 'gguf' or 'onnx'"),
        ('format = "gguf"\ntype = "Q8_0"', 'format = "onnx"\ntype = "int3"', "unknown onnx type 'int3'"),
        ('type = "Q8_0"', 'type = "IQ4_XS"', "needs calibration data"),
        ('type = "Q8_0"', 'type = "Q8_0"\noverrides = { output = "Q7" }', "unknown tensor type 'Q7'"),
        ('name = "small-q8"', 'name = "bad name"', "bad name 'bad name'"),
    ],
)
def test_bad_targets(tmp_path: Path, old: str, new: str, needle: str) -> None:
    with pytest.raises(RecipeError) as e:
        load_recipe(write(tmp_path, BASE.replace(old, new)))
    assert needle in f"{e.value.message} {e.value.hint}"
    assert f"{tmp_path / 'r.toml'}:" in e.value.message


def test_eval_suite_missing(tmp_path: Path) -> None:
    with pytest.raises(
        RecipeError, match=r"r\.toml:12: eval\.suite: suite file .*nowhere\.toml does not exist"
    ):
        load_recipe(write(tmp_path, BASE + '\n[eval]\nsuite = "nowhere.toml"\n'))


def test_eval_names_an_unknown_target(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text("")
    with pytest.raises(RecipeError, match="no target named 'small-q4'"):
        load_recipe(write(tmp_path, BASE + '\n[eval]\nsuite = "s.toml"\ntargets = ["small-q4"]\n'))


def test_a_broken_suite_fails_the_plan_before_anything_is_built(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(
        "version = 1\n[slices.prose]\nfile = 'p.txt'\n[gates]\nmax_mean_kd = 1\n"
    )
    (tmp_path / "p.txt").write_text("text")
    with pytest.raises(Exception, match=r"s\.toml:5: gates\.max_mean_kd: unknown key"):
        plan(write(tmp_path, BASE + '\n[eval]\nsuite = "s.toml"\n'))


def test_a_quantized_gguf_source_needs_allow_requantize(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="compounds the rounding error"):
        plan(write(tmp_path, BASE.replace("allow_requantize = true", "")))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_recipes_parse_and_plan(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "cache"))  # a dry run: every step is due
    p = plan(path)
    assert p.steps and all(s.key and s.out for s in p.steps)
    targets = {s.target.name for s in p.steps if s.target is not None}
    assert targets == {t.name for t in p.recipe.targets}
    assert [s.id for s in p.steps if s.kind == "eval"] == [
        f"eval:{n}" for n in (p.recipe.eval.targets if p.recipe.eval else ())
    ]


def test_shipped_recipes_cover_the_issue() -> None:
    built = {(t.format, t.type) for path in SHIPPED for t in load_recipe(path).targets}
    assert {("gguf", "Q8_0"), ("gguf", "Q4_K_M"), ("onnx", "int8-dynamic"), ("onnx", "int4")} <= built
    assert any(load_recipe(p).distill for p in SHIPPED)
    q4 = load_recipe(ROOT / "recipes" / "compress" / "default-q4_k_m.toml")
    assert q4.calibration is not None and q4.targets[0].calibrate


def test_quantize_options_round_trip_through_a_recipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cal").mkdir()
    (tmp_path / "recipes").mkdir()
    text = from_quantize_args(
        "smollm2-135m-instruct",
        "Q4_K_M",
        recipe_dir=tmp_path / "recipes",
        calibration=Path("cal"),
        output_type="Q8_0",
        tensor_types=[("ffn_down", "Q6_K")],
        out=Path("models/q4.gguf"),
        name="mine-q4",
        allow_requantize=True,
    )
    r = load_recipe(write(tmp_path / "recipes", text))
    (t,) = r.targets
    assert (r.source, r.allow_requantize) == ("smollm2-135m-instruct", True)
    assert (t.name, t.type, t.calibrate) == ("mine-q4", "Q4_K_M", True)
    assert t.out == tmp_path / "models" / "q4.gguf"  # where quantize --out would have written it
    assert t.overrides.output == "Q8_0" and dict(t.overrides.tensors) == {"ffn_down": "Q6_K"}
    assert r.calibration is not None and r.calibration.data == tmp_path / "cal"


def test_emitted_recipe_names_the_output_like_quantize(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = from_quantize_args("smollm2-135m-instruct", "Q8_0", recipe_dir=tmp_path, allow_requantize=True)
    (t,) = load_recipe(write(tmp_path, text)).targets
    assert (t.name, t.out) == ("smollm2-135m-instruct-q8-0", tmp_path / "smollm2-135m-instruct-Q8_0.gguf")


def test_shipped_recipes_load_by_name(tmp_path: Path) -> None:
    assert load_recipe("default-q8_0").path == ROOT / "recipes" / "compress" / "default-q8_0.toml"
    with pytest.raises(RecipeError, match="no shipped recipe by that name") as e:
        load_recipe("default-q9")
    assert "default-q8_0" in e.value.hint


def test_quantize_emit_recipe_writes_a_recipe_compress_runs(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "EDGEKIT_CACHE_DIR": str(tmp_path / "cache")}
        return subprocess.run(
            [sys.executable, "-m", "edgekit", *args], capture_output=True, text=True, cwd=tmp_path, env=env
        )

    made = cli(
        "quantize", "smollm2-135m-instruct", "--to", "q4_k_m", "--allow-requantize", "--output-type", "q8_0",
        "--tensor-type", "ffn_down=Q6_K", "--out", "models/small.gguf", "--emit-recipe", "recipes/small.toml",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "edgekit compress recipes/small.toml" in made.stderr
    assert not (tmp_path / "models").exists()  # emitting builds nothing
    dry = cli("compress", "recipes/small.toml", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"gguf Q4_K_M -> {tmp_path / 'models' / 'small.gguf'}" in dry.stdout
    assert "1 of 1 steps would run" in dry.stdout
    bad = cli("quantize", "smollm2-135m-instruct", "--to", "Q9_9", "--emit-recipe", "bad.toml")
    assert bad.returncode == 2 and "unknown quantization type" in bad.stderr
    assert not (tmp_path / "bad.toml").exists()


# --- a recipe writes only into its output folder ------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        ('out = "../escaped.gguf"', ["targets.0.out", "leaves the output folder"]),
        ('out = "/tmp/elsewhere.gguf"', ["targets.0.out", "leaves the output folder"]),
        ('out = "."', ["targets.0.out", "leaves the output folder"]),
        ('out = "../r.toml"', ["targets.0.out", "leaves the output folder"]),
    ],
)
def test_a_target_cannot_write_outside_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str, needles: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    recipe = write(tmp_path, BASE + extra + '\n[output]\ndir = "out"\n')
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe)
    assert all(n in info.value.message for n in needles), info.value.message


def test_the_output_folder_stays_under_the_recipe_or_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "recipes").mkdir()
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    outside = write(tmp_path / "recipes", BASE + '[output]\ndir = "/etc"\n')
    with pytest.raises(RecipeError, match=r"output\.dir: /etc lies outside"):
        load_recipe(outside)
    # The caller may choose the folder explicitly; and both allowed places work.
    assert (
        load_recipe(outside, out_dir=tmp_path / "chosen").targets[0].out
        == tmp_path / "chosen" / "small-q8.gguf"
    )
    beside = write(tmp_path / "recipes", BASE + '[output]\ndir = "../work/out"\n', "beside.toml")
    assert load_recipe(beside).targets[0].out == tmp_path / "work" / "out" / "small-q8.gguf"


def test_no_target_writes_over_an_input_or_another_target(tmp_path: Path) -> None:
    (tmp_path / "cal.txt").write_text("calibration text\n")
    over_input = BASE.replace('type = "Q8_0"', 'type = "Q8_0"\nout = "cal.txt"') + (
        '[calibration]\ndata = "cal.txt"\n[output]\ndir = "."\n'
    )
    with pytest.raises(
        RecipeError, match=r"targets\.0\.out: target 'small-q8' would write .*cal\.txt, over its input"
    ):
        load_recipe(write(tmp_path, over_input))
    over_recipe = BASE.replace('type = "Q8_0"', 'type = "Q8_0"\nout = "r.toml"') + '[output]\ndir = "."\n'
    with pytest.raises(RecipeError, match="over its input"):
        load_recipe(write(tmp_path, over_recipe))
    twice = BASE + '[[targets]]\nname = "again"\nformat = "gguf"\ntype = "Q4_0"\nout = "small-q8.gguf"\n'
    with pytest.raises(RecipeError, match=r"targets\.1\.out: targets 'small-q8' and 'again' both write"):
        load_recipe(write(tmp_path, twice + '[output]\ndir = "out"\n'))


def test_a_source_file_must_be_a_gguf(tmp_path: Path) -> None:
    (tmp_path / "notes.gguf").write_text("root:x:0:0:root:/root:/bin/bash\n")
    for model in ("notes.gguf", "/etc/passwd"):
        text = BASE.replace('model = "smollm2-135m-instruct"', f'model = "{model}"')
        with pytest.raises(RecipeError, match=r"source\.model: .* is not a GGUF file"):
            load_recipe(write(tmp_path, text))
    (tmp_path / "folder").mkdir()
    text = BASE.replace('model = "smollm2-135m-instruct"', 'model = "folder"')
    with pytest.raises(RecipeError, match="not a Hugging Face model folder"):
        load_recipe(write(tmp_path, text))
