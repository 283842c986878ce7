# requirements: scikit-learn==1.9.1 skl2onnx==1.20.0 onnx==1.23.2 onnxruntime==1.31.1 numpy==2.4.6 xgboost-cpu==3.2.0 lightgbm==4.7.0 onnxmltools==1.16.0
"""Writes the supervised-classifier fixtures under test/fixtures/sklearn/ (same layout as make-sklearn-fixtures.py).

A team with labelled faults scores devices by a classifier's probability of a fault. On the 4 features of the
sklearn fixtures, normal rows and two kinds of fault ("hot": temperature and current up; "leak": pressure down),
with a fixed seed:
- rf-classifier: RandomForestClassifier on string labels ("anomaly", "normal"), skl2onnx, score = the probability of
  "anomaly" (column 0: scikit-learn sorts the classes), anomaly above 0.5;
- gbdt-classifier: GradientBoostingClassifier on the three classes, score = the probability of normal (column 0),
  anomaly below 0.5;
- logreg-classifier: StandardScaler + LogisticRegression, binary, in the graph (Scaler, LinearClassifier);
- xgboost-classifier: XGBClassifier, binary, converted by onnxmltools;
- lightgbm-classifier: LGBMClassifier on the three classes, converted by onnxmltools;
- extra-trees-classifier: ExtraTreesClassifier on the three classes (every leaf weighs every class, as in any
  scikit-learn forest of three classes or more), score = the probability of normal (column 0), anomaly below 0.5.
All exported with ZipMap off (the probabilities a tensor). cases.json holds the library's predict_proba column.

Run (from the repository root), in a venv of its own with the versions pinned on the first line:
  python3 -m venv .cache/py-classifiers
  .cache/py-classifiers/bin/pip install <the pinned versions>
  .cache/py-classifiers/bin/python scripts/make-classifier-fixtures.py
"""

import hashlib
import importlib.util
from pathlib import Path

import lightgbm
import numpy as np
import onnx
import onnxmltools
import skl2onnx
import sklearn
import xgboost
from onnxmltools.convert.common.data_types import FloatTensorType
from skl2onnx import to_onnx
from sklearn.ensemble import ExtraTreesClassifier, GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

_spec = importlib.util.spec_from_file_location("sklearn_fixtures", Path(__file__).with_name("make-sklearn-fixtures.py"))
base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(base)

SEED = base.SEED + 100
# onnxmltools 1.16 converts up to ai.onnx 15.
BOOSTING_OPSET = 15


