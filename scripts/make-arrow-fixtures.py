# requirements: polars==2.1.0 pandas==3.1.1 pyarrow==26.0.1 duckdb==2.0.1
"""Writes the Arrow test fixtures under test/fixtures/arrow/: one window's aggregates as other writers' defaults
write them, for the reader's tests (test/arrow/writer-fixtures.test.ts).

- polars-default.arrow: polars' `write_ipc` (device ids as Utf8View, ts as timestamp[us], a count as Int64);
- polars-categorical.arrows: polars' `write_ipc_stream` with the device id a `Categorical` (a Dictionary of Utf8View);
- pandas-default.feather: pandas' `to_feather` of its default dtypes (str, datetime64[us], int64; LZ4 compressed);
- duckdb-aggregates.arrow: a DuckDB aggregation (`avg` as double, `sum` of an integer as decimal128(38, 0)), written by
  pyarrow;
- the same as Parquet, each writer's own defaults: polars-default.parquet (`write_parquet`, ZSTD),
  pandas-default.parquet (`to_parquet`, pyarrow, Snappy) and duckdb-aggregates.parquet (DuckDB's `COPY ... TO`);
- many-batches-zstd.arrow: another table, 200 rows of 20 devices written by pyarrow as 20 record batches of 10 rows,
  ZSTD compressed: device ids as large_string (as pandas writes them), a string_view column (as polars does) of short
  and long values, nulls in it and in s00 (for test/arrow/ipc-coalesce.test.ts, which joins such batches);
- pandas-serial-ids.feather, pandas-serial-ids.parquet and pandas-serial-categorical.feather: the same rows with the
  devices keyed by integer serial numbers (int64, one of them past 2^53), as pandas writes them, and as a pandas
  `category` of them (a Dictionary of int64); expected-serial.json maps each serial to the device it stands for.

Three devices, one with an id over 12 bytes (a view then names a data buffer instead of holding it), four rows each
in the window 2026-11-21T12, the same rows in every file; expected.json holds them per device in time order.

Run: python scripts/make-arrow-fixtures.py   (from the repository root, in a venv with the packages above)
"""

import datetime as dt
import json
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.ipc as ipc

OUT = Path(__file__).resolve().parent.parent / "test" / "fixtures" / "arrow"
START = dt.datetime(2026, 11, 21, 12)
DEVICES = ["pump-1", "pump-2", "compressor-north-sector-0007"]


def rows():
    out = {"device_id": [], "ts": [], "s0": [], "s1": [], "events": []}
    for d, device in enumerate(DEVICES):
        for m in range(4):
            out["device_id"].append(device)
            out["ts"].append(START + dt.timedelta(minutes=15 * m, seconds=d))
            out["s0"].append(0.25 * m - d)
            out["s1"].append(1.5 + d * 0.125 - m)
            out["events"].append(3 * m + 40 * d)
    return out


def many_batches():
    n = 200
    sites = [None if i % 9 == 0 else ("north-sector-compressor-%d" % i if i % 2 else "s%d" % i) for i in range(n)]
    table = pa.table(
        {
            "device_id": pa.array([f"dev-{i // 10}" for i in range(n)], pa.large_string()),
            "ts": pa.array([1763726400000 + i * 1000 for i in range(n)], pa.timestamp("ms", tz="UTC")),
            "s00": pa.array([i / 3 if i % 7 else None for i in range(n)], pa.float32()),
            "s01": pa.array(list(range(n)), pa.int64()),
            "site": pa.array(sites, pa.string_view()),
        }
    )
    options = ipc.IpcWriteOptions(compression="zstd")
    with ipc.new_file(OUT / "many-batches-zstd.arrow", table.schema, options=options) as writer:
        for batch in table.to_batches(max_chunksize=10):
            writer.write_batch(batch)


SERIALS = [10234, 10235, 2**53 + 1]


def serial_ids(data):
    serial = dict(zip(DEVICES, SERIALS))
    frame = pd.DataFrame({**data, "device_id": [serial[d] for d in data["device_id"]]})
    assert str(frame["device_id"].dtype) == "int64", frame.dtypes
    frame.to_feather(OUT / "pandas-serial-ids.feather")
    frame.to_parquet(OUT / "pandas-serial-ids.parquet")
    frame.astype({"device_id": "category"}).to_feather(OUT / "pandas-serial-categorical.feather")
    (OUT / "expected-serial.json").write_text(json.dumps({str(v): k for k, v in serial.items()}, indent=1) + "\n")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    many_batches()
    data = rows()
    frame = pl.DataFrame(data)
    frame.write_ipc(OUT / "polars-default.arrow")
    frame.with_columns(pl.col("device_id").cast(pl.Categorical)).write_ipc_stream(OUT / "polars-categorical.arrows")
    pd.DataFrame(data).to_feather(OUT / "pandas-default.feather")
    rows_table = frame.to_arrow()
    query = "select device_id, ts, avg(s0) as s0, avg(s1) as s1, sum(events) as events from rows_table group by all"
    query += " order by device_id, ts"
    aggregated = duckdb.sql(query).to_arrow_table()
    assert str(aggregated.schema.field("events").type) == "decimal128(38, 0)", aggregated.schema
    feather.write_feather(aggregated, OUT / "duckdb-aggregates.arrow", compression="uncompressed")
    frame.write_parquet(OUT / "polars-default.parquet")
    pd.DataFrame(data).to_parquet(OUT / "pandas-default.parquet")
    duckdb.sql(f"copy ({query}) to '{OUT / 'duckdb-aggregates.parquet'}' (format parquet)")
    expected = {}
    for i, device in enumerate(data["device_id"]):
        ts = int((data["ts"][i] - dt.datetime(1970, 1, 1)).total_seconds() * 1000)
        expected.setdefault(device, []).append([ts, data["s0"][i], data["s1"][i], data["events"][i]])
    (OUT / "expected.json").write_text(json.dumps({"window": "2026-11-21T12", "devices": expected}, indent=1) + "\n")
    serial_ids(data)


main()
