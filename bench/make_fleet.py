"""Generates one benchmark fleet of a model family into a fleetscore store, and the peer's pickles.

Every device gets its own data (a seeded draw: its own feature means and spreads), its own model trained on 240
rows of it, exported as users export it (skl2onnx for scikit-learn models; PCA gets its inverse transform
appended, since skl2onnx exports only the projection; a random forest classifier, trained on the device's rows
and as many labelled faults, without ZipMap), registered with a model.json, and 60 rows of one window (a few of
them shifted outliers) in the window's Arrow aggregates. The peer's pickle holds the same fitted
estimator (or the autoencoder's weights) and its threshold.

What skl2onnx writes is written without it per device: isolation forests by forest_onnx.py (skl2onnx's graph in
milliseconds instead of seconds to minutes), one-class SVMs and PCA by skl2onnx_template.py (skl2onnx's model for
one device, refilled with each device's values); every generation first checks both against skl2onnx's own
conversion (forests: the first device; SVMs and PCA: the first TEMPLATE_CHECKS devices, byte for byte) and stops
on any difference. LocalOutlierFactors are converted by skl2onnx itself, device by device (about 5 ms each).
Autoencoders are trained a job's devices at a time (one stacked gradient descent).

Generation is resumable (a device whose model.json exists is skipped) and runs in PROCS processes. The fleet is
complete when fleet.json exists.

Usage: python bench/make_fleet.py --family F --devices N --out DIR --window-start-ms MS [--trees T] [--procs 2]
"""

import argparse
import hashlib
import json
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

import forest_onnx
import skl2onnx_template

warnings.filterwarnings("ignore")

FEATURES = 7
TRAIN_ROWS = 240
ROWS = 60
DEVICES_PER_PART = 2000
# skl2onnx 1.20 converts up to ai.onnx 22 and ai.onnx.ml 3; onnxruntime-node 1.30 runs both.
TARGET_OPSET = {"": 22, "ai.onnx.ml": 3}
# Per family (1 when absent), bumped when what a fleet holds could change, so cached fleets are made again (and
# with bench/fleets.ts's). Forests are 2: written by forest_onnx.py, skl2onnx's graph in another node order.
# Autoencoders are 2: trained AUTOENCODER_BATCH at a time, whose float rounding may differ from one at a time.
# SVMs and PCA stay 1: skl2onnx_template.py writes skl2onnx's bytes (checked), from the same fits.
GENERATOR = {"isolation-forest": 2, "autoencoder": 2}
# Autoencoders trained together by one stacked gradient descent (the results do not depend on it).
AUTOENCODER_BATCH = 32
# Devices whose template-written model is compared with skl2onnx's own conversion, byte for byte, every generation.
TEMPLATE_CHECKS = 16
# Labelled fault rows a random forest classifier is trained on besides the device's TRAIN_ROWS normal ones.
FAULT_ROWS = 60


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


def to_onnx_bytes(model, name: str, options=None) -> bytes:
    from skl2onnx import to_onnx

    onx = to_onnx(model, np.zeros((1, FEATURES), dtype=np.float32), target_opset=TARGET_OPSET, options=options)
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


def skl2onnx_export(family: str, model) -> bytes:
    """What users export: skl2onnx's conversion (run once per process, for the template, and by the checks)."""
    return pca_reconstruction(model) if family == "pca-reconstruction" else to_onnx_bytes(model, family)


def labelled(seed: int, i: int, train: np.ndarray) -> tuple:
    """Device i's training rows (label 0) and FAULT_ROWS labelled faults (1): its rows shifted by 6 spreads along
    every feature, as the window's outliers are."""
    rng = np.random.default_rng([seed, i, 2])
    shift = rng.choice([-1.0, 1.0], (FAULT_ROWS, FEATURES)) * 6 * train.std(axis=0)
    faults = train[rng.integers(0, len(train), FAULT_ROWS)] + shift
    return np.concatenate([train, faults]), np.repeat([0, 1], [len(train), FAULT_ROWS])


def fit(family: str, trees: int, seed: int, i: int, train: np.ndarray):
    """Device i's fitted scikit-learn estimator (one-class SVM, isolation forest, PCA, local outlier factor, or a
    random forest classifier of its labelled faults)."""
    import sklearn
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest, RandomForestClassifier
    from sklearn.neighbors import LocalOutlierFactor
    from sklearn.svm import OneClassSVM

    x64 = train.astype(np.float64)
    # The same fit (the same pickles, byte for byte) without validating the bench's own parameters and data again.
    with sklearn.config_context(skip_parameter_validation=True, assume_finite=True):
        if family in ("ocsvm-rbf", "ocsvm-poly"):
            return OneClassSVM(kernel=family.split("-")[1], degree=3, gamma="scale", nu=0.05).fit(x64)
        if family == "isolation-forest":
            return IsolationForest(n_estimators=trees, random_state=seed * 1_000_003 + i).fit(x64)
        if family == "pca-reconstruction":
            return PCA(n_components=3).fit(x64)
        if family == "lof":
            return LocalOutlierFactor(n_neighbors=20, novelty=True).fit(x64)
        if family == "rf-classifier":
            x, y = labelled(seed, i, x64)
            return RandomForestClassifier(n_estimators=trees, random_state=seed * 1_000_003 + i).fit(x, y)
    raise SystemExit(f"unknown family {family}")


