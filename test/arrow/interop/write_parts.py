"""Writes aggregates parts the way pyarrow and pandas users do, with their defaults, for the interoperability test.

Usage: python write_parts.py WINDOW_FOLDER_12 WINDOW_FOLDER_13 START_MS_12 START_MS_13

Window 12 (pyarrow, timestamp[us, UTC], sub-millisecond times): Feather v2 with the default LZ4 compression, Feather
with ZSTD, an uncompressed IPC file, a ZSTD IPC stream, and a `_SUCCESS` marker. Window 13 (pandas, naive
datetime64[ns], sub-microsecond times): DataFrame.to_feather, named `.ipc`.
"""

import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.ipc as ipc

ROWS = 10
MINUTE_US = 60_000_000


def table(devices, start_us, offset_us):
    ids, ts, s00, s01 = [], [], [], []
    for d, device in enumerate(devices):
        for i in range(ROWS):
            ids.append(device)
            ts.append(start_us + i * MINUTE_US + offset_us)
            s00.append(float(d + i))
            s01.append(float(-i))
    return pa.table(
        {
            "device_id": pa.array(ids, pa.string()),
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "s00": pa.array(s00, pa.float64()),
            "s01": pa.array(s01, pa.float32()),
        }
    )


def main():
    w12, w13, start12, start13 = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    w12.mkdir(parents=True, exist_ok=True)
    w13.mkdir(parents=True, exist_ok=True)
    us12 = start12 * 1000
    feather.write_feather(table(["dev-a", "dev-b"], us12, 123_456), w12 / "part-lz4.feather")
    feather.write_feather(table(["dev-c"], us12, 1), w12 / "part-zstd.feather", compression="zstd")
    with ipc.new_file(w12 / "part-plain.arrow", table(["dev-d"], us12, 999).schema) as w:
        w.write_table(table(["dev-d"], us12, 999))
    zstd = ipc.IpcWriteOptions(compression="zstd")
    with ipc.new_stream(w12 / "part-stream.arrows", table(["dev-e"], us12, 0).schema, options=zstd) as w:
        w.write_table(table(["dev-e"], us12, 0))
    (w12 / "_SUCCESS").write_bytes(b"")

    ns13 = start13 * 1_000_000
    frame = pd.DataFrame(
        {
            "device_id": [d for d in ["dev-a", "dev-f"] for _ in range(ROWS)],
            "ts": pd.to_datetime([ns13 + i * MINUTE_US * 1000 + 123_456_789 for _ in range(2) for i in range(ROWS)]),
            "s00": [float(i) for _ in range(2) for i in range(ROWS)],
            "s01": [float(-i) for _ in range(2) for i in range(ROWS)],
        }
    )
    assert str(frame["ts"].dtype) == "datetime64[ns]", frame["ts"].dtype
    frame.to_feather(w13 / "part-00000.ipc")


main()
