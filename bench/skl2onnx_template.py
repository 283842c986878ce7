"""Writes the ONNX model skl2onnx 1.20 writes for a fitted OneClassSVM or PCA, without running skl2onnx per device.

skl2onnx spends milliseconds per model on its topology, parsing and optimisation passes (about 2 ms for a one-class
SVM, 20 ms for a PCA on this machine), whatever the model's size; a 100,000-device fleet pays that 100,000 times.
The graph it writes for one family is the same for every model of that family: only a few values change (the
SVMRegressor node's support vectors, coefficients, rho, support count and kernel parameters; PCA's mean and
projection initializers). A `Template` is one model converted by skl2onnx, whose values are replaced by another
fitted model's, computed as skl2onnx's converters compute them (operator_converters/support_vector_machines.py,
decomposition.py). `check_against_skl2onnx` compares the bytes with skl2onnx's own, whole model, byte for byte:
make_fleet.py runs it on the first devices of every generation and stops on any difference.
"""

import numpy as np
import onnx


def _set_floats(attribute, values) -> None:
    """Replaces a float-list attribute's values (stored as float32, as make_attribute stores them)."""
    del attribute.floats[:]
    attribute.floats.extend(np.asarray(values, dtype=np.float32).ravel().tolist())


def _fill_svm(model: onnx.ModelProto, svm) -> None:
    """The SVMRegressor attributes skl2onnx's `convert_sklearn_svm_regressor` derives from a OneClassSVM."""
    node = next(n for n in model.graph.node if n.op_type == "SVMRegressor")
    attributes = {a.name: a for a in node.attribute}
    _set_floats(attributes["coefficients"], svm.dual_coef_)
    _set_floats(attributes["support_vectors"], svm.support_vectors_)
    _set_floats(attributes["rho"], svm.intercept_)
    _set_floats(attributes["kernel_params"], [svm._gamma, svm.coef0, svm.degree])
    attributes["n_supports"].i = len(svm.support_)


def _fill_pca(model: onnx.ModelProto, pca) -> None:
    """skl2onnx's PCA initializers (`convert_truncated_svd`: float_data) and the appended inverse's (raw_data)."""
    tensors = {t.name: t for t in model.graph.initializer}
    for name, values in (("transform_matrix", pca.components_.T), ("mean", pca.mean_)):
        del tensors[name].float_data[:]
        tensors[name].float_data.extend(values.astype(np.float32).ravel().tolist())
    tensors["components"].raw_data = pca.components_.astype(np.float32).tobytes()
    tensors["pca_mean"].raw_data = pca.mean_.astype(np.float32).tobytes()


FILLERS = {"ocsvm-rbf": _fill_svm, "ocsvm-poly": _fill_svm, "pca-reconstruction": _fill_pca}


class Template:
    """One family's model as skl2onnx wrote it for one fitted estimator, refilled with another estimator's values."""

    def __init__(self, family: str, converted: bytes):
        self.fill = FILLERS[family]
        self.model = onnx.load_from_string(converted)

    def convert(self, estimator) -> bytes:
        """The bytes skl2onnx writes for `estimator` (checked by `check_against_skl2onnx`)."""
        self.fill(self.model, estimator)
        return self.model.SerializeToString()


def check_against_skl2onnx(device: str, ours: bytes, theirs: bytes) -> None:
    """Raises unless the template's bytes for a device are skl2onnx's own, byte for byte."""
    if ours != theirs:
        raise SystemExit(f"skl2onnx_template differs from skl2onnx for {device}: the template misses a value")
