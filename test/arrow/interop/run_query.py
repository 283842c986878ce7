"""Runs one SQL statement (read from stdin) in DuckDB, in the folder given, and prints the result as JSON.

Usage: python run_query.py FOLDER < query.sql    (prints {"columns": [...], "rows": [[...], ...]})
"""

import json
import os
import sys

import duckdb

os.chdir(sys.argv[1])
result = duckdb.sql(sys.stdin.read())
print(json.dumps({"columns": result.columns, "rows": result.fetchall()}, default=str))
