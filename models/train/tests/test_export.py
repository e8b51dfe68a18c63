"""The shipped model directory: ONNX loads in ONNX Runtime, dynamic batch, probabilities [N, classes],
manifest consistent with the graph and metrics.json. numpy, onnx, onnxruntime only."""
import json
import os
import tomllib

import numpy as np
import pytest

import data as D
import preprocess as P
from conftest import DATA, MODEL_DIR

pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(MODEL_DIR, "manifest.toml")),
                                reason="models/bodypart not shipped yet")


@pytest.fixture(scope="module")
def manifest():
    with open(os.path.join(MODEL_DIR, "manifest.toml"), "rb") as f:
        return tomllib.load(f)


@pytest.fixture(scope="module")
def session(manifest):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(os.path.join(MODEL_DIR, manifest["members"][0]["file"]), so,
                                providers=["CPUExecutionProvider"])


def test_manifest_contract(manifest):
    assert manifest["input"] == {"name": "input", "size": 224, "preprocessing": "radroute-v1"}
    assert [c["name"] for c in manifest["classes"]] == D.CLASSES
    assert len(manifest["members"]) == 1 and manifest["members"][0]["classes"] == D.CLASSES
    for c in manifest["classes"]:
        assert 0 < c["threshold"] < 1 and c["body_part"] == c["name"].upper() and c["snomed"].isdigit()
        # correction needs more confidence than labelling; absent = never corrected to this class
        assert c.get("correct_threshold", 1.0) >= max(c["threshold"], 0.9)


def test_manifest_uses_the_required_snomed_codes(manifest):
    # Anatomic Region Sequence codes radroute writes (issue 3): SCT concepts per body part.
    required = {"SHOULDER": "16982005", "ELBOW": "16953009", "HAND": "85562004",
                "PELVIS": "816092008", "KNEE": "72696002",
                # 2.0.0 (PS3.16 CID 4031)
                "CHEST": "816094009", "ABDOMEN": "818981001", "CSPINE": "122494005", "LSPINE": "122496007",
                "FOOT": "56459004", "ANKLE": "70258002", "WRIST": "74670003"}
    assert {c["body_part"]: c["snomed"] for c in manifest["classes"]} == required


def test_onnx_graph(manifest):
    import onnx
    path = os.path.join(MODEL_DIR, manifest["members"][0]["file"])
    total = sum(os.path.getsize(os.path.join(MODEL_DIR, f)) for f in os.listdir(MODEL_DIR) if f.endswith(".onnx"))
    assert total <= 20 * 1024 * 1024  # issue 12: ONNX <= 20 MB
    m = onnx.load(path)
    onnx.checker.check_model(m)
    assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) >= 17
    inp = m.graph.input[0]
    assert inp.name == manifest["input"]["name"]
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and not dims[0].dim_value  # dynamic batch
    assert [d.dim_value for d in dims[1:]] == [3, 224, 224]
    assert manifest["members"][0]["output"] in [o.name for o in m.graph.output]


@pytest.mark.parametrize("n", [1, 2, 5])
def test_dynamic_batch_probabilities(session, manifest, n):
    rng = np.random.default_rng(n)
    x = np.stack([P.step4(rng.random((224, 224)).astype(np.float32)) for _ in range(n)])
    (y,) = session.run([manifest["members"][0]["output"]], {"input": x})
    assert y.shape == (n, len(D.CLASSES)) and y.dtype == np.float32
    assert (y >= 0).all() and (y <= 1).all()
    # batch composition does not change a row
    (y1,) = session.run(None, {"input": x[:1]})
    assert np.allclose(y1[0], y[0], atol=1e-5)


def test_metrics_match_manifest(manifest):
    m = json.load(open(os.path.join(MODEL_DIR, "metrics.json")))
    assert m["shipped"]["name"] == manifest["name"]
    for c in manifest["classes"]:
        assert abs(c["threshold"] - m["shipped"]["threshold"]) < 0.005
        assert c.get("correct_threshold") == m["shipped"]["correct_thresholds"][c["name"]]
    assert m["shipped"]["ort_vs_torch_max_abs_diff_val"] < 1e-4


@pytest.mark.skipif(not os.path.isdir(DATA), reason="radiographs folder not present")
def test_recorded_test_predictions_reproduce(session, manifest):
    """A few held-out images: ORT through preprocess.py gives the recorded decisions."""
    import metrics as M
    rows = [r for r in D.read_splits_tsv(os.path.join(MODEL_DIR, "splits.tsv")) if r["split"] == "test"]
    x = np.stack([P.model_input(os.path.join(DATA, r["path"])) for r in rows[::25]])
    (p,) = session.run(None, {"input": x})
    th = [c["threshold"] for c in manifest["classes"]]
    truth = M.truth_index([r["class"] for r in rows[::25]])
    assert (M.decide(p, th) == truth).mean() >= 0.8

