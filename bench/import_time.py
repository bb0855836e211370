"""Import time of the Lambda module (``import app``) as a ratio to ``import boto3``.

Both are imported in fresh interpreters, alternately, RUNS times each; the time is taken
inside the child with perf_counter around the import, so interpreter start-up is left
out. Ratio = median(app) / median(boto3). A ``python -X importtime`` run of each then
shows where app's import time goes: the top modules by self time, and the packages app
imports on top of what ``import boto3`` imports.

    python -m bench.import_time
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from collections import defaultdict

from bench import REPO, Report, main_for, table, verdict

BUDGET = 1.3
RUNS = 7
TOP = 10
TIMER = (
    "import time; started = time.perf_counter(); import {module}; "
    "print(time.perf_counter() - started)"
)


def _env() -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPROFILEIMPORTTIME", "PYTHONDONTWRITEBYTECODE", "PYTHONPATH")
    }
    env["PYTHONPATH"] = str(REPO)  # like the Lambda: app.py and chalicelib/ at the top
    return env


def _child(args: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, *args], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise RuntimeError(f"python {' '.join(args)} failed:\n{result.stderr}")
    return result


def import_seconds(module: str) -> float:
    return float(_child(["-c", TIMER.format(module=module)]).stdout.strip())


def importtime(module: str) -> list[tuple[str, int, int]]:
    """(module, self µs, cumulative µs) for every module ``import module`` loads."""
    rows = []
    for line in _child(["-X", "importtime", "-c", f"import {module}"]).stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line[len("import time:") :].split("|", 2)
        rows.append((name.strip(), int(own), int(cumulative)))
    return rows


def _ms(us: float) -> str:
    return f"{us / 1000:.1f}"


def measure() -> dict:
    for module in ("app", "boto3"):  # fill __pycache__ and the page cache first
        import_seconds(module)
    times = {"app": [], "boto3": []}
    for _ in range(RUNS):
        for module in ("app", "boto3"):
            times[module].append(import_seconds(module))
    app, boto3 = statistics.median(times["app"]), statistics.median(times["boto3"])
    return {
        "times": times,
        "app": app,
        "boto3": boto3,
        "ratio": app / boto3,
        "app_modules": importtime("app"),
        "boto3_modules": importtime("boto3"),
        "startup": {name for name, _, _ in importtime("sys")},
    }


def run() -> Report:
    m = measure()
    report = Report("import_time")
    report.rows.append(
        {
            "bench": "import_time",
            "measure": f"import app / import boto3 (median of {RUNS})",
            "value": f"{m['ratio']:.2f}  ({m['app'] * 1000:.0f} ms / {m['boto3'] * 1000:.0f} ms)",
            "budget": f"<= {BUDGET}",
            "result": verdict(m["ratio"], BUDGET),
        }
    )

    app_modules, boto3_loaded = m["app_modules"], {name for name, _, _ in m["boto3_modules"]}
    # modules the interpreter loads before any import (site, encodings...): not app's doing
    app_modules = [row for row in app_modules if row[0] not in m["startup"]]
    top = sorted(app_modules, key=lambda row: -row[1])[:TOP]
    extra: dict[str, list] = defaultdict(lambda: [0, 0])
    for name, own, _ in app_modules:
        if name not in boto3_loaded:
            package = name.split(".")[0]
            extra[package][0] += own
            extra[package][1] += 1
    extra_rows = [
        {"package": p, "self ms": _ms(own), "modules": n}
        for p, (own, n) in sorted(extra.items(), key=lambda kv: -kv[1][0])[:TOP]
    ]
    shared = sum(own for name, own, _ in app_modules if name in boto3_loaded)
    pairs = statistics.median(
        a / b for a, b in zip(m["times"]["app"], m["times"]["boto3"], strict=True)
    )
    report.details = [
        f"median of the per-pair ratios (cross-check, less sensitive to load drift): {pairs:.2f}",
        "runs (ms): app "
        + " ".join(f"{t * 1000:.0f}" for t in m["times"]["app"])
        + " | boto3 "
        + " ".join(f"{t * 1000:.0f}" for t in m["times"]["boto3"]),
        "",
        f"python -X importtime -c 'import app': top {TOP} modules by self time "
        "(interpreter start-up modules left out)",
        table(
            [{"module": n, "self ms": _ms(s), "cumulative ms": _ms(c)} for n, s, c in top],
            ["module", "self ms", "cumulative ms"],
        ),
        "",
        f"self time of modules app loads that boto3 does not load, by top-level package "
        f"(modules it shares with boto3: {_ms(shared)} ms self in total)",
        table(extra_rows, ["package", "self ms", "modules"]),
    ]
    return report


if __name__ == "__main__":
    sys.exit(main_for(run))
