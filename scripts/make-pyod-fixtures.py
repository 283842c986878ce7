# requirements: scikit-learn==1.9.1 skl2onnx==1.20.0 onnx==1.23.2 onnxruntime==1.31.1 numpy==2.4.6 pyod==3.6.7
"""Writes the PyOD fixtures under test/fixtures/sklearn/ (same layout as make-sklearn-fixtures.py).

PyOD's detectors score the other way round from scikit-learn's (higher is more anomalous) and flag a row when its
score is above `threshold_`. Those that wrap a scikit-learn estimator export it (`clf.detector_`), and model.json
maps PyOD's rule onto the exported output; what the docs (data-and-models.md, "Models from PyOD") say, checked here
against PyOD itself:
- pyod-iforest, pyod-ocsvm: skl2onnx's `scores` (scikit-learn's decision_function, PyOD's score negated),
  `"anomalyWhen": "below"`, `"threshold": -threshold_`;
- pyod-lof: the same `scores` (decision_function = -PyOD's score - offset_), threshold `-threshold_ - offset_`;
- pyod-knn: scikit-learn's NearestNeighbors on the training rows (PyOD keeps a tree, not an estimator; its radius
  unset, which skl2onnx wants), its `distance` output reduced by `max` (method "largest": the k-th distance),
  `"anomalyWhen": "above"`, `threshold_`;
- pyod-mcd: `clf.detector_` (MinCovDet) as the Mahalanobis graph (elliptic_envelope_onnx), above `threshold_`;
- pyod-gmm: `clf.detector_` (GaussianMixture) with its `score_samples` output (PyOD's score negated), below
  `-threshold_`.
cases.json holds each row's score on fleetscore's side of the mapping, computed from PyOD's decision_function, and
PyOD's predict (1, an outlier, written -1). Every fixture is also scored by onnxruntime here: its flags must be
PyOD's.

Run (from the repository root), in the classifier fixtures' venv (scripts/make-classifier-fixtures.py) with pyod:
  .cache/py-classifiers/bin/pip install pyod==3.6.7
  .cache/py-classifiers/bin/python scripts/make-pyod-fixtures.py
"""

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pyod
from pyod.models.gmm import GMM
from pyod.models.iforest import IForest
from pyod.models.knn import KNN
from pyod.models.lof import LOF
from pyod.models.mcd import MCD
from pyod.models.ocsvm import OCSVM
from sklearn.neighbors import NearestNeighbors

_spec = importlib.util.spec_from_file_location("sklearn_fixtures", Path(__file__).with_name("make-sklearn-fixtures.py"))
base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(base)

SEED = base.SEED + 200


def write(name: str, clf, onnx_bytes: bytes, output: dict, anomaly_when: str, threshold: float, score, rows) -> None:
    """The fixture of PyOD detector `clf`: `score(pyod_scores)` is its score on fleetscore's side."""
    r64 = rows.astype(np.float64)
    scores = score(clf.decision_function(r64))
    predict = np.where(clf.predict(r64) == 1, -1, 1)
    meta = base.decision_meta(f"PyOD {pyod.__version__} {type(clf).__name__}", {"type": "none"})
    meta.update(output=output, anomalyWhen=anomaly_when, threshold=threshold)
    meta["source"] = f"scripts/make-pyod-fixtures.py seed={SEED}"
    # Scored by onnxruntime as fleetscore reads the output: the flags must be PyOD's.
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    got = session.run([output["name"]], {"X": rows})[0]
    got = got.max(axis=1) if output.get("reduce") == "max" else got.reshape(len(rows), -1)[:, output["column"]]
    flags = np.where(got > threshold if anomaly_when == "above" else got < threshold, -1, 1)
    assert (flags == predict).all(), (name, flags, predict)
    assert np.allclose(got, scores, rtol=1e-4, atol=1e-4), (name, got, scores)
    base.write_fixture(name, onnx_bytes, meta, rows, scores, predict)


def main() -> None:
    rng = np.random.default_rng(SEED)
    train = base.training_data(rng)
    x64 = train.astype(np.float64)

    def rows_for(clf):
        # case_rows wants a decision function positive for inliers: PyOD's threshold less its score.
        return base.case_rows(rng, train, lambda x: clf.threshold_ - clf.decision_function(x))

    forest = IForest(n_estimators=12, max_samples=24, random_state=SEED).fit(x64)
    onx = base.convert(forest.detector_, "pyod_iforest")
    scores = {"name": "scores", "column": 0}
    write("pyod-iforest", forest, onx, scores, "below", -forest.threshold_, lambda s: -s, rows_for(forest))

    svm = OCSVM().fit(x64)
    onx = base.convert(svm.detector_, "pyod_ocsvm")
    write("pyod-ocsvm", svm, onx, scores, "below", -svm.threshold_, lambda s: -s, rows_for(svm))

    lof = LOF(n_neighbors=20, novelty=True).fit(x64)
    offset = lof.detector_.offset_
    onx = base.convert(lof.detector_, "pyod_lof")
    write("pyod-lof", lof, onx, scores, "below", -lof.threshold_ - offset, lambda s: -s - offset, rows_for(lof))

    knn = KNN(n_neighbors=5, method="largest").fit(x64)
    neighbours = NearestNeighbors(n_neighbors=5).fit(x64)
    # skl2onnx refuses an estimator with both a radius and n_neighbors; NearestNeighbors has a radius by default.
    neighbours.radius = None
    onx = base.convert(neighbours, "pyod_knn")
    distance = {"name": "distance", "column": 0, "reduce": "max"}
    write("pyod-knn", knn, onx, distance, "above", knn.threshold_, lambda s: s, rows_for(knn))

    mcd = MCD(random_state=SEED).fit(x64)
    model = base.elliptic_envelope_onnx(mcd.detector_, len(base.FEATURES))
    model.graph.name = "pyod_mcd"
    onnx.checker.check_model(model, full_check=True)
    score = {"name": "score", "column": 0}
    write("pyod-mcd", mcd, model.SerializeToString(), score, "above", mcd.threshold_, lambda s: s, rows_for(mcd))

    gmm = GMM(n_components=3, random_state=SEED).fit(x64)
    onx = base.convert(gmm.detector_, "pyod_gmm", options={id(gmm.detector_): {"score_samples": True}})
    samples = {"name": "score_samples", "column": 0}
    write("pyod-gmm", gmm, onx, samples, "below", -gmm.threshold_, lambda s: -s, rows_for(gmm))
    print(f"wrote the PyOD fixtures in {base.OUT}")


if __name__ == "__main__":
    main()
