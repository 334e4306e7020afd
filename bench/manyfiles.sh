#!/usr/bin/env bash
# Memory as trees grow: peak RSS of a snapshot of a generated tree of many small files
# (default 1,000,000 in 1,000 directories), for ore and restic, plus times.
#
#   bench/manyfiles.sh [FILES]
set -euo pipefail
N=${1:-1000000}
WORK=${ORE_BENCH_WORK:-/dev/shm/ore-manyfiles}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ORE=${ORE_BIN:-$ROOT/target/release/ore}
[ -x "$ORE" ] || (cd "$ROOT" && cargo build --release -p ore >&2)
command -v restic >/dev/null || { echo "needs restic (apt-get install restic)" >&2; exit 1; }
rm -rf "$WORK"; mkdir -p "$WORK/src"
export ORE_PASSPHRASE=bench RESTIC_PASSWORD=bench XDG_CACHE_HOME=$WORK/cache RESTIC_CACHE_DIR=$WORK/cache/restic
echo "making $N small files..."
python3 - "$WORK/src" "$N" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
per = 1000
for d in range((n + per - 1) // per):
    p = os.path.join(root, "d%04d" % d)
    os.mkdir(p)
    for i in range(min(per, n - d * per)):
        with open(os.path.join(p, "f%04d" % i), "wb") as f:
            f.write(b"file %d in dir %d\n" % (i, d) * (1 + i % 7))
PY
t() { /usr/bin/time -f "%e %M" -o "$WORK/time" "$@"; read -r SECS KIB < "$WORK/time"; }
"$ORE" -q -a "$WORK/ore" init
restic -q -r "$WORK/restic" init >/dev/null
t "$ORE" -q -a "$WORK/ore" snapshot many "$WORK/src" >/dev/null; printf 'ore snapshot:       %7.2f s  peak %5d MiB\n' "$SECS" $((KIB / 1024))
t "$ORE" -q -a "$WORK/ore" snapshot many "$WORK/src" >/dev/null; printf 'ore re-snapshot:    %7.2f s  peak %5d MiB\n' "$SECS" $((KIB / 1024))
t restic -q -r "$WORK/restic" backup "$WORK/src" >/dev/null;    printf 'restic snapshot:    %7.2f s  peak %5d MiB\n' "$SECS" $((KIB / 1024))
t restic -q -r "$WORK/restic" backup "$WORK/src" >/dev/null;    printf 'restic re-snapshot: %7.2f s  peak %5d MiB\n' "$SECS" $((KIB / 1024))
rm -rf "$WORK"
