"""Writes a fitted scikit-learn IsolationForest as exactly the ONNX model skl2onnx 1.20 writes for it, in milliseconds.

skl2onnx takes 8 to 25 s to convert one 100-tree forest (its conversion grows with the square of the trees), so a
fleet of 1,000 of them is hours. This writer emits the same nodes, attributes and initializers in the same order
(test/support/isolation-forest.ts does the same in TypeScript, checked against the skl2onnx fixture), and
`check_against_skl2onnx` compares its bytes with skl2onnx's own for a forest: make_fleet.py runs that check on the
first device of every generation and stops on any difference.
"""

import math

import numpy as np
from onnx import TensorProto, helper

EULER_GAMMA = 0.5772156649015329


def _average_path_length(n: int) -> float:
    """scikit-learn's `_average_path_length` of one node of n samples."""
    if n <= 1:
        return 0.0
    if n == 2:
        return 1.0
    return 2.0 * (math.log(n - 1.0) + EULER_GAMMA) - 2.0 * (n - 1.0) / n


def _threshold32(t: float) -> float:
    """The largest float32 at most `t`: a float32 row's `x <= t` is then the same test in float32 as in double
    (skl2onnx rounds thresholds down, not to nearest)."""
    t32 = np.float32(t)
    return float(np.nextafter(t32, np.float32(-np.inf)) if t32 > t else t32)


