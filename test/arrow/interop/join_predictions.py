"""Joins a committed window's predictions back to the rows they score, with pandas, as a user would.

Usage: python join_predictions.py STORE WINDOW    (prints one JSON line)

Reads every aggregates part of the window with pyarrow (the parts fleetscore read) and every prediction file the
window's manifest lists, then merges them on (device_id, ts): every prediction must find its row.
"""

import json
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq


def read_ipc(path):
    """An Arrow IPC file (Feather v2 is one) or stream, whichever `path` holds."""
    try:
        return ipc.open_file(path).read_all()
    except pa.ArrowInvalid:
        return ipc.open_stream(path).read_all()


def main():
    store, window = Path(sys.argv[1]), sys.argv[2]
    parts = sorted(p for p in (store / "aggregates" / f"window={window}").iterdir() if not p.name.startswith("_"))
    inputs = [read_ipc(p) for p in parts]
    rows = pa.concat_tables(inputs).to_pandas()
    manifest = json.loads((store / "predictions" / f"window={window}" / "_manifest.json").read_text())
    keys = [s["predictions"] for s in manifest["shards"] if s.get("predictions")]
    predictions = pa.concat_tables([pq.read_table(store / k) for k in keys])
    types = {str(t.schema.field("ts").type) for t in [predictions, *inputs]}
    frame = predictions.to_pandas()
    joined = frame.merge(rows, on=["device_id", "ts"], how="left", indicator=True)
    print(
        json.dumps(
            {
                "predictions": len(frame),
                "rows": len(rows),
                "matched": int((joined["_merge"] == "both").sum()),
                "ts_types": sorted(types),
                "files": keys,
            }
        )
    )


main()
