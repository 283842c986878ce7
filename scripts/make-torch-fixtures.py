# requirements: torch==2.15.0 onnx==1.23.2 onnxscript==0.7.2 numpy==2.4.6
"""Writes the PyTorch test fixtures under test/fixtures/torch/.

One autoencoder on 7 features (Linear, BatchNorm1d, GELU, Dropout, Linear, LayerNorm, Tanh, Linear, LeakyReLU,
Linear), trained with a fixed seed on standardized rows (the mean and scale go to model.json's `preprocessing`),
exported in eval mode the two ways torch.onnx.export does:

- autoencoder-dynamo: torch's default since 2.9 (`dynamo=True`): opset 20, BatchNorm folded into the Gemm, `Gelu`,
  `LayerNormalization`, and the weights as external data in model.onnx.data beside model.onnx;
- autoencoder-torchscript: `dynamo=False, opset_version=17`: `BatchNormalization`, GELU as `Erf` arithmetic,
  `LayerNormalization`, the weights inside model.onnx.

Each folder holds model.onnx (and model.onnx.data), model.json (output `reconstruction`, scored by its mse) and
cases.json: input rows, the mse torch computes for each (its own forward pass) and -1 where that is over the
threshold.

Run: python scripts/make-torch-fixtures.py   (from the repository root, in a venv with the packages above; torch
from PyPI brings its CUDA libraries, about 5 GB)
"""

import json
from pathlib import Path

import numpy as np
import onnx
import torch

OUT = Path(__file__).resolve().parent.parent / "test" / "fixtures" / "torch"
FEATURES = [f"f{i}" for i in range(7)]


def autoencoder() -> torch.nn.Module:
    n = len(FEATURES)
    return torch.nn.Sequential(
        torch.nn.Linear(n, 16),
        torch.nn.BatchNorm1d(16),
        torch.nn.GELU(),
        torch.nn.Dropout(0.1),
        torch.nn.Linear(16, 4),
        torch.nn.LayerNorm(4),
        torch.nn.Tanh(),
        torch.nn.Linear(4, 16),
        torch.nn.LeakyReLU(0.1),
        torch.nn.Linear(16, n),
    )


def main() -> None:
    torch.manual_seed(20261205)
    rng = np.random.default_rng(20261205)
    k = len(FEATURES)
    mean, scale = rng.normal(0, 3, k), rng.uniform(0.5, 2, k)
    train = (rng.normal(size=(400, k)) * scale + mean).astype(np.float32)
    mu, sd = train.mean(axis=0), train.std(axis=0)
    x = torch.tensor((train - mu) / sd)
    model = autoencoder()
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(200):
        optimizer.zero_grad()
        loss = ((model(x) - x) ** 2).mean()
        loss.backward()
        optimizer.step()
    model.eval()

    def mse(rows: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            z = torch.tensor((rows - mu) / sd)
            return ((model(z) - z).double() ** 2).mean(dim=1).numpy()

    threshold = float(np.quantile(mse(train), 0.99))
    rows = (rng.normal(size=(12, k)) * scale + mean).astype(np.float32)
    rows[[2, 7]] += (6 * scale).astype(np.float32)
    scores = mse(rows)
    meta = {
        "schema": "fleetscore.model/v1",
        "pool": "cpu",
        "features": FEATURES,
        "input": {"name": "input"},
        "output": {"name": "reconstruction", "reconstructionError": "mse"},
        "anomalyWhen": "above",
        "threshold": threshold,
        "preprocessing": {"type": "standardize", "mean": mu.tolist(), "scale": sd.tolist()},
        "algorithm": "torch autoencoder 7-16-4-16-7 (BatchNorm, GELU, Dropout, LayerNorm, Tanh, LeakyReLU)",
        "source": f"make-torch-fixtures torch {torch.__version__}",
    }
    cases = {
        "features": FEATURES,
        "rows": rows.tolist(),
        "decisionFunction": scores.tolist(),
        "predict": [-1 if s > threshold else 1 for s in scores],
    }
    names = {"input_names": ["input"], "output_names": ["reconstruction"]}
    sample = (x[:2],)
    for name, dynamo in (("autoencoder-dynamo", True), ("autoencoder-torchscript", False)):
        folder = OUT / name
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        path = folder / "model.onnx"
        if dynamo:
            n = torch.export.Dim("N")
            torch.onnx.export(model, sample, str(path), dynamo=True, dynamic_shapes=({0: n},), **names)
        else:
            axes = {"input": {0: "N"}, "reconstruction": {0: "N"}}
            torch.onnx.export(model, sample, str(path), dynamo=False, opset_version=17, dynamic_axes=axes, **names)
        (folder / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
        (folder / "cases.json").write_text(json.dumps(cases, indent=2) + "\n")
        ops = [node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node]
        files = sorted(p.name for p in folder.iterdir())
        print(f"{name}: {files}, nodes {ops}")
    assert sorted(set(cases["predict"])) == [-1, 1], "the cases need both labels"


if __name__ == "__main__":
    main()