_templates: dict = {}


def template(family: str, seed: int) -> skl2onnx_template.Template:
    """This process's template: skl2onnx's conversion of device 0's model (a device no fleet holds), so that every
    checked device is refilled from another device's model."""
    if family not in _templates:
        model = fit(family, 0, seed, 0, device_data(seed, 0)[0])
        _templates[family] = skl2onnx_template.Template(family, skl2onnx_export(family, model))
    return _templates[family]


def check_templates(family: str, trees: int, seed: int) -> None:
    """Stops the generation unless the first TEMPLATE_CHECKS devices' template-written models are skl2onnx's."""
    if family not in skl2onnx_template.FILLERS:
        return
    for i in range(1, TEMPLATE_CHECKS + 1):
        model = fit(family, trees, seed, i, device_data(seed, i)[0])
        ours = template(family, seed).convert(model)
        skl2onnx_template.check_against_skl2onnx(device_id(i), ours, skl2onnx_export(family, model))


def autoencoders(trains: list, rngs: list) -> list:
    """7-4-7 tanh autoencoders, one per training set, trained together by full-batch gradient descent (stacked
    [devices, rows, features] arrays: one numpy call per step for all of them); weights as torch's Linear stores
    them."""
    hidden = 4
    init = [(r.standard_normal((hidden, FEATURES)) * 0.3, r.standard_normal((FEATURES, hidden)) * 0.3) for r in rngs]
    w1 = np.stack([a for a, _ in init])
    w2 = np.stack([b for _, b in init])
    train = np.stack(trains)
    b1 = np.zeros((len(trains), hidden))
    b2 = train.mean(axis=1).astype(np.float64)
    x = train.astype(np.float64)
    for _ in range(300):
        h = np.tanh(x @ w1.transpose(0, 2, 1) + b1[:, None, :])
        out = h @ w2.transpose(0, 2, 1) + b2[:, None, :]
        g = 2 * (out - x) / x.shape[1]
        gw2, gb2 = g.transpose(0, 2, 1) @ h, g.sum(axis=1)
        gh = (g @ w2) * (1 - h * h)
        gw1, gb1 = gh.transpose(0, 2, 1) @ x, gh.sum(axis=1)
        for p, d in ((w1, gw1), (b1, gb1), (w2, gw2), (b2, gb2)):
            p -= 0.05 * d
    weights = dict(w1=w1, b1=b1, w2=w2, b2=b2)
    return [{k: v[d].astype(np.float32) for k, v in weights.items()} for d in range(len(trains))]


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


def reconstruction_meta(threshold: float, input_name: str) -> dict:
    return {
        "anomalyWhen": "above",
        "threshold": threshold,
        "input": {"name": input_name},
        "output": {"name": "reconstruction", "reconstructionError": "mse"},
    }


def make_devices(family: str, trees: int, seed: int, ids: list):
    """(i, onnx bytes, model.json fields, peer entry, window rows) for each device i of `ids`."""
    data = {i: device_data(seed, i) for i in ids}
    if family == "autoencoder":
        # AUTOENCODER_BATCH devices per descent: arrays that stay in cache (a job's 200 at once pay page faults).
        batches = [ids[k : k + AUTOENCODER_BATCH] for k in range(0, len(ids), AUTOENCODER_BATCH)]
        rngs = {i: np.random.default_rng([seed, i, 1]) for i in ids}
        trained = [w for b in batches for w in autoencoders([data[i][0] for i in b], [rngs[i] for i in b])]
        for i, w in zip(ids, trained):
            train, window = data[i]
            err = ((ae_forward(w, train) - train) ** 2).mean(axis=1)
            threshold = float(np.quantile(err, 0.99) * 1.5)
            entry = {"kind": "autoencoder", "weights": w, "threshold": threshold}
            yield i, autoencoder_onnx(w), reconstruction_meta(threshold, "input"), entry, window
        return
    for i in ids:
        train, window = data[i]
        model = fit(family, trees, seed, i, train)
        if family == "pca-reconstruction":
            x64 = train.astype(np.float64)
            err = ((model.inverse_transform(model.transform(x64)) - x64) ** 2).mean(axis=1)
            threshold = float(np.quantile(err, 0.99) * 1.5)
            entry = {"kind": "pca", "model": model, "threshold": threshold}
            yield i, template(family, seed).convert(model), reconstruction_meta(threshold, "X"), entry, window
            continue
        if family == "rf-classifier":
            # The probability of a fault: skl2onnx's probabilities output without ZipMap, column 1.
            output = {"name": "probabilities", "column": 1}
            meta = {"anomalyWhen": "above", "threshold": 0.5, "output": output, "input": {"name": "X"}}
            entry = {"kind": "predict_proba", "model": model}
            yield i, to_onnx_bytes(model, family, {"zipmap": False}), meta, entry, window
            continue
        output = {"name": "scores", "column": 0}
        meta = {"anomalyWhen": "below", "threshold": 0.0, "output": output, "input": {"name": "X"}}
        entry = {"kind": "decision_function", "model": model}
        if family == "isolation-forest":
            onnx_bytes = forest_onnx.isolation_forest_onnx(model, family)
            if i == 1:
                # Once per generation: the fast writer must give skl2onnx's model (minutes, not hours, for a fleet).
                forest_onnx.check_against_skl2onnx(onnx_bytes, to_onnx_bytes(model, family))
        elif family == "lof":
            onnx_bytes = to_onnx_bytes(model, family)
        else:
            onnx_bytes = template(family, seed).convert(model)
        yield i, onnx_bytes, meta, entry, window


