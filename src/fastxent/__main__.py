"""``python -m fastxent info`` and ``python -m fastxent bench``."""
from __future__ import annotations

import argparse
import sys


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _parsed(parse):
    """An argparse type from one of the bench's parsers (a ValueError says why)."""
    def convert(text):
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return convert


def _threads(text):
    from ._bench import parse_threads
    return _parsed(parse_threads)(text)


def _peers(text):
    from ._peers import parse_peers
    return _parsed(parse_peers)(text)


def _sections(text):
    from ._bench import parse_sections
    return _parsed(parse_sections)(text)


def _plot_file(text):
    try:
        import matplotlib  # noqa: F401  # optional
    except ImportError:
        raise argparse.ArgumentTypeError(
            "--plot draws with matplotlib, which is not installed here "
            "(python -m pip install matplotlib)") from None
    if not text.lower().endswith((".png", ".svg", ".pdf")):
        raise argparse.ArgumentTypeError(f"--plot takes a .png, .svg or .pdf file name, got {text!r}")
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastxent",
                                     description="fastxent's tools for people.")
    sub = parser.add_subparsers(dest="command", metavar="{info,bench}")
    sub.add_parser("info", help="how this build was made: compiler, OpenMP, SIMD, threads")
    bench = sub.add_parser(
        "bench", help="time fastxent against NumPy, PyTorch, JAX and scikit-learn",
        description="Time fastxent against its NumPy baseline and its peers (PyTorch, JAX, "
                    "scikit-learn, where installed) on the workloads W1-W5: loss, loss+grad "
                    "and logsumexp at each thread count, with the memory floors; then small "
                    "calls (µs), a training loop between NumPy matmuls, and W6 "
                    "(linear_cross_entropy).  The tables go to stdout, progress to stderr.")
    bench.add_argument("--quick", action="store_true",
                       help="W1 float32, W2, W4 and W5 only, fewer repeats")
    bench.add_argument("--threads", type=_threads, default=None, metavar="N[,N...]",
                       help="thread counts to run fastxent and its peers at "
                            "(default: 1 and fastxent.get_num_threads())")
    bench.add_argument("--repeat", type=_positive_int, default=None, metavar="N",
                       help="timed calls per measurement, after one warm-up; the median is "
                            "reported (default 5, 3 with --quick)")
    bench.add_argument("--peers", type=_peers, default=None, metavar="NAME[,NAME...]",
                       help="the peers to time: some of torch, jax, sklearn, or none "
                            "(default: every one that imports)")
    bench.add_argument("--workloads", type=_sections, default=None, metavar="NAME[,NAME...]",
                       help="what to run: some of W1-W6, small, loop (default: all; with "
                            "--quick, W3 and W1's float64 are left out)")
    bench.add_argument("--plot", type=_plot_file, default=None, metavar="FILE.png",
                       help="also draw the W1-W5 table as grouped bars (needs matplotlib)")
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
            run(quick=args.quick, threads=args.threads, repeat=args.repeat, tiny=args.tiny,
                peers=args.peers, sections=args.workloads, plot=args.plot)
        except BenchError as e:
            print(f"fastxent bench: fastxent disagrees with the NumPy baseline, "
                  f"so nothing was timed.\n{e}", file=sys.stderr)
            return 1
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
