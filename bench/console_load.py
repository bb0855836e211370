"""Bytes of the web console's first load, as a browser transfers them (gzip, as API Gateway
compresses answers over ``minimum_compression_size``), counted from the page the API serves.

The first load is the page, every file it names, and the default (French) catalogue;
another language adds its own catalogue only. Budget: 150 KB compressed, chart included.

    python -m bench.console_load
"""

from __future__ import annotations

import gzip
import re
import sys

from bench import Report, main_for, table, verdict

BUDGET_KB = 150
OTHER_CATALOGUES = ("ar.json", "en.json")


def run() -> Report:
    from chalicelib import console
    from chalicelib.assets import read

    page = console.page_response("/console").body
    names = [n for n in re.findall(r'"([\w.]+)\?v=\w+"', page) if n not in OTHER_CATALOGUES]
    files = [("index.html", page.encode())] + [
        (name, read(console.FILES.path(name)).encode()) for name in names
    ]
    rows = [
        {"file": name, "bytes": len(body), "gzip bytes": len(gzip.compress(body, 6))}
        for name, body in files
    ]
    total = sum(row["gzip bytes"] for row in rows) / 1024
    report = Report("console_load")
    report.add(
        "first load, compressed",
        f"{total:.1f} KB ({len(rows)} files)",
        f"<= {BUDGET_KB} KB",
        verdict(total, BUDGET_KB),
    )
    report.details = [
        "console first load, file by file",
        table(rows, ["file", "bytes", "gzip bytes"]),
    ]
    return report


if __name__ == "__main__":
    sys.exit(main_for(run))
