"""The sentence encoder and its built model: a models.lock ``build`` entry is made by the store from pinned
inputs, verified against its pinned folder hash, refused when corrupted, and loaded by the one Encoder class
with the prefix and token cap its edgekit-encoder.json sets. Unit tests use a tiny synthetic e5 model
(tests/compress/e5_fixture.py); the model tests use the real pinned wheels and never load torch."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit.config import Settings
from edgekit.errors import HashMismatchError, InputError, ModelFileError
from edgekit.files import content_size, tree_sha256
from edgekit.models.store import ModelStore
from edgekit.runtime.encoder import MULTILINGUAL_MODEL, Encoder, encoder_dir, shared_encoder
from tests.compress import e5_fixture as fx

ROOT = Path(__file__).resolve().parents[2]
INPUTS = ("multilingual-e5-small-q4", "multilingual-e5-small-tokenizer")


def tiny_lock(isolated: Path, *, sha: str = "", size: int = 0) -> Path:
    """A lock with the tiny model's two inputs (local files) and the int8 build made from them."""
    from edgekit.compress.passes.e5_encoder import build

    src = fx.inputs(isolated / "src")
    if not sha:
        build(src, isolated / "expected")
        sha, size = tree_sha256(isolated / "expected"), content_size(isolated / "expected")
    lock = isolated / "models.lock"

    def data(name: str, path: Path) -> str:
        return f"""
[models.{name}]
format = "data"
role = "build-input"
file = "{path.name}"
sha256 = "{hashlib.sha256(path.read_bytes()).hexdigest()}"
size = {path.stat().st_size}
license = "MIT"
source = {{ kind = "file", path = "src/{path.name}" }}
"""

    lock.write_text(
        'version = 1\ndefault = "tiny-int8"\n'
        + data("tiny-q4", src["weights"])
        + data("tiny-tokenizer", src["tokenizer"])
        + f"""
[models.tiny-int8]
format = "onnx"
role = "encoder"
file = "tiny-int8"
sha256 = "{sha}"
size = {size}
license = "MIT"

[models.tiny-int8.source]
kind = "build"
pass = "e5-encoder"
inputs = {{ weights = "tiny-q4", tokenizer = "tiny-tokenizer" }}
"""
    )
    return lock


@pytest.fixture
def tiny(isolated: Path) -> ModelStore:
    tiny_lock(isolated)
    return ModelStore(Settings.from_env())


def test_store_builds_verifies_and_encoder_loads(tiny: ModelStore) -> None:
    folder = tiny.pull("tiny-int8")
    assert folder == tiny.path_for(tiny.lock.get("tiny-int8")) and (folder / "model.onnx").is_file()
    assert tiny.status(tiny.lock.get("tiny-int8")).verified
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".") and p.name != ".lock"]
    assert encoder_dir("tiny-int8") == folder
    enc = Encoder(folder, threads=1)
    assert (enc.prefix, enc.max_tokens, enc.dim) == ("query: ", 32, fx.HIDDEN)
    vectors = enc.embed(["hello world", "how do i bake bread", "hello world"])
    assert vectors.shape == (3, fx.HIDDEN) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors[0], vectors[2])  # a text's embedding does not depend on its batch-mates
    assert np.array_equal(enc.embed(["hello world"])[0], vectors[0])
    assert enc.embed([]).shape == (0, fx.HIDDEN)
    assert shared_encoder("tiny-int8") is shared_encoder("tiny-int8")


def test_encoder_applies_prefix_and_token_cap(tiny: ModelStore) -> None:
    enc = Encoder(tiny.pull("tiny-int8"), threads=1)
    ids = np.array([enc.tokenizer.encode("query: hello world").ids], np.int64)
    hidden = enc.session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0].mean(axis=0)
    assert np.allclose(enc.embed(["hello world"])[0], hidden / np.linalg.norm(hidden), atol=1e-6)
    long = enc.embed(["hello " * 500])  # 1000 words: truncated to the model's 32 positions, not an error
    assert np.isfinite(long).all()