def build_range(args) -> list:
    """Makes the devices of [first, last) that are not made yet; (i, sha256, window rows) of every device in it, so
    that the index and the aggregates are written without reading files per device back (a device made earlier:
    its model.json's sha256 and its rows drawn again, the same seeded draw)."""
    family, trees, seed, out, first, last = args
    store, peer = Path(out) / "store", Path(out) / "peer"
    made, todo = [], []
    for i in range(first, last):
        folder = store / "models" / device_id(i) / "v0001"
        if (folder / "model.json").exists() and (peer / f"{device_id(i)}.pkl").exists():
            sha = json.loads((folder / "model.json").read_text())["sha256"]
            made.append((i, sha, device_data(seed, i)[1]))
        else:
            todo.append(i)
    for i, onnx_bytes, meta, entry, window in make_devices(family, trees, seed, todo):
        device = device_id(i)
        folder = store / "models" / device / "v0001"
        folder.mkdir(parents=True, exist_ok=True)
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
        # model.json last: it marks the device as made.
        (folder / "model.json").write_text(json.dumps(meta_json))
        made.append((i, sha, window))
    return made


def write_aggregates(out: Path, rows: dict, window_start_ms: int, window_id: str) -> None:
    """The window's Arrow parts, DEVICES_PER_PART devices each, from every device's rows (by device number)."""
    folder = out / "store" / "aggregates" / f"window={window_id}"
    folder.mkdir(parents=True, exist_ok=True)
    ts = (window_start_ms + 60_000 * np.arange(ROWS)).astype(np.int64)
    devices = len(rows)
    for part, first in enumerate(range(1, devices + 1, DEVICES_PER_PART)):
        ids = range(first, min(devices + 1, first + DEVICES_PER_PART))
        x = np.concatenate([rows[i] for i in ids])
        table = pa.table(
            {
                "device_id": pa.array([device_id(i) for i in ids for _ in range(ROWS)], pa.string()),
                "ts": pa.array(np.tile(ts, len(ids)), pa.timestamp("ms", "UTC")),
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
    check_templates(a.family, a.trees, a.seed)
    # Chunks small enough that every process has work on a small fleet, large enough to amortise a job.
    chunk = max(1, min(200, -(-a.devices // (4 * a.procs))))
    jobs = [
        (a.family, a.trees, a.seed, str(out), first, min(a.devices + 1, first + chunk))
        for first in range(1, a.devices + 1, chunk)
    ]
    shas, rows = {}, {}
    with Pool(a.procs) as pool:
        for done, made in enumerate(pool.imap_unordered(build_range, jobs), 1):
            for i, sha, window in made:
                shas[i], rows[i] = sha, window
            print(f"make_fleet: {a.family} {min(done * chunk, a.devices)}/{a.devices} devices", file=sys.stderr)
    index = {
        "schema": "fleetscore.index/v1",
        "devices": {device_id(i): {"version": "v0001", "pool": "cpu", "sha256": shas[i]} for i in sorted(shas)},
    }
    (out / "store" / "models" / "index.json").write_text(json.dumps(index))
    write_aggregates(out, rows, a.window_start_ms, a.window_id)
    (out / "fleet.json").write_text(
        json.dumps({"family": a.family, "devices": a.devices, "trees": a.trees, "seed": a.seed,
                    "generator": GENERATOR.get(a.family, 1), "seconds": time.time() - started})
    )


if __name__ == "__main__":
    main()
