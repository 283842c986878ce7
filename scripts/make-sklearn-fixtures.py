# requirements: scikit-learn==1.9.1 skl2onnx==1.20.0 onnx==1.23.2 onnxruntime==1.31.1 numpy==2.4.6 pandas==3.1.1
"""Writes the scikit-learn test fixtures under test/fixtures/sklearn/.

Trains, with a fixed seed, a OneClassSVM (rbf, on standardized features: the scaler's mean/scale go to
model.json's `preprocessing`, so fleetscore applies them) and an IsolationForest on 4 features; converts both with
skl2onnx to ai.onnx.ml operators; writes model.onnx, model.json (fleetscore's schema, minus what registration
assigns), cases.json (input rows with scikit-learn's decision_function and predict), and isoforest.tar.gz.
On 7 features, for the fast-path tests: a OneClassSVM (poly), a PCA exported by skl2onnx with its inverse
transform appended (a reconstruction, scored by its mse) and a 7-4-7 tanh autoencoder (Gemm, Tanh, Gemm as
torch.onnx.export writes a Linear-Tanh-Linear module); their cases hold scikit-learn's (numpy's) scores.
On the 4 features again, as users pipeline them: StandardScaler + OneClassSVM and StandardScaler + IsolationForest
(the scaler in the graph, an ai.onnx.ml Scaler node), and a GaussianMixture scored by its score_samples (log
likelihood: ReduceLogSumExp). On the 4 features, a LocalOutlierFactor(novelty=True) (Scan, TopK, Gather), exported from a float32 sample and
from a float64 one (a double input), and a OneClassSVM from a float64 sample (onnxruntime cannot run it). On the 4
features, StandardScaler + KMeans scored by the distance to the nearest centroid (`"reduce": "min"` over skl2onnx's
`scores`, the distance to each centroid). On the 4 features, an EllipticEnvelope, which skl2onnx cannot convert,
written with onnx.helper as the Mahalanobis graph fleetscore stacks (`elliptic_envelope_onnx`, the recipe
docs/data-and-models.md points to). On the 4 features, an MLPRegressor reconstructing its standardized input (an
autoencoder), exported by skl2onnx unchanged: its output is the reconstruction flattened to [rows * 4, 1].
On the 4 features as a pandas DataFrame (float32 columns), a ColumnTransformer (StandardScaler on two columns,
MinMaxScaler on one, the last passed through) + IsolationForest, exported from the DataFrame: one input per column.

Run: .cache/py-bench/bin/python scripts/make-sklearn-fixtures.py   (from the repository root; `npm run bench`
creates that venv with the pinned versions above)
"""

import gzip
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import skl2onnx
import sklearn
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from onnx import TensorProto, helper, numpy_helper
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.covariance import EllipticEnvelope
from sklearn.ensemble import IsolationForest
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import OneClassSVM

SEED = 20261121
FEATURES = ["temperature", "vibration", "pressure", "current"]
# The newest opsets both sides support: skl2onnx 1.20 converts up to ai.onnx 22 and ai.onnx.ml 3 (it refuses ml 4/5,
# which add TreeEnsemble); onnxruntime-node 1.30 runs both.
TARGET_OPSET = {"": 22, "ai.onnx.ml": 3}
OUT = Path(__file__).resolve().parent.parent / "test" / "fixtures" / "sklearn"


def training_data(rng: np.random.Generator) -> np.ndarray:
    centre = np.array([60.0, 0.5, 101.3, 12.0])
    spread = np.array([5.0, 0.1, 2.0, 1.5])
    return (centre + spread * rng.standard_normal((300, 4))).astype(np.float32)


