"""Generates one benchmark fleet of a model family into a fleetscore store, and the peer's pickles.

Every device gets its own data (a seeded draw: its own feature means and spreads), its own model trained on 240
rows of it, exported as users export it (skl2onnx for scikit-learn models; PCA gets its inverse transform
appended, since skl2onnx exports only the projection; isolation forests are written by forest_onnx.py, which
gives skl2onnx's graph in seconds instead of hours and is checked against skl2onnx on every generation's first
device), registered with a model.json, and 60 rows of one window
(a few of them shifted outliers) in the window's Arrow aggregates. The peer's pickle holds the same fitted
estimator (or the autoencoder's weights) and its threshold.

Generation is resumable (a device whose model.json exists is skipped) and runs in PROCS processes. The fleet is
complete when fleet.json exists.

Usage: python bench/make_fleet.py --family F --devices N --out DIR --window-start-ms MS [--trees T] [--procs 2]
"""

import argparse
import hashlib
import json
import os
import pickle
import sys
import time
import warnings
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.ipc as ipc
from onnx import helper, numpy_helper

from forest_onnx import check_against_skl2onnx, isolation_forest_onnx

warnings.filterwarnings("ignore")

FEATURES = 7
TRAIN_ROWS = 240
ROWS = 60
DEVICES_PER_PART = 2000
# skl2onnx 1.20 converts up to ai.onnx 22 and ai.onnx.ml 3; onnxruntime-node 1.30 runs both.
TARGET_OPSET = {"": 22, "ai.onnx.ml": 3}
# Per family (1 when absent), bumped when what a fleet holds changes, so cached fleets are made again (and with
# bench/fleets.ts's). Forests are 2: written by forest_onnx.py, skl2onnx's graph in another node order.
GENERATOR = {"isolation-forest": 2}


def device_id(i: int) -> str:
    return f"dev-{i:05d}"


def feature_names() -> list:
    return [f"s{j:02d}" for j in range(FEATURES)]


def device_data(seed: int, i: int):
    rng = np.random.default_rng([seed, i])
    centre = rng.uniform(-1.0, 1.0, FEATURES)
    spread = rng.uniform(0.5, 1.5, FEATURES)
    # A little correlation between neighbouring features, so PCA and the autoencoder have structure to find.
    mix = np.eye(FEATURES) + 0.5 * np.eye(FEATURES, k=1)
    train = centre + (rng.standard_normal((TRAIN_ROWS, FEATURES)) @ mix) * spread
    window = centre + (rng.standard_normal((ROWS, FEATURES)) @ mix) * spread
    outliers = rng.random(ROWS) < 0.03
    window[outliers] += rng.choice([-1.0, 1.0], (outliers.sum(), FEATURES)) * 6 * spread
    return train.astype(np.float32), window.astype(np.float32)


def to_onnx_bytes(model, name: str) -> bytes:
    from skl2onnx import to_onnx

    onx = to_onnx(model, np.zeros((1, FEATURES), dtype=np.float32), target_opset=TARGET_OPSET)
    # skl2onnx emits opset imports in set order (varies with PYTHONHASHSEED); sorted, the bytes are reproducible.
    opsets = sorted((o.domain, o.version) for o in onx.opset_import)
    del onx.opset_import[:]
    onx.opset_import.extend(helper.make_opsetid(d, v) for d, v in opsets)
    onx.graph.name = name
    return onx.SerializeToString()


def pca_reconstruction(pca) -> bytes:
    """skl2onnx's PCA graph (Sub, MatMul: the projection) with the inverse transform appended."""
    onx = onnx.load_from_string(to_onnx_bytes(pca, "pca"))
    g = onx.graph
    projected = g.output[0].name
    g.initializer.extend(
        [
            numpy_helper.from_array(pca.components_.astype(np.float32), "components"),
            numpy_helper.from_array(pca.mean_.astype(np.float32), "pca_mean"),
        ]
    )
    g.node.extend(
        [
            helper.make_node("MatMul", [projected, "components"], ["back"]),
            helper.make_node("Add", ["back", "pca_mean"], ["reconstruction"]),
        ]
    )
    del g.output[:]
    g.output.extend([helper.make_tensor_value_info("reconstruction", onnx.TensorProto.FLOAT, [None, FEATURES])])
    return onx.SerializeToString()