def _tree_nodes(tree, t: int) -> list:
    """The 27 nodes skl2onnx writes for tree t, in its stage order."""
    left, right = tree.children_left, tree.children_right
    n = len(left)
    leaf = left < 0
    leaves = [int(i) for i in np.flatnonzero(leaf)]
    depth = np.ones(n, dtype=np.int64)
    for i in range(n):
        if left[i] >= 0:
            depth[left[i]] = depth[right[i]] = depth[i] + 1
    ns, pl, m1 = f"node_sample{t}", f"path_length{t}", f"eqp2p_m1_{t}"
    ensemble = dict(
        n_targets=1,
        nodes_falsenodeids=[int(max(r, 0)) for r in right],
        nodes_featureids=[0 if leaf[i] else int(tree.feature[i]) for i in range(n)],
        nodes_hitrates=[1.0] * n,
        nodes_missing_value_tracks_true=[0] * n,
        nodes_modes=["LEAF" if leaf[i] else "BRANCH_LEQ" for i in range(n)],
        nodes_nodeids=list(range(n)),
        nodes_treeids=[0] * n,
        nodes_truenodeids=[int(max(l, 0)) for l in left],
        nodes_values=[0.0 if leaf[i] else _threshold32(tree.threshold[i]) for i in range(n)],
        post_transform="NONE",
        target_ids=[0] * len(leaves),
        target_nodeids=leaves,
        target_treeids=[0] * len(leaves),
        target_weights=[float(i) for i in leaves],
    )
    samples = [float(tree.n_node_samples[i]) for i in leaves]
    depths = [float(depth[i]) for i in leaves]
    ml, i64, f32 = "ai.onnx.ml", TensorProto.INT64, TensorProto.FLOAT

    def node(name, op, inputs, outputs, domain="", **attrs):
        return helper.make_node(op, inputs, outputs, name=name, domain=domain, **attrs)

    return [
        node(f"{ns}_Gather", "Gather", ["X", "node_sample0_Gathercst"], [f"{ns}_output0"], axis=1),
        node(f"{ns}_TreeEnsembleRegressor", "TreeEnsembleRegressor", [f"{ns}_output0"], [f"{ns}_Y0"], ml, **ensemble),
        node(f"{ns}_Cast", "Cast", [f"{ns}_Y0"], [f"{ns}_output02"], to=i64),
        node(f"{pl}_Cast", "Cast", [f"{ns}_Y0"], [f"{pl}_output0"], to=i64),
        node(f"{ns}_LabelEncoder", "LabelEncoder", [f"{ns}_output02"], [f"{ns}_Y02"], ml,
             keys_int64s=leaves, values_floats=samples),
        node(f"{pl}_LabelEncoder", "LabelEncoder", [f"{pl}_output0"], [f"{pl}_Y0"], ml,
             keys_int64s=leaves, values_floats=depths),
        node(f"{ns}_Reshape", "Reshape", [f"{ns}_Y02", "path_length0_Reshapecst"], [f"{ns}_reshaped0"], allowzero=0),
        node(f"{pl}_Reshape", "Reshape", [f"{pl}_Y0", "path_length0_Reshapecst"], [f"{pl}_reshaped0"], allowzero=0),
        node(f"eq2_{t}_Equal", "Equal", [f"{ns}_reshaped0", "dec_Powcst"], [f"eq2_{t}_C0"]),
        node(f"plus2_{t}_Greater", "Greater", [f"{ns}_reshaped0", "dec_Powcst"], [f"plus2_{t}_C0"]),
        node(f"eq2_{t}_Cast", "Cast", [f"eq2_{t}_C0"], [f"eq2_{t}_output0"], to=f32),
        node(f"plus2_{t}_Cast", "Cast", [f"plus2_{t}_C0"], [f"plus2_{t}_output0"], to=f32),
        node(f"eqp2ps{t}_Mul", "Mul", [f"plus2_{t}_output0", f"{ns}_reshaped0"], [f"eqp2ps{t}_C0"]),
        node(f"{m1}_Add", "Add", [f"eqp2ps{t}_C0", "eqp2p_m1_0_Addcst"], [f"{m1}_C0"]),
        node(f"eqp_ns{t}_Max", "Max", [f"eqp2ps{t}_C0", "eqp2p_m1_0_Maxcst"], [f"eqp_ns{t}_max0"]),
        node(f"{m1}_Max", "Max", [f"{m1}_C0", "eqp2p_m1_0_Maxcst"], [f"{m1}_max0"]),
        node(f"{m1}_Max1", "Max", [f"{m1}_C0", "eqp2p_m1_0_Maxcst1"], [f"{m1}_max02"]),
        node(f"eqp_ns{t}_Div", "Div", [f"{m1}_max02", f"eqp_ns{t}_max0"], [f"eqp_ns{t}_C01"]),
        node(f"eqp_log{t}_Log", "Log", [f"{m1}_max0"], [f"eqp_log{t}_output0"]),
        node(f"eqp_log{t}_Add", "Add", [f"eqp_log{t}_output0", "eqp_log0_Addcst"], [f"eqp_log{t}_C01"]),
        node(f"eqp_ns{t}_Mul", "Mul", [f"eqp_ns{t}_C01", "eqp_ns0_Mulcst"], [f"eqp_ns{t}_C0"]),
        node(f"eqp_log{t}_Mul", "Mul", [f"eqp_log{t}_C01", "dec_Powcst"], [f"eqp_log{t}_C0"]),
        node(f"avlog{t}_Add", "Add", [f"eqp_log{t}_C0", f"eqp_ns{t}_C0"], [f"avlog{t}_C01"]),
        node(f"avlog{t}_Mul", "Mul", [f"avlog{t}_C01", f"plus2_{t}_output0"], [f"avlog{t}_C0"]),
        node(f"avpl{t}_Add", "Add", [f"eq2_{t}_output0", f"avlog{t}_C0"], [f"avpl{t}_C0"]),
        node(f"depth{t}_Add", "Add", [f"{pl}_reshaped0", f"avpl{t}_C0"], [f"depth{t}_C01"]),
        node(f"depth{t}_Add1", "Add", [f"depth{t}_C01", "eqp2p_m1_0_Addcst"], [f"depth{t}_C0"]),
    ]