def case_rows(rng: np.random.Generator, train: np.ndarray, model_decision) -> np.ndarray:
    """~20 float32 rows, half typical and half shifted outliers, none within 1e-3 of the threshold."""
    mean, std = train.mean(axis=0), train.std(axis=0)
    candidates = np.concatenate(
        [
            mean + std * rng.standard_normal((40, 4)),
            mean + std * (rng.choice([-1.0, 1.0], (40, 4)) * rng.uniform(2.5, 5.0, (40, 4))),
        ]
    ).astype(np.float32)
    scores = model_decision(candidates.astype(np.float64))
    keep = np.abs(scores) > 1e-3
    inliers = candidates[keep & (scores > 0)][:10]
    outliers = candidates[keep & (scores < 0)][:10]
    return np.concatenate([inliers, outliers])


def convert(model, name: str, options=None, dtype=np.float32) -> bytes:
    onx = to_onnx(model, np.zeros((1, 4), dtype=dtype), target_opset=TARGET_OPSET, options=options)
    return finish(onx, name).SerializeToString()


def finish(onx: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """skl2onnx's model, reproducible and named: its opset imports sorted (skl2onnx emits them in set order, which
    varies with PYTHONHASHSEED), the versions that made it as producer, the graph named `name`; checked."""
    opsets = sorted(((o.domain, o.version) for o in onx.opset_import))
    del onx.opset_import[:]
    onx.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in opsets)
    onx.producer_name = f"skl2onnx {skl2onnx.__version__} / scikit-learn {sklearn.__version__}"
    onx.graph.name = name
    onnx.checker.check_model(onx, full_check=True)
    return onx


def decision_meta(algorithm: str, preprocessing: dict) -> dict:
    """model.json of a 4-feature fixture scored by its decision_function (input X, anomaly below 0)."""
    return {
        "pool": "cpu",
        "features": FEATURES,
        "input": {"name": "X"},
        "output": {"name": "scores", "column": 0},
        "anomalyWhen": "below",
        "threshold": 0,
        "preprocessing": preprocessing,
        "algorithm": algorithm,
        "source": f"scripts/make-sklearn-fixtures.py seed={SEED}",
    }


def write_fixture(name: str, onnx_bytes: bytes, meta: dict, rows: np.ndarray, decision, predict) -> dict:
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    graph = onnx.load_from_string(onnx_bytes).graph
    inputs = [i.name for i in graph.input]
    outputs = [o.name for o in graph.output]
    assert inputs == [meta["input"]["name"]], inputs
    assert meta["output"]["name"] in outputs, outputs
    meta = {
        "schema": "fleetscore.model/v1",
        **meta,
        "sha256": hashlib.sha256(onnx_bytes).hexdigest(),
    }
    save(folder, onnx_bytes, meta, FEATURES, rows, decision, [int(v) for v in predict])
    return meta


