"""Run a built encoder graph in onnxruntime (not mocked) and compare it with a reference."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort


def run_graph(model: bytes, ids: list[int]) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    feed = {"input_ids": np.array([ids], np.int64), "attention_mask": np.ones((1, len(ids)), np.int64)}
    return session.run(None, feed)[0][0]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