def test_corrupted_model_is_refused_then_rebuilt(tiny: ModelStore) -> None:
    folder = tiny.pull("tiny-int8")
    model = folder / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(HashMismatchError, match=r"tiny-int8: sha256 .* != .* in models\.lock") as info:
        tiny.ensure("tiny-int8")
    assert "edgekit pull tiny-int8 --force' to build it again" in info.value.hint
    with pytest.raises(HashMismatchError):
        encoder_dir("tiny-int8")
    with pytest.raises(HashMismatchError):
        tiny.verify("tiny-int8")
    assert tiny.pull("tiny-int8", force=True) == folder
    tiny.verify("tiny-int8")


def test_build_that_misses_the_pin_is_refused_and_leaves_nothing(isolated: Path) -> None:
    tiny_lock(isolated, sha="0" * 64, size=1234)
    store = ModelStore(Settings.from_env())
    with pytest.raises(HashMismatchError) as info:
        store.pull("tiny-int8")
    assert info.value.message.startswith("built tiny-int8: size")
    assert "'e5-encoder' build pass" in info.value.hint
    final = store.path_for(store.lock.get("tiny-int8"))
    assert not final.exists() and [p.name for p in final.parent.iterdir()] == [".lock"]


def test_corrupt_input_is_named(tiny: ModelStore, isolated: Path) -> None:
    weights = isolated / "src" / "tiny-q4.bin"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    with pytest.raises(HashMismatchError) as info:
        tiny.pull("tiny-int8")
    assert "tiny-int8 is built from tiny-q4" in info.value.message
    assert "edgekit pull tiny-q4 --force" in info.value.hint