def save(folder: Path, onnx_bytes: bytes, meta: dict, features: list, rows, scores, predict: list) -> None:
    """model.onnx, model.json and cases.json (the rows, the reference scores and predict labels) of a fixture."""
    (folder / "model.onnx").write_bytes(onnx_bytes)
    (folder / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    cases = {
        "features": features,
        "rows": [[float(v) for v in r] for r in rows],
        "decisionFunction": [float(v) for v in scores],
        "predict": predict,
    }
    (folder / "cases.json").write_text(json.dumps(cases, indent=2) + "\n")


def wide_data(rng: np.random.Generator, rows: int) -> np.ndarray:
    centre = np.array([0.5, -0.2, 1.0, 0.0, -1.0, 0.3, 0.8])
    mix = np.eye(7) + 0.5 * np.eye(7, k=1)
    return (centre + (rng.standard_normal((rows, 7)) @ mix) * 0.8).astype(np.float32)


def wide_rows(rng: np.random.Generator, train: np.ndarray) -> np.ndarray:
    """10 typical and 10 shifted float32 rows."""
    mean, std = train.mean(axis=0), train.std(axis=0)
    normal = mean + std * rng.standard_normal((10, 7))
    shifted = mean + std * rng.choice([-1.0, 1.0], (10, 7)) * rng.uniform(3.0, 6.0, (10, 7))
    return np.concatenate([normal, shifted]).astype(np.float32)


def write_wide(name: str, onnx_bytes: bytes, meta: dict, rows: np.ndarray, scores: np.ndarray, flags) -> None:
    wide = [f"f{j}" for j in range(7)]
    base = {"pool": "cpu", "features": wide, "preprocessing": {"type": "none"}, "source": f"make-sklearn-fixtures seed={SEED}"}
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    full = {"schema": "fleetscore.model/v1", **base, **meta, "sha256": hashlib.sha256(onnx_bytes).hexdigest()}
    save(folder, onnx_bytes, full, wide, rows, scores, [-1 if f else 1 for f in flags])


def wide_fixtures(rng: np.random.Generator) -> None:
    """The 7-feature fixtures, exported the way the benchmark's fleets are (bench/make_fleet.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from make_fleet import autoencoder_onnx, pca_reconstruction, to_onnx_bytes
    from sklearn.decomposition import PCA

    train = wide_data(rng, 240)
    x64 = train.astype(np.float64)
    rows = wide_rows(rng, train)
    r64 = rows.astype(np.float64)

    poly = OneClassSVM(kernel="poly", degree=3, gamma="scale", nu=0.05).fit(x64)
    meta = {"input": {"name": "X"}, "output": {"name": "scores"}, "anomalyWhen": "below", "threshold": 0}
    meta["algorithm"] = "sklearn.svm.OneClassSVM(kernel=poly)"
    bytes_ = to_onnx_bytes(poly, "ocsvm_poly")
    write_wide("ocsvm-poly", bytes_, meta, rows, poly.decision_function(r64), poly.predict(r64) < 0)

    pca = PCA(n_components=3).fit(x64)
    err = ((pca.inverse_transform(pca.transform(r64)) - r64) ** 2).mean(axis=1)
    train_err = ((pca.inverse_transform(pca.transform(x64)) - x64) ** 2).mean(axis=1)
    threshold = float(np.quantile(train_err, 0.99) * 1.5)
    meta = {"input": {"name": "X"}, "output": {"name": "reconstruction", "reconstructionError": "mse"}}
    meta.update(anomalyWhen="above", threshold=threshold, algorithm="sklearn.decomposition.PCA + inverse_transform")
    write_wide("pca-reconstruction", pca_reconstruction(pca), meta, rows, err, err > threshold)

    w = {
        "w1": rng.standard_normal((4, 7)).astype(np.float32) * 0.5,
        "b1": rng.standard_normal(4).astype(np.float32) * 0.1,
        "w2": rng.standard_normal((7, 4)).astype(np.float32) * 0.5,
        "b2": train.mean(axis=0).astype(np.float32),
    }
    w64 = {k: v.astype(np.float64) for k, v in w.items()}
    forward = lambda x: np.tanh(x @ w64["w1"].T + w64["b1"]) @ w64["w2"].T + w64["b2"]  # noqa: E731
    err = np.abs(forward(r64) - r64).mean(axis=1)
    threshold = float(np.quantile(np.abs(forward(x64) - x64).mean(axis=1), 0.99) * 1.5)
    meta = {"input": {"name": "input"}, "output": {"name": "reconstruction", "reconstructionError": "mae"}}
    meta.update(anomalyWhen="above", threshold=threshold, algorithm="autoencoder 7-4-7 tanh")
    write_wide("autoencoder", autoencoder_onnx(w), meta, rows, err, err > threshold)


def pipeline_fixtures(rng: np.random.Generator) -> None:
    """The 4-feature fixtures exported as users export them: the scaler in the graph, a GaussianMixture's score_samples."""
    train = training_data(rng)
    x64 = train.astype(np.float64)

    svm = make_pipeline(StandardScaler(), OneClassSVM(kernel="rbf", gamma="scale", nu=0.05)).fit(x64)
    rows = case_rows(rng, train, svm.decision_function)
    meta = decision_meta("sklearn Pipeline(StandardScaler, OneClassSVM(kernel=rbf))", {"type": "none"})
    r64 = rows.astype(np.float64)
    write_fixture("ocsvm-pipeline", convert(svm, "ocsvm_pipeline"), meta, rows, svm.decision_function(r64), svm.predict(r64))

    forest = make_pipeline(StandardScaler(), IsolationForest(n_estimators=8, max_samples=24, random_state=SEED)).fit(x64)
    rows = case_rows(rng, train, forest.decision_function)
    meta = decision_meta("sklearn Pipeline(StandardScaler, IsolationForest)", {"type": "none"})
    r64 = rows.astype(np.float64)
    onx = convert(forest, "isoforest_pipeline")
    write_fixture("isoforest-pipeline", onx, meta, rows, forest.decision_function(r64), forest.predict(r64))

    gmm = GaussianMixture(n_components=3, random_state=SEED).fit(x64)
    threshold = float(np.quantile(gmm.score_samples(x64), 0.02))
    rows = case_rows(rng, train, lambda x: gmm.score_samples(x) - threshold)
    meta = decision_meta("sklearn.mixture.GaussianMixture score_samples", {"type": "none"})
    meta.update(output={"name": "score_samples", "column": 0}, threshold=threshold)
    onx = convert(gmm, "gaussian_mixture", options={id(gmm): {"score_samples": True}})
    scores = gmm.score_samples(rows.astype(np.float64))
    write_fixture("gaussian-mixture", onx, meta, rows, scores, np.where(scores < threshold, -1, 1))


def neighbors_fixtures(rng: np.random.Generator) -> None:
    """A LocalOutlierFactor(novelty=True): distances to the training rows by a Scan, its neighbours by TopK."""
    train = training_data(rng)
    x64 = train.astype(np.float64)
    lof = LocalOutlierFactor(n_neighbors=20, novelty=True).fit(x64)
    rows = case_rows(rng, train, lof.decision_function)
    meta = decision_meta("sklearn.neighbors.LocalOutlierFactor(novelty=True)", {"type": "none"})
    r64 = rows.astype(np.float64)
    write_fixture("lof", convert(lof, "lof"), meta, rows, lof.decision_function(r64), lof.predict(r64))
    # The same model exported as numpy's default float64 sample makes it: a double input, computed in double.
    onx = convert(lof, "lof_float64", dtype=np.float64)
    write_fixture("lof-float64", onx, meta, rows, lof.decision_function(r64), lof.predict(r64))


def float64_fixtures(rng: np.random.Generator) -> None:
    """A OneClassSVM exported from a float64 sample: a double SVMRegressor, which onnxruntime has no kernel for."""
    train = training_data(rng)
    x64 = train.astype(np.float64)
    svm = OneClassSVM(kernel="rbf", gamma="scale", nu=0.05).fit(x64)
    rows = case_rows(rng, train, svm.decision_function)
    meta = decision_meta("sklearn.svm.OneClassSVM(kernel=rbf), exported from a float64 sample", {"type": "none"})
    r64 = rows.astype(np.float64)
    onx = convert(svm, "ocsvm_float64", dtype=np.float64)
    try:
        ort.InferenceSession(onx, providers=["CPUExecutionProvider"])
        raise AssertionError("onnxruntime now runs a double SVMRegressor: test it against its session")
    except ort.capi.onnxruntime_pybind11_state.NotImplemented:
        pass
    write_fixture("ocsvm-float64", onx, meta, rows, svm.decision_function(r64), svm.predict(r64))


def column_fixtures(rng: np.random.Generator) -> None:
    """StandardScaler + OneClassSVM with one input per feature, [rows, 1] each, joined by a FeatureVectorizer: what
    skl2onnx writes for a model fitted on a pandas DataFrame (`to_onnx(model, df[:1])` types each column as an
    input; here the same input types are given by hand, so the venv needs no pandas)."""
    train = training_data(rng)
    x64 = train.astype(np.float64)
    svm = make_pipeline(StandardScaler(), OneClassSVM(kernel="rbf", gamma="scale", nu=0.05)).fit(x64)
    rows = case_rows(rng, train, svm.decision_function)
    types = [(name, FloatTensorType([None, 1])) for name in FEATURES]
    onx = finish(to_onnx(svm, initial_types=types, target_opset=TARGET_OPSET), "ocsvm_columns")
    assert [i.name for i in onx.graph.input] == FEATURES, [i.name for i in onx.graph.input]
    assert "FeatureVectorizer" in [n.op_type for n in onx.graph.node]
    onnx_bytes = onx.SerializeToString()
    meta = decision_meta("sklearn Pipeline(StandardScaler, OneClassSVM), one input per DataFrame column", {"type": "none"})
    folder = OUT / "ocsvm-columns"
    folder.mkdir(parents=True, exist_ok=True)
    # No sha256: the model registration stores has its columns joined into the input X, and so another checksum.
    meta = {"schema": "fleetscore.model/v1", **meta}
    r64 = rows.astype(np.float64)
    save(folder, onnx_bytes, meta, FEATURES, rows, svm.decision_function(r64), [int(v) for v in svm.predict(r64)])


def column_transformer_fixtures(rng: np.random.Generator) -> None:
    """A ColumnTransformer (StandardScaler on two columns, MinMaxScaler on one, the last passed through) +
    IsolationForest, fitted on a pandas DataFrame and exported from it as users do (`to_onnx(pipeline, df[:1])`): one
    input per column, each transformer's columns joined by a Concat. The DataFrame is float32: from numpy's float64
    skl2onnx 1.20 stops on this pipeline ("Conflicted constraint 'T'" at an Add of the forest's)."""
    # Imported here: make-classifier-fixtures.py loads this module in a venv without pandas.
    import pandas as pd

    train = pd.DataFrame(training_data(rng), columns=FEATURES)
    columns = ColumnTransformer(
        [
            ("standard", StandardScaler(), FEATURES[:2]),
            ("range", MinMaxScaler(), FEATURES[2:3]),
        ],
        remainder="passthrough",
    )
    forest = make_pipeline(columns, IsolationForest(n_estimators=8, max_samples=24, random_state=SEED)).fit(train)
    frame = lambda x: pd.DataFrame(np.asarray(x, dtype=np.float32), columns=FEATURES)  # noqa: E731
    rows = case_rows(rng, train.to_numpy(), lambda x: forest.decision_function(frame(x)))
    onx = finish(to_onnx(forest, train[:1], target_opset=TARGET_OPSET), "isoforest_columntransformer")
    assert [i.name for i in onx.graph.input] == FEATURES, [i.name for i in onx.graph.input]
    algorithm = "sklearn Pipeline(ColumnTransformer(StandardScaler, MinMaxScaler, passthrough), IsolationForest)"
    # No sha256: registration joins the columns into the input X, and so another checksum.
    meta = {"schema": "fleetscore.model/v1", **decision_meta(f"{algorithm}, fitted on a DataFrame", {"type": "none"})}
    scores = forest.decision_function(frame(rows))
    predict = [int(v) for v in forest.predict(frame(rows))]
    folder = OUT / "isoforest-columntransformer"
    folder.mkdir(parents=True, exist_ok=True)
    save(folder, onx.SerializeToString(), meta, FEATURES, rows, scores, predict)


def cluster_fixtures(rng: np.random.Generator) -> None:
    """StandardScaler + KMeans, the score a row's distance to the nearest centroid: `transform(x).min(axis=1)`, which
    model.json takes from skl2onnx's `scores` output (the distance to each centroid) with `"reduce": "min"`."""
    train = training_data(rng)
    x64 = train.astype(np.float64)
    kmeans = make_pipeline(StandardScaler(), KMeans(n_clusters=4, n_init=4, random_state=SEED)).fit(x64)
    threshold = float(np.quantile(kmeans.transform(x64).min(axis=1), 0.98))
    rows = case_rows(rng, train, lambda x: threshold - kmeans.transform(x).min(axis=1))
    meta = decision_meta("sklearn Pipeline(StandardScaler, KMeans) distance to the nearest centroid", {"type": "none"})
    meta.update(output={"name": "scores", "column": 0, "reduce": "min"}, anomalyWhen="above", threshold=threshold)
    scores = kmeans.transform(rows.astype(np.float64)).min(axis=1)
    write_fixture("kmeans", convert(kmeans, "kmeans"), meta, rows, scores, np.where(scores > threshold, -1, 1))


def elliptic_envelope_onnx(envelope: EllipticEnvelope, features: int) -> onnx.ModelProto:
    """An EllipticEnvelope as an ONNX graph of its squared Mahalanobis distance, (x - location_)ᵀ precision_
    (x - location_): Sub, MatMul, Mul, ReduceSum over the features, the graph fleetscore scores many devices at a
    time (`stacked-mahalanobis`). Its `decision_function` is -score - offset_: score it `"anomalyWhen": "above"`,
    `"threshold": -offset_`."""
    initializers = [
        numpy_helper.from_array(envelope.location_.astype(np.float32), "location"),
        numpy_helper.from_array(envelope.precision_.astype(np.float32), "precision"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
    ]
    nodes = [
        helper.make_node("Sub", ["X", "location"], ["centered"]),
        helper.make_node("MatMul", ["centered", "precision"], ["projected"]),
        helper.make_node("Mul", ["projected", "centered"], ["terms"]),
        helper.make_node("ReduceSum", ["terms", "axes"], ["score"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "elliptic_envelope",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, features])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [None])],
        initializers,
    )
    # IR version 8 (ONNX 1.12), as opset 17 asks: onnx.helper writes its own newest by default, which onnxruntime
    # 1.31 (IR 13 at most) refuses.
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def covariance_fixtures(rng: np.random.Generator) -> None:
    """An EllipticEnvelope as the Mahalanobis graph (elliptic_envelope_onnx); its cases hold scikit-learn's
    `mahalanobis` (the score the graph computes) and `predict`."""
    train = training_data(rng)
    x64 = train.astype(np.float64)
    envelope = EllipticEnvelope(contamination=0.05, random_state=SEED).fit(x64)
    rows = case_rows(rng, train, envelope.decision_function)
    onx = elliptic_envelope_onnx(envelope, len(FEATURES))
    onx.producer_name = f"onnx.helper (scripts/make-sklearn-fixtures.py) / scikit-learn {sklearn.__version__}"
    onnx.checker.check_model(onx, full_check=True)
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    assert np.allclose(session.run(["score"], {"X": rows})[0], envelope.mahalanobis(rows.astype(np.float64)), rtol=1e-4)
    meta = decision_meta("sklearn.covariance.EllipticEnvelope, squared Mahalanobis distance", {"type": "none"})
    meta.update(output={"name": "score", "column": 0}, anomalyWhen="above", threshold=float(-envelope.offset_))
    r64 = rows.astype(np.float64)
    scores, predict = envelope.mahalanobis(r64), envelope.predict(r64)
    write_fixture("elliptic-envelope", onx.SerializeToString(), meta, rows, scores, predict)


