#!/usr/bin/env bash
# Reading through `ore mount` against `ore restore`, in one run:
#
#   bench/mount.sh [GIB] [TREE]      (default 1 GiB, /usr/share)
#
# 1. A GIB file of random data is snapshotted; then it is restored with `ore restore` and read
#    sequentially through the mount (`cat FILE > /dev/null`, cold: a fresh mount each time).
# 2. TREE is snapshotted and `find` walks it through a fresh mount.
# Archives and restore targets live under $ORE_BENCH_WORK (default /dev/shm/ore-mount).
set -euo pipefail
GIB=${1:-1}
TREE=${2:-/usr/share}
WORK=${ORE_BENCH_WORK:-/dev/shm/ore-mount}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ORE=${ORE_BIN:-$ROOT/target/release/ore}
[ -x "$ORE" ] || (cd "$ROOT" && cargo build --release -p ore >&2)
command -v fusermount3 >/dev/null || { echo "benchmark needs fuse3 (apt-get install fuse3)" >&2; exit 1; }

cleanup() { fusermount3 -uz "$WORK/mnt" 2>/dev/null || true; }
trap cleanup EXIT
cleanup
rm -rf "$WORK"; mkdir -p "$WORK/src" "$WORK/mnt"
export ORE_PASSPHRASE=bench XDG_CACHE_HOME=$WORK/cache
A=$WORK/archive
"$ORE" -a "$A" init -q
head -c $((GIB << 30)) /dev/urandom > "$WORK/src/big"
"$ORE" -a "$A" snapshot -q big "$WORK/src" >/dev/null
rm -f "$WORK/src/big"
"$ORE" -a "$A" snapshot -q tree "$TREE" >/dev/null

secs() { local s; s=$(date +%s.%N); "$@" >/dev/null; awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
up() {
    "$ORE" -a "$A" mount "$WORK/mnt" -q &
    for _ in $(seq 200); do mountpoint -q "$WORK/mnt" && return; sleep 0.05; done
    echo "mount did not come up" >&2; exit 1
}
down() { fusermount3 -u "$WORK/mnt"; wait; }

echo "file: $GIB GiB of random data; tree: $TREE ($(find "$TREE" | wc -l) entries)"
best_r=999; best_m=999; best_f=999
for round in 1 2 3; do
    rm -rf "$WORK/restored"
    r=$(secs "$ORE" -a "$A" restore -q big:big "$WORK/restored")
    up; m=$(secs cat "$WORK/mnt/big/current/big"); down
    up; f=$(secs find "$WORK/mnt/tree/current/"); down
    echo "round $round: restore ${r} s, read through the mount ${m} s, find ${f} s"
    best_r=$(awk -v a="$r" -v b="$best_r" 'BEGIN { print (a < b ? a : b) }')
    best_m=$(awk -v a="$m" -v b="$best_m" 'BEGIN { print (a < b ? a : b) }')
    best_f=$(awk -v a="$f" -v b="$best_f" 'BEGIN { print (a < b ? a : b) }')
done
awk -v r="$best_r" -v m="$best_m" -v g="$GIB" 'BEGIN {
    printf "best: restore %.2f s (%.0f MiB/s), mount read %.2f s (%.0f MiB/s): the mount reads at %.0f%% of restore\n",
        r, g * 1024 / r, m, g * 1024 / m, 100 * r / m }'
echo "best find through the mount: ${best_f} s"
