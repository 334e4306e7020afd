#!/usr/bin/env bash
# Where a first snapshot's CPU time goes, stage by stage, beside each stage's floor.
#
#   bench/cpu.sh [SOURCE]      (default /usr/share)
#
# Runs `ore snapshot --stats --json` into a fresh archive under $ORE_BENCH_WORK (default
# /dev/shm/ore-cpu), then `cpu-floor SOURCE`, which runs the same libraries alone on one thread
# over the same bytes (a stat walk, reads, FastCDC, keyed BLAKE3, zstd -3, AES-256-GCM), and
# prints CPU-seconds per GB read for each stage, the floor's, and their ratio. Store and index
# have no library to compare with: they are ore's own work (the backend in process, and the
# entries and trees), and the figure is shown alone.
#
# Needs the release build of ore and cpu-floor (cargo build --release -p ore -p ore-tests --bins).
set -euo pipefail
SRC=${1:-/usr/share}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${ORE_BENCH_WORK:-/dev/shm/ore-cpu}
ORE=${ORE_BIN:-$ROOT/target/release/ore}
FLOOR=$ROOT/target/release/cpu-floor
for p in "$ORE" "$FLOOR"; do
    [ -x "$p" ] || { echo "missing $p (cargo build --release -p ore -p ore-tests --bins)" >&2; exit 1; }
done
rm -rf "$WORK"; mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT
export ORE_PASSPHRASE=bench XDG_CACHE_HOME=$WORK/cache
# Warm the page cache, so that both read from memory.
find "$SRC" -type f -print0 2>/dev/null | xargs -0 cat > /dev/null 2>&1 || true
"$ORE" -q -a "$WORK/archive" init
"$ORE" -q --json -a "$WORK/archive" snapshot --stats bench "$SRC" > "$WORK/ore.json"
"$FLOOR" "$SRC" > "$WORK/floor.json"
python3 - "$WORK/ore.json" "$WORK/floor.json" <<'PY'
import json, sys
ore = json.load(open(sys.argv[1]))["cpu"]
floor = json.load(open(sys.argv[2]))
print(f"first snapshot of {floor['files']} files, {ore['bytes_read'] / 1e6:.1f} MB read "
      f"(floor: {floor['bytes'] / 1e6:.1f} MB, {floor['chunks']} chunks)")
print(f"{'stage':<10}{'ore s':>9}{'ore s/GB':>10}{'floor s/GB':>12}{'ore/floor':>11}")
for name in ["walk", "read", "chunk", "hash", "compress", "encrypt", "store", "index"]:
    st = ore["stages"][name]
    f = floor["stages"].get(name)
    per = st["cpu_s_per_gb"] or 0
    fl = f["cpu_s_per_gb"] if f else None
    ratio = f"{per / fl:.2f}" if fl else "-"
    fls = f"{fl:.3f}" if fl is not None else "-"
    print(f"{name:<10}{st['cpu_s']:>9.3f}{per:>10.3f}{fls:>12}{ratio:>11}")
print(f"{'other':<10}{ore['outside_stages_s']:>9.3f}")
print(f"{'process':<10}{ore['process_cpu_s']:>9.3f}")
PY