def mlp_fixtures(rng: np.random.Generator) -> None:
    """An MLPRegressor trained to reproduce its standardized input (an autoencoder in scikit-learn), exported by
    skl2onnx as it is: its converter ends the graph in a Reshape to [-1, 1], so the reconstruction [rows, 4] comes
    out flattened row by row, [rows * 4, 1]; scored by its mse against the input model.json standardizes."""
    from sklearn.neural_network import MLPRegressor

    train = training_data(rng)
    x64 = train.astype(np.float64)
    scaler = StandardScaler().fit(x64)
    z = scaler.transform(x64).astype(np.float32)
    mlp = MLPRegressor(hidden_layer_sizes=(2,), max_iter=3000, random_state=SEED).fit(z, z)
    error = lambda x: ((mlp.predict(x) - x) ** 2).mean(axis=1)  # noqa: E731
    threshold = float(np.quantile(error(z), 0.99))
    rows = case_rows(rng, train, lambda x: threshold - error(scaler.transform(x).astype(np.float32)))
    preprocessing = {"type": "standardize", "mean": [float(v) for v in scaler.mean_], "scale": [float(v) for v in scaler.scale_]}
    meta = decision_meta("sklearn.neural_network.MLPRegressor(hidden_layer_sizes=(2,)) reconstructing its input", preprocessing)
    meta.update(output={"name": "variable", "reconstructionError": "mse"}, anomalyWhen="above", threshold=threshold)
    scores = error(scaler.transform(rows.astype(np.float64)).astype(np.float32))
    write_fixture("mlp-autoencoder", convert(mlp, "mlp_autoencoder"), meta, rows, scores, np.where(scores > threshold, -1, 1))


