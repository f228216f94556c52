"""``python -m fastxent info`` and ``python -m fastxent bench``."""
from __future__ import annotations

import argparse
import sys


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _threads(text):
    from ._bench import parse_threads
    try:
        return parse_threads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastxent",
                                     description="fastxent's tools for people.")
    sub = parser.add_subparsers(dest="command", metavar="{info,bench}")
    sub.add_parser("info", help="how this build was made: compiler, OpenMP, SIMD, threads")
    bench = sub.add_parser(
        "bench", help="time fastxent against NumPy (and PyTorch) on the standard workloads",
        description="Time fastxent against its NumPy baseline and PyTorch (where installed) "
                    "on the workloads W1-W5, loss and loss+grad, at each thread count, "
                    "then W6: linear_cross_entropy against materialized logits and PyTorch. "
                    "The table goes to stdout, progress to stderr.")
    bench.add_argument("--quick", action="store_true",
                       help="W1 float32, W2, W4 and W5 only, fewer repeats (well under a minute)")
    bench.add_argument("--threads", type=_threads, default=None, metavar="N[,N...]",
                       help="thread counts to run fastxent and PyTorch at "
                            "(default: 1 and fastxent.get_num_threads())")
    bench.add_argument("--repeat", type=_positive_int, default=None, metavar="N",
                       help="timed calls per measurement, after one warm-up; the median is "
                            "reported (default 5, 3 with --quick)")
    bench.add_argument("--tiny", action="store_true",
                       help="tiny arrays: a smoke test of the command (the timings mean nothing)")
    args = parser.parse_args(argv)

    if args.command == "info":
        from ._info import report
        print(report())
        return 0
    if args.command == "bench":
        from ._bench import BenchError, run
        try:
            run(quick=args.quick, threads=args.threads, repeat=args.repeat, tiny=args.tiny)
        except BenchError as e:
            print(f"fastxent bench: fastxent disagrees with the NumPy baseline, "
                  f"so nothing was timed.\n{e}", file=sys.stderr)
            return 1
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