def isolation_forest_onnx(model, name: str) -> bytes:
    """The model skl2onnx writes for `model` with `to_onnx(model, X[:1], target_opset={"": 22, "ai.onnx.ml": 3})`
    (opset imports sorted, graph named `name`, as make_fleet.py's `to_onnx_bytes` leaves them); nodes stage by
    stage, tree by tree, where skl2onnx interleaves the same nodes in another topological order."""
    features = model.n_features_in_
    if any(list(f) != list(range(features)) for f in model.estimators_features_):
        raise ValueError("forest_onnx writes forests whose trees read every feature in order (max_features=1.0)")
    per_tree = [_tree_nodes(e.tree_, t) for t, e in enumerate(model.estimators_)]
    nodes = [tree[stage] for stage in range(len(per_tree[0])) for tree in per_tree]
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    nodes += [
        helper.make_node("Sum", [f"depth{t}_C0" for t in range(len(per_tree))], ["dec_sum0"], name="dec_Sum"),
        helper.make_node("Div", ["dec_sum0", "dec_Divcst"], ["dec_C0"], name="dec_Div"),
        helper.make_node("Neg", ["dec_C0"], ["dec_Y01"], name="dec_Neg"),
        helper.make_node("Pow", ["dec_Powcst", "dec_Y01"], ["dec_Z0"], name="dec_Pow"),
        helper.make_node("Neg", ["dec_Z0"], ["dec_Y0"], name="dec_Neg1"),
        helper.make_node("Add", ["dec_Y0", "dec_Addcst"], ["scores"], name="dec_Add"),
        helper.make_node("Less", ["scores", "eqp2p_m1_0_Maxcst1"], ["predict_C01"], name="predict_Less"),
        helper.make_node("Cast", ["predict_C01"], ["predict_output0"], name="predict_Cast", to=i64),
        helper.make_node("Mul", ["predict_output0", "predict_Mulcst"], ["predict_C0"], name="predict_Mul"),
        helper.make_node("Add", ["predict_C0", "predict_Addcst"], ["label"], name="predict_Add"),
    ]
    for n in nodes:
        n.domain = n.domain or ""
    normaliser = float(np.float32(len(per_tree) * _average_path_length(model.max_samples_)))
    initializer = [
        helper.make_tensor("dec_Powcst", f32, [1], [2.0]),
        helper.make_tensor("node_sample0_Gathercst", i64, [features], list(range(features))),
        helper.make_tensor("path_length0_Reshapecst", i64, [2], [-1, 1]),
        helper.make_tensor("eqp2p_m1_0_Addcst", f32, [1], [-1.0]),
        helper.make_tensor("eqp2p_m1_0_Maxcst", f32, [1], [1.0]),
        helper.make_tensor("eqp_log0_Addcst", f32, [1], [float(np.float32(EULER_GAMMA))]),
        helper.make_tensor("eqp2p_m1_0_Maxcst1", f32, [1], [0.0]),
        helper.make_tensor("eqp_ns0_Mulcst", f32, [1], [-2.0]),
        helper.make_tensor("dec_Divcst", f32, [1, 1], [normaliser]),
        helper.make_tensor("dec_Addcst", f32, [1], [0.5]),
        helper.make_tensor("predict_Mulcst", i64, [1], [-2]),
        helper.make_tensor("predict_Addcst", i64, [1], [1]),
    ]
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("X", f32, [None, features])],
        [
            helper.make_tensor_value_info("label", i64, [None, 1]),
            helper.make_tensor_value_info("scores", f32, [None, 1]),
        ],
        initializer,
    )
    onx = helper.make_model(
        graph,
        ir_version=10,
        producer_name="skl2onnx",
        producer_version="1.20.0",
        domain="ai.onnx",
        model_version=0,
        opset_imports=[helper.make_opsetid("", 22), helper.make_opsetid("ai.onnx.ml", 3)],
    )
    onx.doc_string = ""
    return onx.SerializeToString()


def check_against_skl2onnx(ours: bytes, theirs: bytes) -> None:
    """Raises unless `ours` and skl2onnx's `theirs` are the same model: every node (by name), attribute,
    initializer, input, output and opset, byte for byte; only the order of the nodes may differ."""
    import onnx

    a, b = onnx.load_from_string(ours), onnx.load_from_string(theirs)
    nodes = lambda m: {n.name: n.SerializeToString() for n in m.graph.node}  # noqa: E731
    strip = lambda m: m.graph.ClearField("node") or m.SerializeToString()  # noqa: E731
    na, nb = nodes(a), nodes(b)
    differ = sorted(k for k in na.keys() | nb.keys() if na.get(k) != nb.get(k))
    if differ or len(a.graph.node) != len(b.graph.node) or strip(a) != strip(b):
        raise SystemExit(f"forest_onnx differs from skl2onnx: nodes {differ[:5]} or the graph around them")