def main() -> None:
    rng = np.random.default_rng(SEED)
    train = training_data(rng)
    x64 = train.astype(np.float64)

    # OneClassSVM on standardized features; the scaler lives in model.json, not in the graph.
    scaler = StandardScaler().fit(x64)
    svm = OneClassSVM(kernel="rbf", gamma="scale", nu=0.05).fit(scaler.transform(x64))
    svm_decision = lambda x: svm.decision_function(scaler.transform(x))  # noqa: E731
    svm_rows = case_rows(rng, train, svm_decision)
    write_fixture(
        "ocsvm",
        convert(svm, "ocsvm"),
        decision_meta(
            "sklearn.svm.OneClassSVM(kernel=rbf)",
            {
                "type": "standardize",
                "mean": [float(v) for v in scaler.mean_],
                "scale": [float(v) for v in scaler.scale_],
            },
        ),
        svm_rows,
        svm_decision(svm_rows.astype(np.float64)),
        svm.predict(scaler.transform(svm_rows.astype(np.float64))),
    )

    forest = IsolationForest(n_estimators=12, max_samples=24, random_state=SEED).fit(x64)
    forest_rows = case_rows(rng, train, forest.decision_function)
    iso_meta = write_fixture(
        "isoforest",
        convert(forest, "isoforest"),
        decision_meta("sklearn.ensemble.IsolationForest", {"type": "none"}),
        forest_rows,
        forest.decision_function(forest_rows.astype(np.float64)),
        forest.predict(forest_rows.astype(np.float64)),
    )

    # The same IsolationForest as a model package; fixed mtimes and owners keep the archive reproducible.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in ("model.onnx", "model.json"):
            data = (OUT / "isoforest" / member).read_bytes()
            info = tarfile.TarInfo(member)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    (OUT / "isoforest.tar.gz").write_bytes(gzip.compress(buf.getvalue(), mtime=0))
    wide_fixtures(np.random.default_rng(SEED + 1))
    pipeline_fixtures(np.random.default_rng(SEED + 2))
    neighbors_fixtures(np.random.default_rng(SEED + 3))
    float64_fixtures(np.random.default_rng(SEED + 4))
    column_fixtures(np.random.default_rng(SEED + 5))
    cluster_fixtures(np.random.default_rng(SEED + 6))
    covariance_fixtures(np.random.default_rng(SEED + 7))
    mlp_fixtures(np.random.default_rng(SEED + 8))
    column_transformer_fixtures(np.random.default_rng(SEED + 9))
    print(f"wrote {OUT} (isoforest sha256 {iso_meta['sha256'][:12]})")


if __name__ == "__main__":
    main()
