"""Run every bench and print one table: ``python -m bench`` (``make bench``)."""
import sys
import time

from bench import print_reports


def main() -> int:
    # aws_calls first: it installs the botocore hook before any botocore session exists.
    from bench import aws_calls, import_time, throughput

    started = time.perf_counter()
    reports = [aws_calls.run(), import_time.run(), throughput.run()]
    code = print_reports(reports)
    print(f"benches took {time.perf_counter() - started:.1f}s")
    return code


if __name__ == "__main__":
    sys.exit(main())
