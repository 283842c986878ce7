"""Copies a window of aggregates into other hours' windows, every timestamp moved by the hours between them, so that
a warm run scores a window its worker has not read (as the next hourly run does) with the same rows; and writes a
window as Parquet (`--format parquet`, pyarrow's defaults: snappy pages, dictionary-encoded strings, as pandas and
pyarrow users write it) for the bench's `--input-format parquet`.

Usage: python bench/next_windows.py --source DIR --window 2026-11-21T11 --aggregates ROOT
       --to 2026-11-21T12[,2026-11-21T13...] [--format arrow|parquet]
(DIR holds the window's parts, Arrow IPC files or Parquet; each window of --to is written to ROOT/window=<id>/)
"""

import argparse
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

HOUR_MS = 3_600_000


def hours_between(source: str, target: str) -> int:
    fmt = "%Y-%m-%dT%H"
    return round((datetime.strptime(target, fmt) - datetime.strptime(source, fmt)).total_seconds() / 3600)


def read_part(path: Path) -> pa.Table:
    return pq.read_table(path) if path.suffix == ".parquet" else ipc.open_file(str(path)).read_all()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--source", required=True)
    p.add_argument("--window", required=True)
    p.add_argument("--aggregates", required=True)
    p.add_argument("--to", required=True)
    p.add_argument("--format", choices=["arrow", "parquet"], default="arrow")
    a = p.parse_args()
    parts = sorted(Path(a.source).glob("part-*"))
    for target in a.to.split(","):
        hours = hours_between(a.window, target)
        folder = Path(a.aggregates) / f"window={target}"
        folder.mkdir(parents=True, exist_ok=True)
        for part in parts:
            table = read_part(part)
            ts = table.column("ts")
            moved = pc.cast(pc.add(pc.cast(ts, pa.int64()), hours * HOUR_MS), ts.type)
            table = table.set_column(table.schema.get_field_index("ts"), "ts", moved)
            if a.format == "parquet":
                pq.write_table(table, folder / f"{part.stem}.parquet")
            else:
                with ipc.new_file(str(folder / f"{part.stem}.arrow"), table.schema) as w:
                    w.write_table(table)


if __name__ == "__main__":
    main()
