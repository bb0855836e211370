"""Run every bench and print one table: ``python -m bench`` (``make bench``).

The in-process benches first; then one local stack (``python -m devstack``) is started for
the end-to-end benches (bridge, webhook_latency) and stopped with SIGINT at the end;
fair_share runs last on a stack of its own (its bridge is paced). A bench that raises becomes a FAIL row (its error under the table) and the others still run.
"""

import sys
import time
import traceback

from bench import Report, print_reports


def _failed(name: str, error: Exception) -> Report:
    """A FAIL row for a bench that raised; the end of its traceback under the table."""
    report = Report(name)
    report.rows.append(
        {
            "bench": name,
            "measure": "bench run",
            "value": f"error: {type(error).__name__}",
            "budget": "-",
            "result": "FAIL",
        }
    )
    report.details = traceback.format_exc().rstrip().splitlines()[-40:]
    return report


def _attempt(name: str, run, *args) -> Report:
    try:
        return run(*args)
    except Exception as error:  # noqa: BLE001  reported as a failed bench, not a crash
        return _failed(name, error)


def main() -> int:
    # aws_calls first: it installs the botocore hook before any botocore session exists.
    from bench import (
        _stack,
        aws_calls,
        bridge,
        cold_start,
        console_load,
        fair_share,
        import_time,
        message_log,
        routing,
        sim_bank,
        throughput,
        webhook_latency,
    )

    started = time.perf_counter()
    reports = [
        _attempt("aws_calls", aws_calls.run),
        _attempt("message_log", message_log.run),
        _attempt("import_time", import_time.run),
        _attempt("console_load", console_load.run),
        _attempt("throughput", throughput.run),
        _attempt("routing", routing.run),
    ]
    try:
        stack = _stack.start()
    except Exception as error:  # noqa: BLE001  the in-process figures are still printed
        reports.append(_failed("stack", error))
    else:
        try:
            reports += [
                _attempt("bridge", bridge.run, stack),
                _attempt("webhook_latency", webhook_latency.run, stack),
            ]
        finally:
            stopped = _stack.finish(stack)
        reports.append(_stack.with_stop(Report("stack"), stopped))
    reports.append(_attempt("fair_share", fair_share.run))  # a stack of its own, paced
    reports.append(_attempt("cold_start", cold_start.run))  # fresh processes, own moto server
    reports.append(_attempt("sim_bank", sim_bank.run))  # 16 fake modems, own moto server
    code = print_reports(reports)
    print(f"benches took {time.perf_counter() - started:.1f}s")
    return code


if __name__ == "__main__":
    sys.exit(main())