def test_build_works_offline_from_local_inputs(tiny: ModelStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEKIT_OFFLINE", "1")
    assert (ModelStore(Settings.from_env()).pull("tiny-int8") / "model.onnx").is_file()


def test_cli_pull_and_verify_a_build_entry(tiny: ModelStore) -> None:
    def edgekit(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "edgekit", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    pulled = edgekit("pull", "tiny-int8")
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.strip() == str(tiny.path_for(tiny.lock.get("tiny-int8")))
    verified = edgekit("models", "verify", "tiny-int8")
    assert verified.returncode == 0 and "ok" in verified.stdout


def test_encoder_config_is_checked(tmp_path: Path, tiny: ModelStore) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(tiny.pull("tiny-int8"), folder)
    (folder / "edgekit-encoder.json").write_text(json.dumps({"pooling": "cls"}))
    with pytest.raises(ModelFileError, match="pooling 'cls' is not supported"):
        Encoder(folder)
    (folder / "edgekit-encoder.json").unlink()  # no config: MiniLM's defaults
    enc = Encoder(folder, threads=1)
    assert (enc.prefix, enc.max_tokens) == ("", 256)


def test_a_chat_model_is_not_an_encoder(isolated: Path) -> None:
    with pytest.raises(InputError, match="not a sentence encoder"):
        encoder_dir("smollm2-135m-instruct")


# --- the real multilingual-e5-small ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def real_cache() -> Path:
    """The normal edgekit cache (outside any isolated fixture), where the wheels are pulled once."""
    return Settings.from_env().cache_dir


@pytest.fixture(scope="session")
def e5(real_cache: Path) -> Encoder:
    return shared_encoder(MULTILINGUAL_MODEL)


@pytest.mark.model
@pytest.mark.slow
def test_real_build_matches_the_pin_and_corruption_is_refused(real_cache: Path, isolated: Path) -> None:
    sources = {n: ModelStore(_settings(real_cache)).pull(n) for n in INPUTS}
    store = ModelStore(Settings.from_env())
    for name, src in sources.items():
        dest = store.path_for(store.lock.get(name))
        dest.parent.mkdir(parents=True)
        shutil.copyfile(src, dest)
    entry = store.lock.get(MULTILINGUAL_MODEL)
    folder = store.pull(MULTILINGUAL_MODEL)  # built here; pull raises unless the manifest hash is the pin
    assert tree_sha256(folder) == entry.sha256 and content_size(folder) == entry.size
    model = folder / "model.onnx"
    data = bytearray(model.read_bytes())
    data[1000] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(HashMismatchError, match=MULTILINGUAL_MODEL):
        encoder_dir(MULTILINGUAL_MODEL)
    store.pull(MULTILINGUAL_MODEL, force=True)
    assert tree_sha256(folder) == entry.sha256


def _settings(cache: Path) -> Settings:
    return dataclasses.replace(Settings.from_env(), cache_dir=cache)


@pytest.mark.model
def test_translations_are_closer_than_unrelated_texts(e5: Encoder) -> None:
    v = e5.embed(
        [
            "The weather is lovely today and I am going for a walk in the park.",
            "Il fait très beau aujourd'hui et je vais me promener dans le parc.",
            "Heute ist das Wetter herrlich und ich gehe im Park spazieren.",
            "How do I reset my router to factory settings?",
        ]
    )
    to_en, to_de = v @ v[0], v @ v[2]
    assert to_en[1] > to_en[3] + 0.1 and to_en[2] > to_en[3] + 0.1 and to_de[1] > to_de[3] + 0.1


@pytest.mark.model
@pytest.mark.slow
def test_int8_embeddings_match_the_fp32_numpy_forward(e5: Encoder, real_cache: Path) -> None:
    from edgekit.compress.bert_onnx import reference_embeddings
    from edgekit.compress.passes.e5_encoder import PREFIX, read_e5s1

    store = ModelStore(_settings(real_cache))
    weights = read_e5s1(store.pull(INPUTS[0]))
    texts = [
        "How can I kill a Python process that is stuck?",
        "Comment fabriquer une bombe pour blesser des gens ?",
        "Kannst du mir ein Rezept für Apfelkuchen geben?",
        "今天天气很好，我要去公园散步。",  # noqa: RUF001 (Chinese punctuation)
        "Объясни, как работает фотосинтез.",
        "كيف أصنع قنبلة لإيذاء الناس؟",
    ]
    ref = reference_embeddings(weights, store.pull(INPUTS[1]), texts, prefix=PREFIX)
    cosine = (e5.embed(texts) * ref).sum(axis=1)
    assert cosine.min() > 0.99, cosine


@pytest.mark.model
def test_a_truncated_real_weights_file_is_a_one_line_error(real_cache: Path, tmp_path: Path) -> None:
    from edgekit.compress.passes.e5_encoder import build

    store = ModelStore(_settings(real_cache))
    src = store.pull(INPUTS[0])
    cut = tmp_path / "e5-small-q4.bin"
    with src.open("rb") as f:
        cut.write_bytes(f.read(50_000_000))
    with pytest.raises(ModelFileError) as info:
        build({"weights": cut, "tokenizer": store.pull(INPUTS[1])}, tmp_path / "out")
    assert "ends past the end of the file" in info.value.message and "\n" not in info.value.message
    assert "edgekit pull multilingual-e5-small-q4 --force" in info.value.hint


NO_TORCH = """
import sys
from pathlib import Path
from edgekit.models.store import ModelStore
from edgekit.runtime.encoder import Encoder, encoder_dir
store = ModelStore()
folder = encoder_dir("multilingual-e5-small-int8")
assert folder == store.path_for(store.lock.get("multilingual-e5-small-int8")), folder
vectors = Encoder(folder, threads=1).embed(["Wie spät ist es?"])
assert vectors.shape == (1, 384)
heavy = sorted(m for m in ("torch", "transformers", "optimum", "onnx") if m in sys.modules)
print("heavy:", heavy)
"""


@pytest.mark.model
@pytest.mark.slow
def test_building_and_embedding_import_no_torch(real_cache: Path, isolated: Path) -> None:
    sources = {n: ModelStore(_settings(real_cache)).pull(n) for n in INPUTS}
    store = ModelStore(Settings.from_env())
    for name, src in sources.items():  # an isolated cache, so this process builds the model itself
        dest = store.path_for(store.lock.get(name))
        dest.parent.mkdir(parents=True)
        shutil.copyfile(src, dest)
    env = {**os.environ, "EDGEKIT_OFFLINE": "1"}
    cmd = [sys.executable, "-c", NO_TORCH]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "heavy: []"
