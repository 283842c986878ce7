"""Copies a store's window of aggregates into the next hours' windows, every timestamp moved by the hours, so that a
warm run scores a window its worker has not read (as the next hourly run does) with the same rows.

Usage: python bench/next_windows.py --aggregates DIR --window 2026-11-21T11 --to 2026-11-21T12[,2026-11-21T13...]
(the windows to write, the next hours in order)
"""

import argparse
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

HOUR_MS = 3_600_000


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--aggregates", required=True)
    p.add_argument("--window", required=True)
    p.add_argument("--to", required=True)
    a = p.parse_args()
    root = Path(a.aggregates)
    source = root / f"window={a.window}"
    for hours, target in enumerate(a.to.split(","), start=1):
        folder = root / f"window={target}"
        folder.mkdir(parents=True, exist_ok=True)
        for part in sorted(source.iterdir()):
            table = ipc.open_file(str(part)).read_all()
            ts = table.column("ts")
            moved = pc.cast(pc.add(pc.cast(ts, pa.int64()), hours * HOUR_MS), ts.type)
            table = table.set_column(table.schema.get_field_index("ts"), "ts", moved)
            with ipc.new_file(str(folder / part.name), table.schema) as w:
                w.write_table(table)


if __name__ == "__main__":
    main()
