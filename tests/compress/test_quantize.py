"""edgekit.quantize and `edgekit quantize` on the real default model: HF folder -> F16 -> Q4_K_M / Q8_0."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import gguf
import pytest

import edgekit
from edgekit.cli.app import main
from edgekit.compress.passes.gguf_quantize import TensorOverrides, quantize_gguf
from edgekit.compress.quantize import QuantizeResult, quantize
from edgekit.errors import DiskFullError, InputError
from edgekit.files import file_sha256
from edgekit.models.lock import Lockfile

pytestmark = [pytest.mark.model]


def _meta(path: Path) -> dict[str, object]:
    reader = gguf.GGUFReader(path)
    return {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}


def _tensor_types(path: Path) -> dict[str, str]:
    return {t.name: t.tensor_type.name for t in gguf.GGUFReader(path).tensors}


def _answer(path: Path) -> str:
    with edgekit.load(str(path), n_ctx=512, threads=1) as model:
        reply = model.chat("What is the capital of France?", temperature=0, max_tokens=8)
    assert reply.usage.completion_tokens > 0
    return reply.text


@pytest.fixture(scope="module")
def q4_k_m(default_hf: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[QuantizeResult, Path]:
    """The HF folder quantized through the public API, with a per-tensor rule, into a private lock."""
    root = tmp_path_factory.mktemp("q4km")
    lock = root / "models.lock"
    lock.write_text((Path(__file__).resolve().parents[2] / "models.lock").read_text())
    old = os.environ.get("EDGEKIT_CACHE_DIR")
    os.environ["EDGEKIT_CACHE_DIR"] = str(root / "cache")  # its own conversion cache: converts for real
    try:
        seen: list[str] = []
        result = quantize(
            default_hf,
            "q4_k_m",
            out=root / "model-q4km.gguf",
            overrides=TensorOverrides.parse(rules=["attn_v=Q8_0"]),
            name="smol-q4km",
            lock_path=lock,
            progress=lambda stage, done, total: seen.append(stage),
        )
    finally:
        if old is None:
            os.environ.pop("EDGEKIT_CACHE_DIR", None)
        else:
            os.environ["EDGEKIT_CACHE_DIR"] = old
    assert {"convert", "tokenizer check", "quantize"} <= set(seen)
    return result, lock


@pytest.mark.slow
def test_hf_folder_to_q4_k_m_loads_and_answers(q4_k_m: tuple[QuantizeResult, Path], default_hf: Path) -> None:
    result, lock = q4_k_m
    assert result.path.name == "model-q4km.gguf" and result.warnings == ()
    types = _tensor_types(result.path)
    assert types["blk.0.attn_v.weight"] == "Q8_0"  # the rule
    # 576 columns are not a multiple of the K-quants' 256-wide blocks: llama.cpp falls back to Q5_0/Q4_0/...
    assert {types["blk.0.attn_q.weight"], types["blk.0.ffn_gate.weight"]} <= {"Q4_K", "Q5_K", "Q5_0", "Q4_0"}
    assert result.path.stat().st_size < 0.5 * 270_000_000  # well under the F16 size
    assert _answer(result.path).strip()
    entry = Lockfile.load(lock).get("smol-q4km")
    assert entry.sha256 == file_sha256(result.path) and entry.format == "gguf"
    prov = entry.provenance or {}
    assert prov["quant_type"] == "Q4_K_M" and prov["step"] == "quantize"
    assert prov["source_sha256"] == result.provenance.source_sha256
    assert prov["settings"]["tensor_types"] == ["attn_v=Q8_0"]
    assert "llama-cpp-python" in prov["tools"]


@pytest.mark.slow
def test_gguf_metadata_carries_the_provenance(q4_k_m: tuple[QuantizeResult, Path]) -> None:
    result, _ = q4_k_m
    meta = _meta(result.path)
    assert meta["edgekit.provenance.quant_type"] == "Q4_K_M"
    assert meta["edgekit.provenance.source_sha256"] == result.provenance.source_sha256
    assert meta["edgekit.provenance.tools.llama-cpp-python"] == "0.3.36"
    assert meta["general.file_type"] == 15  # LLAMA_FTYPE_MOSTLY_Q4_K_M
    assert meta["tokenizer.ggml.model"] == "gpt2"


@pytest.mark.slow
def test_cli_q8_0_from_the_f16_gguf(
    default_f16_gguf: Path, isolated: Path, capsys: pytest.CaptureFixture
) -> None:
    out = isolated / "smol-q8.gguf"
    with pytest.raises(SystemExit) as e:
        main(
            [
                *("quantize", str(default_f16_gguf), "--to", "Q8_0", "--out", str(out)),
                *("--name", "smol-q8", "--embedding-type", "F16"),
            ]
        )
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert _tensor_types(out)["token_embd.weight"] == "F16"
    assert _tensor_types(out)["blk.0.attn_q.weight"] == "Q8_0"
    entry = Lockfile.load(isolated / "models.lock").get("smol-q8")  # the lock edgekit uses (EDGEKIT_LOCK)
    assert (entry.provenance or {})["settings"]["embedding_type"] == "F16"
    with edgekit.load("smol-q8", n_ctx=512, threads=1) as model:  # by its new lock name
        assert model.chat("Say hi.", temperature=0, max_tokens=4).usage.completion_tokens > 0


@pytest.mark.slow
def test_requantize_needs_the_flag_and_warns(default_model_path: Path, isolated: Path) -> None:
    tmp_path, lock = isolated / "out", isolated / "models.lock"
    with pytest.raises(InputError, match="already quantized") as e:
        quantize(default_model_path, "Q4_0", out=tmp_path / "q.gguf", lock_path=lock)
    assert "allow_requantize=True" in e.value.hint  # the API's words; the CLI says --allow-requantize
    assert not (tmp_path / "q.gguf").exists()
    result = quantize(
        default_model_path, "Q4_0", out=tmp_path / "q.gguf", lock_path=lock, allow_requantize=True, name="rq"
    )
    assert len(result.warnings) == 1 and "requantizing" in result.warnings[0]
    assert _meta(result.path)["general.file_type"] == 2  # Q4_0
    entry = Lockfile.load(lock).get("rq")
    assert (entry.provenance or {})["settings"]["allow_requantize"] is True
    assert entry.license == "Apache-2.0"  # inherited from the source GGUF's general.license
    assert edgekit.model_info("rq")["verified"]  # hashed as it was written: no second hash needed


@pytest.mark.parametrize("qtype", ["IQ4_XS", "IQ4_NL", "Q2_K", "iq2_xxs"])
def test_imatrix_types_without_calibration_ask_for_it(qtype: str, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="importance matrix") as e:
        quantize("smollm2-135m-instruct", qtype, out=tmp_path / "x.gguf", lock_path=tmp_path / "models.lock")
    assert "calibration=DATA" in e.value.hint
    assert list(tmp_path.iterdir()) == []


def test_unknown_types_list_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown quantization type 'Q9_K'") as e:
        quantize("smollm2-135m-instruct", "Q9_K", out=tmp_path / "x.gguf")
    for t in (
        "Q8_0",
        "Q6_K",
        "Q5_K_M",
        "Q5_0",
        "Q4_K_M",
        "Q4_K_S",
        "Q4_0",
        "Q3_K_M",
        "Q2_K",
        "IQ4_XS",
        "IQ4_NL",
    ):
        assert t in e.value.hint
    with pytest.raises(InputError, match="unknown tensor type 'Q4_K_M'"):
        TensorOverrides.parse(output="Q4_K_M")
    with pytest.raises(InputError, match="not PATTERN=TYPE"):
        TensorOverrides.parse(rules=["attn_v"])
    with pytest.raises(InputError, match="not a valid regex"):
        TensorOverrides.parse(rules=["blk.(=Q8_0"])
    with pytest.raises(InputError, match="unknown ONNX quantization type"):
        quantize("smollm2-135m-instruct", "Q4_K_M", format="onnx")
    with pytest.raises(InputError, match="are GGUF options"):
        quantize("smollm2-135m-instruct", "int4", format="onnx", overrides=TensorOverrides(output="Q8_0"))


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        main(["quantize", "smollm2-135m-instruct", "--to", "Q9"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown quantization type 'Q9'") and "\n" not in err
    with pytest.raises(SystemExit) as e:
        main(["quantize", str(tmp_path / "nothing-here"), "--to", "Q8_0"])
    assert e.value.code == 2


def _in_child(code: str, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )


QUANTIZE = """
import sys
from pathlib import Path
from edgekit.compress.passes.gguf_quantize import quantize_gguf
try:
    quantize_gguf(Path(sys.argv[1]), Path(sys.argv[2]), "Q8_0", threads=1)