def autoencoder(train: np.ndarray, rng: np.random.Generator):
    """A 7-4-7 tanh autoencoder trained by full-batch gradient descent; weights as torch's Linear stores them."""
    hidden = 4
    w1 = rng.standard_normal((hidden, FEATURES)) * 0.3
    b1 = np.zeros(hidden)
    w2 = rng.standard_normal((FEATURES, hidden)) * 0.3
    b2 = train.mean(axis=0).astype(np.float64)
    x = train.astype(np.float64)
    for _ in range(300):
        h = np.tanh(x @ w1.T + b1)
        out = h @ w2.T + b2
        g = 2 * (out - x) / len(x)
        gw2, gb2 = g.T @ h, g.sum(axis=0)
        gh = (g @ w2) * (1 - h * h)
        gw1, gb1 = gh.T @ x, gh.sum(axis=0)
        for p, d in ((w1, gw1), (b1, gb1), (w2, gw2), (b2, gb2)):
            p -= 0.05 * d
    return {k: v.astype(np.float32) for k, v in dict(w1=w1, b1=b1, w2=w2, b2=b2).items()}


def autoencoder_onnx(w: dict) -> bytes:
    """The graph torch.onnx.export writes for Linear-Tanh-Linear: Gemm (transB=1), Tanh, Gemm."""
    init = [numpy_helper.from_array(v, k) for k, v in w.items()]
    nodes = [
        helper.make_node("Gemm", ["input", "w1", "b1"], ["h0"], transB=1),
        helper.make_node("Tanh", ["h0"], ["h1"]),
        helper.make_node("Gemm", ["h1", "w2", "b2"], ["reconstruction"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "autoencoder",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["N", FEATURES])],
        [helper.make_tensor_value_info("reconstruction", onnx.TensorProto.FLOAT, ["N", FEATURES])],
        init,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()


def ae_forward(w: dict, x: np.ndarray) -> np.ndarray:
    return np.tanh(x @ w["w1"].T + w["b1"]) @ w["w2"].T + w["b2"]


def make_device(family: str, trees: int, seed: int, i: int):
    """(onnx bytes, model.json fields, peer entry, window rows) for device i."""
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest
    from sklearn.svm import OneClassSVM

    train, window = device_data(seed, i)
    x64 = train.astype(np.float64)
    below = {"anomalyWhen": "below", "threshold": 0.0}
    if family in ("ocsvm-rbf", "ocsvm-poly"):
        kernel = family.split("-")[1]
        model = OneClassSVM(kernel=kernel, degree=3, gamma="scale", nu=0.05).fit(x64)
        meta = {**below, "output": {"name": "scores", "column": 0}, "input": {"name": "X"}}
        return to_onnx_bytes(model, family), meta, {"kind": "decision_function", "model": model}, window
    if family == "isolation-forest":
        model = IsolationForest(n_estimators=trees, random_state=seed * 1_000_003 + i).fit(x64)
        meta = {**below, "output": {"name": "scores", "column": 0}, "input": {"name": "X"}}
        onnx_bytes = isolation_forest_onnx(model, family)
        if i == 1:
            # Once per generation: the fast writer must give skl2onnx's model (minutes, not hours, for a fleet).
            check_against_skl2onnx(onnx_bytes, to_onnx_bytes(model, family))
        return onnx_bytes, meta, {"kind": "decision_function", "model": model}, window
    if family == "pca-reconstruction":
        model = PCA(n_components=3).fit(x64)
        err = ((model.inverse_transform(model.transform(x64)) - x64) ** 2).mean(axis=1)
        threshold = float(np.quantile(err, 0.99) * 1.5)
        meta = {
            "anomalyWhen": "above",
            "threshold": threshold,
            "input": {"name": "X"},
            "output": {"name": "reconstruction", "reconstructionError": "mse"},
        }
        return pca_reconstruction(model), meta, {"kind": "pca", "model": model, "threshold": threshold}, window
    if family == "autoencoder":
        w = autoencoder(train, np.random.default_rng([seed, i, 1]))
        err = ((ae_forward(w, train) - train) ** 2).mean(axis=1)
        threshold = float(np.quantile(err, 0.99) * 1.5)
        meta = {
            "anomalyWhen": "above",
            "threshold": threshold,
            "input": {"name": "input"},
            "output": {"name": "reconstruction", "reconstructionError": "mse"},
        }
        return autoencoder_onnx(w), meta, {"kind": "autoencoder", "weights": w, "threshold": threshold}, window
    raise SystemExit(f"unknown family {family}")


def build_range(args) -> int:
    family, trees, seed, out, first, last = args
    store, peer = Path(out) / "store", Path(out) / "peer"
    made = 0
    for i in range(first, last):
        device = device_id(i)
        folder = store / "models" / device / "v0001"
        if (folder / "model.json").exists() and (peer / f"{device}.pkl").exists():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        onnx_bytes, meta, entry, window = make_device(family, trees, seed, i)
        sha = hashlib.sha256(onnx_bytes).hexdigest()
        meta_json = {
            "schema": "fleetscore.model/v1",
            "device": device,
            "version": "v0001",
            "pool": "cpu",
            "features": feature_names(),
            **meta,
            "preprocessing": {"type": "none"},
            "sha256": sha,
            "algorithm": family,
            "createdAt": "2026-11-21T00:00:00.000Z",
            "source": f"bench/make_fleet.py seed={seed}",
        }
        entry["threshold"] = meta["threshold"]
        (folder / "model.onnx").write_bytes(onnx_bytes)
        with open(peer / f"{device}.pkl", "wb") as f:
            pickle.dump(entry, f)
        np.save(peer / f"{device}.rows.npy", window)
        # model.json last: it marks the device as made.
        (folder / "model.json").write_text(json.dumps(meta_json))
        made += 1
    return made


def write_aggregates(out: Path, devices: int, window_start_ms: int, window_id: str) -> None:
    folder = out / "store" / "aggregates" / f"window={window_id}"
    folder.mkdir(parents=True, exist_ok=True)
    ts = (window_start_ms + 60_000 * np.arange(ROWS)).astype(np.int64)
    for part, first in enumerate(range(1, devices + 1, DEVICES_PER_PART)):
        last = min(devices + 1, first + DEVICES_PER_PART)
        ids, stamps, rows = [], [], []
        for i in range(first, last):
            ids.extend([device_id(i)] * ROWS)
            stamps.append(ts)
            rows.append(np.load(out / "peer" / f"{device_id(i)}.rows.npy"))
        x = np.concatenate(rows)
        table = pa.table(
            {
                "device_id": pa.array(ids, pa.string()),
                "ts": pa.array(np.concatenate(stamps), pa.timestamp("ms", "UTC")),
                **{f: pa.array(x[:, j], pa.float32()) for j, f in enumerate(feature_names())},
            }
        )
        with ipc.new_file(str(folder / f"part-{part:05d}.arrow"), table.schema) as w:
            w.write_table(table)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--family", required=True)
    p.add_argument("--devices", type=int, required=True)
    p.add_argument("--trees", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True)
    p.add_argument("--window-start-ms", type=int, required=True)
    p.add_argument("--window-id", required=True)
    p.add_argument("--procs", type=int, default=2)
    a = p.parse_args()
    out = Path(a.out)
    (out / "peer").mkdir(parents=True, exist_ok=True)
    started = time.time()
    # Chunks small enough that every process has work on a small fleet, large enough to amortise a job.
    chunk = max(1, min(200, -(-a.devices // (4 * a.procs))))
    jobs = [
        (a.family, a.trees, a.seed, str(out), first, min(a.devices + 1, first + chunk))
        for first in range(1, a.devices + 1, chunk)
    ]
    done = 0
    with Pool(a.procs) as pool:
        for made in pool.imap_unordered(build_range, jobs):
            done += 1
            print(f"make_fleet: {a.family} {min(done * chunk, a.devices)}/{a.devices} devices", file=sys.stderr)
    index = {
        "schema": "fleetscore.index/v1",
        "devices": {},
    }
    for i in range(1, a.devices + 1):
        meta = json.loads((out / "store" / "models" / device_id(i) / "v0001" / "model.json").read_text())
        index["devices"][device_id(i)] = {"version": "v0001", "pool": "cpu", "sha256": meta["sha256"]}
    (out / "store" / "models" / "index.json").write_text(json.dumps(index))
    write_aggregates(out, a.devices, a.window_start_ms, a.window_id)
    (out / "fleet.json").write_text(
        json.dumps({"family": a.family, "devices": a.devices, "trees": a.trees, "seed": a.seed,
                    "generator": GENERATOR.get(a.family, 1), "seconds": time.time() - started})
    )


if __name__ == "__main__":
    main()
