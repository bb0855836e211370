"""Performance benches for the gateway (issue 2, "Performance budget").

    python -m bench                 # all benches, one table; exit 1 if a budget is exceeded
    python -m bench.aws_calls       # AWS calls per warm request (budgeted)
    python -m bench.import_time     # import time of app.py relative to boto3 (budgeted)
    python -m bench.cold_start      # first request of the deployed package vs boto3 (budgeted)
    python -m bench.throughput      # requests/s through the handlers in-process (reported)
    python -m bench.message_log     # AWS calls per page of GET /messages (budgeted: 1 Query)
    python -m bench.routing         # on-net share with two operators' lines (budgeted: 95 %)
    python -m bench.bridge          # local stack: bridge SMS/s, API -> phone latency, overhead
    python -m bench.webhook_latency # local stack: inbox -> webhook receiver latency

The last two start ``python -m devstack`` as a subprocess on loopback (devstack/harness.py, via bench/_stack.py);
``python -m bench`` runs both on one stack start.

Each module has ``run() -> Report``; its ``rows`` go into the summary table and its
``details`` are printed under it (the end-to-end ones take ``run(stack=None)``). Kept light: importing ``bench`` imports no AWS library.
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `import app` / `import chalicelib` from any working directory
    sys.path.insert(0, str(REPO))

SUMMARY_COLUMNS = ["bench", "measure", "value", "budget", "result"]


@dataclass
class Report:
    name: str
    rows: list = field(default_factory=list)  # dicts keyed by SUMMARY_COLUMNS
    details: list = field(default_factory=list)  # extra lines printed after the table

    @property
    def ok(self) -> bool:
        return all(row.get("result") != "FAIL" for row in self.rows)

    def add(self, measure: str, value: str, budget: str = "-", result: str = "reported") -> None:
        """One row of this bench's table."""
        self.rows.append(
            {
                "bench": self.name,
                "measure": measure,
                "value": value,
                "budget": budget,
                "result": result,
            }
        )


def table(rows: list[dict], columns: list[str]) -> str:
    """A plain fixed-width table with a rule under the header."""
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    line = lambda r: "  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns).rstrip()  # noqa: E731
    return "\n".join(
        [line({c: c for c in columns}), "  ".join("-" * widths[c] for c in columns)]
        + [line(r) for r in rows]
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def spread_table(parts: list[tuple[str, list[float]]], ms) -> str:
    """Median and p95 of each named list of durations (seconds), written by ``ms``."""
    rows = [
        {"part": name, "median": ms(statistics.median(v)), "p95": ms(percentile(v, 0.95))}
        for name, v in parts
    ]
    return table(rows, ["part", "median", "p95"])


def verdict(value: float, budget: float) -> str:
    return "PASS" if value <= budget else "FAIL"


def print_reports(reports: list[Report]) -> int:
    rows = [row for report in reports for row in report.rows]
    print(table(rows, SUMMARY_COLUMNS))
    for report in reports:
        if report.details:
            print(f"\n[{report.name}]")
            print("\n".join(report.details))
    failed = [r.name for r in reports if not r.ok]
    print("\nover budget: " + (", ".join(failed) if failed else "nothing"))
    return 1 if failed else 0


def main_for(run) -> int:
    """Entry point of one bench module: run it, print its table, exit 1 when over budget."""
    return print_reports([run()])