except Exception as e:
    print(type(e).__name__, e)
"""


@pytest.mark.slow
def test_out_of_space_mid_write_leaves_nothing(default_f16_gguf: Path, tmp_path: Path) -> None:
    """A file-size limit makes the quantizer's write fail part-way, as a full disk would."""
    out = tmp_path / "q8.gguf"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000_000, 20_000_000))

    proc = _in_child(
        QUANTIZE.replace("sys.argv[1]", repr(str(default_f16_gguf))).replace("sys.argv[2]", repr(str(out))),
        preexec_fn=limit,
    )
    stdout, _ = proc.communicate(timeout=300)
    assert stdout.startswith(DiskFullError.__name__), stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_interrupt_mid_write_leaves_nothing(default_f16_gguf: Path, tmp_path: Path) -> None:
    out = tmp_path / "q8.gguf"
    code = QUANTIZE.replace("sys.argv[1]", repr(str(default_f16_gguf))).replace("sys.argv[2]", repr(str(out)))
    proc = _in_child(code)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the quantizer has written part of its output
        partial = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp") and p.stat().st_size > 1_000_000]
        if partial or proc.poll() is not None:
            break
        time.sleep(0.02)
    assert partial, "the quantizer finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert list(tmp_path.iterdir()) == []


def test_write_seam_enospc_keeps_the_old_output(default_f16_gguf: Path, tmp_path: Path) -> None:
    """ENOSPC raised where the output is written: the previous file under the final name survives."""
    out = tmp_path / "q.gguf"
    out.write_bytes(b"previous build")

    def full_disk(job: dict[str, object], *args: object) -> None:
        Path(str(job["out"])).write_bytes(b"\0" * 1000)
        raise OSError(28, "No space left on device")

    with pytest.raises(DiskFullError):
        quantize_gguf(default_f16_gguf, out, "Q8_0", runner=full_disk)
    assert out.read_bytes() == b"previous build"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.gguf"]


