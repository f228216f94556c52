#!/usr/bin/env bash
# valgrind memcheck over a representative fastxent workload (tools/valgrind_workload.py:
# every function and option, both kernel layouts, long rows, every dtype,
# special values, error paths, several OpenMP threads), once per SIMD path that
# valgrind runs (baseline and avx2; it has no AVX-512).
#
# CPython, ld.so and NumPy have their own valgrind noise, so the verdict counts
# only the errors and definite leaks with a frame in fastxent's code (the
# _kernels_* modules, its cext/ kernels); everything else is listed, not judged.
# A self-test first makes sure memcheck does catch a fault inside a kernel.
#
#   tools/run_valgrind.sh            # exit status 0: no error in fastxent's code
#
# Uses the in-place build under src/ when there is one, else the installed
# fastxent.  Environment: PYTHON (default python3), FASTXENT_VALGRIND_LOGS (a
# directory for the logs; default a temporary one, printed).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
start=$SECONDS
say() { echo "== run_valgrind: $* ($((SECONDS - start)) s)"; }

if ! command -v valgrind >/dev/null; then
    echo "run_valgrind: valgrind is not installed (Debian/Ubuntu: apt-get install -y valgrind)" >&2
    exit 2
fi
if ls "$repo"/src/fastxent/_kernels_baseline*.so >/dev/null 2>&1; then
    export PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PY" -c "import fastxent" || { echo "run_valgrind: cannot import fastxent (build it first)" >&2; exit 2; }
logs=${FASTXENT_VALGRIND_LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/fastxent-valgrind.XXXXXX")}
mkdir -p "$logs"

# PYTHONMALLOC=malloc: every Python allocation through malloc, where memcheck sees it
export PYTHONMALLOC=malloc OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
VG=(valgrind --tool=memcheck --error-limit=no --num-callers=40 --leak-check=full
    --show-leak-kinds=definite --errors-for-leak-kinds=definite)

# Summarize a log: errors and definite leaks, split into fastxent's and others'.
summarize() {
    "$PY" - "$1" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
ours = re.compile(r"_kernels_(baseline|avx2|avx512)|fastxent|/cext/|\bfx_[a-z0-9_]+")
records, cur = [], []
for line in text.splitlines():
    m = re.match(r"==\d+== ?(.*)", line)
    if not m:
        continue
    body = m.group(1)
    if body.strip() == "":
        if cur:
            records.append(cur)
        cur = []
    else:
        cur.append(body)
if cur:
    records.append(cur)
kinds = ("Invalid ", "Conditional jump", "Use of uninitialised", "Syscall param", "Mismatched free",
         "Source and destination overlap", "Argument 'size'", "Jump to the invalid")
errors = [r for r in records if r[0].startswith(kinds)]
leaks = [r for r in records if "definitely lost in loss record" in r[0]]
mine = [r for r in errors + leaks if any(ours.search(l) for l in r)]
summary = re.findall(r"ERROR SUMMARY: .*", text)
print(f"   valgrind: {summary[-1] if summary else 'no summary'}")
print(f"   {len(errors)} error contexts and {len(leaks)} definite leaks in all, "
      f"{len(mine)} with a frame in fastxent")
for r in (errors + leaks)[:8]:
    if r not in mine:
        top = next((l.strip() for l in r[1:] if l.strip().startswith(("at ", "by ")) and "vgpreload" not in l), "")
        print(f"   elsewhere: {r[0][:60]} | {top[:90]}")
for r in mine:
    print("   FASTXENT: " + "\n             ".join(r[:14]))
print(f"   fastxent: ERROR SUMMARY: {len(mine)} errors")
sys.exit(1 if mine else 0)
EOF
}

# -- self-test: memcheck must see an out-of-bounds read inside a kernel ------------------
say "self-test (a deliberate out-of-bounds read through the unchecked kernel entry point)"
"${VG[@]}" --log-file="$logs/selftest.log" "$PY" -c '
import numpy as np
from fastxent._kernels import kernels
kernels.xent(np.zeros(10), 3, 5, 1, np.zeros(3, np.int64), -100, None, None, 5.0, 0.0,
             None, None, None, 1.0, 1)' >/dev/null 2>&1 || true
if summarize "$logs/selftest.log" >/dev/null; then
    summarize "$logs/selftest.log" || true
    echo "run_valgrind: memcheck did not report the deliberate fault: the check is not working" >&2
    exit 1
fi
say "self-test: caught"

# -- the workload, per SIMD path ---------------------------------------------------------------
# Not avx512: valgrind does not emulate AVX-512 (3.19's virtual CPU reports none
# of it, so cpu_features()["avx512"] is False under valgrind and FASTXENT_SIMD=avx512
# is an ImportError there); avx2 is the widest path memcheck can run.
paths=(baseline)
if "$PY" -c "from fastxent import _kernels_baseline as b; raise SystemExit(0 if b.cpu_features()['avx2_fma'] else 1)"; then
    paths+=(avx2)
fi
status=0
for simd in "${paths[@]}"; do
    say "memcheck, SIMD path $simd"
    FASTXENT_SIMD=$simd "${VG[@]}" --log-file="$logs/$simd.log" "$PY" "$repo/tools/valgrind_workload.py"
    summarize "$logs/$simd.log" || status=1
done
say "logs in $logs"
if [ $status -ne 0 ]; then
    echo "run_valgrind: memcheck found errors in fastxent's code" >&2
fi
exit $status