def faults(rng: np.random.Generator, normal: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` hot rows (class 1) and `n` leak rows (class 2), shifted from normal rows by 3 to 6 spreads."""
    std = normal.std(axis=0)
    hot = normal[rng.integers(0, len(normal), n)] + std * np.array([1, 0, 0, 1]) * rng.uniform(3, 6, (n, 4))
    leak = normal[rng.integers(0, len(normal), n)] - std * np.array([0, 0, 1, 0]) * rng.uniform(3, 6, (n, 4))
    return np.concatenate([hot, leak]).astype(np.float32), np.repeat([1, 2], n)


def labelled(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    normal = base.training_data(rng)
    bad, classes = faults(rng, normal, 60)
    return np.concatenate([normal, bad]), np.concatenate([np.zeros(len(normal), dtype=int), classes])


def case_rows(rng: np.random.Generator, proba_anomaly) -> np.ndarray:
    """10 rows the model calls normal and 10 it calls a fault, none within 1e-3 of 0.5."""
    normal = base.training_data(rng)[:60]
    bad, _ = faults(rng, normal, 30)
    candidates = np.concatenate([normal, bad])
    p = proba_anomaly(candidates.astype(np.float64))
    keep = np.abs(p - 0.5) > 1e-3
    return np.concatenate([candidates[keep & (p < 0.5)][:10], candidates[keep & (p > 0.5)][:10]])


def finish(onx: onnx.ModelProto, name: str) -> bytes:
    opsets = sorted(((o.domain, o.version) for o in onx.opset_import))
    del onx.opset_import[:]
    onx.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in opsets)
    onx.graph.name = name
    onnx.checker.check_model(onx, full_check=True)
    return onx.SerializeToString()


def write(name: str, onnx_bytes: bytes, output: str, column: int, anomaly_when: str, algorithm: str, rows, scores):
    meta = {
        "schema": "fleetscore.model/v1",
        "pool": "cpu",
        "features": base.FEATURES,
        "input": {"name": onnx.load_from_string(onnx_bytes).graph.input[0].name},
        "output": {"name": output, "column": column},
        "anomalyWhen": anomaly_when,
        "threshold": 0.5,
        "preprocessing": {"type": "none"},
        "algorithm": algorithm,
        "source": f"scripts/make-classifier-fixtures.py seed={SEED}",
        "sha256": hashlib.sha256(onnx_bytes).hexdigest(),
    }
    anomalous = scores > 0.5 if anomaly_when == "above" else scores < 0.5
    folder = base.OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    base.save(folder, onnx_bytes, meta, base.FEATURES, rows, scores, [-1 if a else 1 for a in anomalous])


def skl(model, name: str) -> bytes:
    onx = to_onnx(model, np.zeros((1, 4), dtype=np.float32), target_opset=base.TARGET_OPSET, options={"zipmap": False})
    onx.producer_name = f"skl2onnx {skl2onnx.__version__} / scikit-learn {sklearn.__version__}"
    return finish(onx, name)


def main() -> None:
    rng = np.random.default_rng(SEED)
    x, classes = labelled(rng)
    x64 = x.astype(np.float64)
    binary = (classes > 0).astype(int)
    words = np.where(binary == 1, "anomaly", "normal")
    initial = [("input", FloatTensorType([None, 4]))]

    rf = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=SEED).fit(x64, words)
    assert list(rf.classes_) == ["anomaly", "normal"]
    rows = case_rows(rng, lambda r: rf.predict_proba(r)[:, 0])
    write("rf-classifier", skl(rf, "rf_classifier"), "probabilities", 0, "above",
          "sklearn RandomForestClassifier, string labels", rows, rf.predict_proba(rows.astype(np.float64))[:, 0])

    gb = GradientBoostingClassifier(n_estimators=10, max_depth=2, random_state=SEED).fit(x64, classes)
    rows = case_rows(rng, lambda r: 1 - gb.predict_proba(r)[:, 0])
    write("gbdt-classifier", skl(gb, "gbdt_classifier"), "probabilities", 0, "below",
          "sklearn GradientBoostingClassifier, 3 classes", rows, gb.predict_proba(rows.astype(np.float64))[:, 0])

    lr = make_pipeline(StandardScaler(), LogisticRegression()).fit(x64, binary)
    rows = case_rows(rng, lambda r: lr.predict_proba(r)[:, 1])
    write("logreg-classifier", skl(lr, "logreg_classifier"), "probabilities", 1, "above",
          "sklearn Pipeline(StandardScaler, LogisticRegression)", rows, lr.predict_proba(rows.astype(np.float64))[:, 1])

    xg = xgboost.XGBClassifier(n_estimators=10, max_depth=3, random_state=0).fit(x, binary)
    rows = case_rows(rng, lambda r: xg.predict_proba(r.astype(np.float32))[:, 1])
    onx = onnxmltools.convert_xgboost(xg, initial_types=initial, target_opset=BOOSTING_OPSET)
    onx.producer_name = f"onnxmltools {onnxmltools.__version__} / xgboost {xgboost.__version__}"
    write("xgboost-classifier", finish(onx, "xgboost_classifier"), "probabilities", 1, "above",
          "xgboost XGBClassifier", rows, xg.predict_proba(rows)[:, 1].astype(np.float64))

    lg = lightgbm.LGBMClassifier(n_estimators=10, num_leaves=7, random_state=0, verbose=-1).fit(x, classes)
    rows = case_rows(rng, lambda r: 1 - lg.predict_proba(r.astype(np.float32))[:, 0])
    onx = onnxmltools.convert_lightgbm(lg, initial_types=initial, target_opset=BOOSTING_OPSET, zipmap=False)
    onx.producer_name = f"onnxmltools {onnxmltools.__version__} / lightgbm {lightgbm.__version__}"
    write("lightgbm-classifier", finish(onx, "lightgbm_classifier"), "probabilities", 0, "below",
          "lightgbm LGBMClassifier, 3 classes", rows, lg.predict_proba(rows)[:, 0].astype(np.float64))

    et = ExtraTreesClassifier(n_estimators=10, max_depth=4, random_state=SEED).fit(x64, classes)
    rows = case_rows(rng, lambda r: 1 - et.predict_proba(r)[:, 0])
    write("extra-trees-classifier", skl(et, "extra_trees_classifier"), "probabilities", 0, "below",
          "sklearn ExtraTreesClassifier, 3 classes", rows, et.predict_proba(rows.astype(np.float64))[:, 0])
    print(f"wrote the classifier fixtures to {base.OUT}")


if __name__ == "__main__":
    main()
