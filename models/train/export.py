"""Export a trained BodyPartNet to ONNX (sigmoid inside, output [N, 5], dynamic batch) and check it."""
from __future__ import annotations

import logging
import os

import numpy as np
import torch

log = logging.getLogger("export")


def export_onnx(net, path: str, input_name="input", output_name="probs", opset=18) -> str:
    from train import Probabilities
    model = Probabilities(net).eval()
    dummy = torch.zeros(2, 3, 224, 224)
    try:
        batch = torch.export.Dim("N", min=1, max=4096)
        torch.onnx.export(model, (dummy,), path, input_names=[input_name], output_names=[output_name],
                          opset_version=opset, dynamo=True, external_data=False,
                          dynamic_shapes={"x": {0: batch}})
        how = f"torch.onnx.export(dynamo=True, opset={opset})"
    except Exception as e:  # pragma: no cover - fallback for exporter differences
        log.warning("dynamo export failed (%s); using the TorchScript exporter, opset 17", e)
        torch.onnx.export(model, (dummy,), path, input_names=[input_name], output_names=[output_name],
                          opset_version=17, dynamo=False,
                          dynamic_axes={input_name: {0: "N"}, output_name: {0: "N"}})
        how = "torch.onnx.export(dynamo=False, opset=17)"
    import onnx
    m = onnx.load(path)
    onnx.checker.check_model(m)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in m.graph.initializer)
    return how


def ort_session(path: str, threads: int = 2):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ort_predict(sess, x: np.ndarray, bs: int = 32) -> np.ndarray:
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + bs]})[0] for i in range(0, len(x), bs)])


def throughput(sess, x: np.ndarray, batch: int, seconds: float = 8.0) -> float:
    import time
    name = sess.get_inputs()[0].name
    xb = np.ascontiguousarray(np.resize(x, (batch,) + x.shape[1:]))
    sess.run(None, {name: xb})
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        sess.run(None, {name: xb})
        n += batch
    return n / (time.perf_counter() - t0)