CALIBRATION = "\n\n".join(
    f"Note {i}: the {w} report lists {i * 7} items, each checked twice before it ships. "
    f'{{"id": {i}, "status": "ok", "tags": ["{w}", "batch-{i % 3}"]}}'
    for i, w in enumerate(["weekly", "daily", "quarterly", "annual", "monthly"] * 6)
)


@pytest.mark.slow
def test_calibration_and_imatrix_file_reach_the_quantizer(
    default_f16_gguf: Path, isolated: Path, capsys: pytest.CaptureFixture
) -> None:
    from edgekit.compress.calibration import load_calibration

    data = isolated / "cal.txt"
    data.write_text(CALIBRATION, encoding="utf-8")
    # Q4_K_M rather than an IQ type: the same importance-matrix path, a tenth of the quantizing time here.
    result = quantize(default_f16_gguf, "Q4_K_M", calibration=data, out=isolated / "q4.gguf", name="smol-cal")
    prov = Lockfile.load(isolated / "models.lock").get("smol-cal").provenance or {}
    assert prov["calibration_sha256"] == load_calibration(data).sha256
    assert len(prov["imatrix_sha256"]) == 64
    assert _meta(result.path)["edgekit.provenance.imatrix_sha256"] == prov["imatrix_sha256"]
    assert _answer(result.path).strip()

    # A user's importance matrix file (llama.cpp's GGUF imatrix format) through the CLI: uniform weights.
    import numpy as np

    from edgekit.compress.imatrix import Imatrix, write_imatrix

    cols = {t.name: int(t.shape[0]) for t in gguf.GGUFReader(default_f16_gguf).tensors if len(t.shape) == 2}
    im = Imatrix(
        values={n: np.ones(c, dtype=np.float32) for n, c in cols.items() if n.startswith("blk.")},
        counts={n: np.ones(1, dtype=np.float32) for n in cols if n.startswith("blk.")},
        chunks=1,
    )
    path = write_imatrix(im, isolated / "smol.imatrix.gguf")
    with pytest.raises(SystemExit) as e:
        main(["quantize", str(default_f16_gguf), "--to", "q4_0", "--imatrix", str(path), "--name", "smol-im"])
    assert e.value.code == 0
    out = Path(capsys.readouterr().out.strip())
    try:
        assert out.parent == Path.cwd() and out.name.endswith("-Q4_0.gguf")
        prov = Lockfile.load(isolated / "models.lock").get("smol-im").provenance or {}
        assert prov["imatrix_sha256"] == file_sha256(path) and "calibration_sha256" not in prov
    finally:
        out.unlink()


@pytest.mark.slow
def test_onnx_format_dispatches_to_the_encoder_export(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InputError, match="causal LMs only"):
        quantize("all-minilm-l6-v2", "int4", format="onnx", out=isolated / "x")
    result = quantize("all-minilm-l6-v2", "int8", format="onnx", out=isolated / "minilm-int8")
    assert (result.path / "model.onnx").is_file() and result.path == (isolated / "minilm-int8").resolve()
    entry = Lockfile.load(isolated / "models.lock").get("all-minilm-l6-v2-int8")
    assert (entry.format, entry.role) == ("onnx", "encoder") and entry == result.entry
    assert result.provenance.quant_type == "int8" and result.provenance.source == "all-minilm-l6-v2"
    assert (
        result.provenance.source_sha256
        == Lockfile.load(isolated / "models.lock").get("all-minilm-l6-v2").sha256
    )
    # An editable install run from a project folder: the entry goes to ./models.lock there (never into the
    # checkout's tracked file), and quantize returns it from there.
    from edgekit import config

    monkeypatch.setattr(config, "shipped_lock_path", lambda: isolated / "absent" / "models.lock")
    monkeypatch.delenv("EDGEKIT_LOCK")
    checkout, project = config.package_lock_path(), isolated / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    before = checkout.read_text()
    here = quantize("all-minilm-l6-v2", "int8", format="onnx", out=project / "m", name="minilm-here")
    assert checkout.read_text() == before
    assert here.entry == Lockfile.load(project / "models.lock").get("minilm-here")
