"""The usual alternative, measured: a script that loops over the devices and scores each with its own pickled
scikit-learn model, as a cron job or the Azure batch-scoring reference implementation does.

For the demo's Mahalanobis fleet, each device's parameters are read from its model.onnx and put into a
scikit-learn EmpiricalCovariance (whose `mahalanobis` is the same squared distance), pickled per device. For the
other families (`--pickles`, written by bench/make_fleet.py) each pickle holds the device's own fitted estimator,
scored with `decision_function` (one-class SVM, isolation forest), `predict_proba` (the random forest classifier's
probability of a fault), PCA's inverse_transform(transform(x)) error, or
a numpy forward pass of the autoencoder. Pickling is preparation and is not timed; the timed part reads the
window's parts (Arrow IPC or Parquet), then for every device loads its pickle, scores its rows and flags
anomalies, and writes one Arrow file of predictions.

Usage: python bench/peer.py --store DIR --window 2026-11-21T12 --work DIR [--pickles DIR]   (prints one JSON line)
"""

import argparse
import json
import pickle
import resource
import time
from pathlib import Path

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from onnx import numpy_helper
from sklearn.covariance import EmpiricalCovariance


def prepare(store: Path, work: Path) -> dict:
    index = json.loads((store / "models" / "index.json").read_text())["devices"]
    pickles = work / "pickles"
    pickles.mkdir(parents=True, exist_ok=True)
    features = None
    for device, entry in index.items():
        folder = store / "models" / device / entry["version"]
        meta = json.loads((folder / "model.json").read_text())
        features = meta["features"]
        init = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(folder / "model.onnx")).graph.initializer}
        mean = next(v for v in init.values() if v.ndim == 1 and v.size == len(features)).astype(np.float64)
        precision = next(v for v in init.values() if v.ndim == 2).astype(np.float64)
        model = EmpiricalCovariance()
        model.location_ = mean
        model.precision_ = precision
        model.covariance_ = np.linalg.inv(precision)
        with open(pickles / f"{device}.pkl", "wb") as f:
            pickle.dump({"model": model, "threshold": meta["threshold"], "version": entry["version"]}, f)
    return {"devices": sorted(index), "features": features}


def device_scores(entry: dict, x: np.ndarray) -> tuple:
    """(scores, anomaly flags) of one device's rows, as the usual per-device script computes them."""
    kind = entry.get("kind", "mahalanobis")
    if kind == "mahalanobis":
        s = entry["model"].mahalanobis(x)
        return s, s > entry["threshold"]
    if kind == "decision_function":
        s = entry["model"].decision_function(x)
        return s, s < entry["threshold"]
    if kind == "predict_proba":
        s = entry["model"].predict_proba(x)[:, 1]
        return s, s > entry["threshold"]
    if kind == "pca":
        m = entry["model"]
        s = ((m.inverse_transform(m.transform(x)) - x) ** 2).mean(axis=1)
        return s, s > entry["threshold"]
    if kind == "autoencoder":
        w = entry["weights"]
        out = np.tanh(x @ w["w1"].T + w["b1"]) @ w["w2"].T + w["b2"]
        s = ((out - x) ** 2).mean(axis=1)
        return s, s > entry["threshold"]
    raise ValueError(f"unknown peer model kind {kind}")


def score(store: Path, window: str, pickles: Path, work: Path, devices: list, features: list) -> int:
    parts = sorted((store / "aggregates" / f"window={window}").glob("part-*"))
    read = lambda p: pq.read_table(p) if p.suffix == ".parquet" else ipc.open_file(str(p)).read_all()  # noqa: E731
    table = pa.concat_tables([read(p) for p in parts])
    ids = table.column("device_id").to_numpy(zero_copy_only=False)
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    x = np.column_stack([table.column(f).to_numpy() for f in features])
    order = np.argsort(ids, kind="stable")
    uniq, starts = np.unique(ids[order], return_index=True)
    bounds = dict(zip(uniq, zip(starts, list(starts[1:]) + [len(order)])))
    out_dev, out_ts, out_score, out_flag = [], [], [], []
    rows = 0
    for device in devices:
        with open(pickles / f"{device}.pkl", "rb") as f:
            entry = pickle.load(f)
        if device not in bounds:
            continue
        lo, hi = bounds[device]
        idx = order[lo:hi]
        s, flags = device_scores(entry, x[idx])
        out_dev.append(np.full(len(idx), device, dtype=object))
        out_ts.append(ts[idx])
        out_score.append(s.astype(np.float32))
        out_flag.append(flags)
        rows += len(idx)
    result = pa.table(
        {
            "device_id": pa.array(np.concatenate(out_dev)),
            "ts": pa.array(np.concatenate(out_ts)).cast(pa.timestamp("ms", "UTC")),
            "score": pa.array(np.concatenate(out_score)),
            "is_anomaly": pa.array(np.concatenate(out_flag)),
        }
    )
    with ipc.new_file(str(work / "predictions.arrow"), result.schema) as w:
        w.write_table(result)
    return rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--store", required=True)
    p.add_argument("--window", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--pickles")
    a = p.parse_args()
    store, work = Path(a.store), Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    if a.pickles:
        index = json.loads((store / "models" / "index.json").read_text())["devices"]
        first = next(iter(index.items()))
        meta = json.loads((store / "models" / first[0] / first[1]["version"] / "model.json").read_text())
        prep = {"devices": sorted(index), "features": meta["features"]}
        pickles = Path(a.pickles)
    else:
        prep = prepare(store, work)
        pickles = work / "pickles"
    start = time.perf_counter()
    rows = score(store, a.window, pickles, work, prep["devices"], prep["features"])
    wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": rows, "wall_s": wall, "rows_per_s": rows / wall, "peak_rss_mb": peak_mb}))


if __name__ == "__main__":
    main()
