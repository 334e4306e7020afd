#!/usr/bin/env bash
# A huge file with small scattered edits: how much does the second snapshot store again, and
# how long does it take, for ore and restic side by side?
#
#   bench/bigfile.sh [SIZE_GIB]     (default 4)
#
# Makes a file of random bytes under $ORE_BENCH_WORK (default /dev/shm/ore-bigfile),
# snapshots it with both tools, overwrites 100 scattered 4 KiB pieces, snapshots again, and
# prints the bytes each tool added and its time for that second snapshot.
set -euo pipefail
GIB=${1:-4}
WORK=${ORE_BENCH_WORK:-/dev/shm/ore-bigfile}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ORE=${ORE_BIN:-$ROOT/target/release/ore}
[ -x "$ORE" ] || (cd "$ROOT" && cargo build --release -p ore >&2)
command -v restic >/dev/null || { echo "needs restic (apt-get install restic)" >&2; exit 1; }
rm -rf "$WORK"; mkdir -p "$WORK/src"
export ORE_PASSPHRASE=bench RESTIC_PASSWORD=bench XDG_CACHE_HOME=$WORK/cache RESTIC_CACHE_DIR=$WORK/cache/restic
FILE=$WORK/src/big
echo "making a ${GIB} GiB file of random bytes..."
head -c $((GIB << 30)) /dev/urandom > "$FILE"

t() { /usr/bin/time -f "%e %M" -o "$WORK/time" "$@"; read -r SECS KIB < "$WORK/time"; }

"$ORE" -q -a "$WORK/ore" init
restic -q -r "$WORK/restic" init >/dev/null
t "$ORE" -q -a "$WORK/ore" snapshot big "$WORK/src" >/dev/null;           ORE1=$SECS; ORE1M=$KIB
t restic -q -r "$WORK/restic" backup "$WORK/src" >/dev/null;              RES1=$SECS; RES1M=$KIB

python3 - "$FILE" <<'PY'
import os, random, sys
random.seed(42)
size = os.path.getsize(sys.argv[1])
with open(sys.argv[1], "r+b") as f:
    for i in range(100):
        f.seek(i * (size // 100) + random.randrange(size // 100 - 4096))
        f.write(os.urandom(4096))
PY

t "$ORE" -a "$WORK/ore" snapshot big "$WORK/src" --json > "$WORK/ore.json"; ORE2=$SECS; ORE2M=$KIB
t restic -r "$WORK/restic" backup "$WORK/src" --json > "$WORK/restic.json"; RES2=$SECS; RES2M=$KIB
ORE_ADDED=$(python3 -c "import json; print(json.load(open('$WORK/ore.json'))['stats']['stored_bytes'])")
RES_ADDED=$(python3 -c "
import json
for l in open('$WORK/restic.json'):
    d = json.loads(l)
    if d.get('message_type') == 'summary': print(d['data_added'])")
SIZE=$((GIB << 30))
pct() { awk -v a="$1" -v b="$SIZE" 'BEGIN { printf "%.3f%%", 100 * a / b }'; }
echo "file: $SIZE bytes, 100 edits of 4 KiB"
printf 'first snapshot:  ore %6.2f s (%d MiB peak)   restic %6.2f s (%d MiB peak)\n' "$ORE1" $((ORE1M / 1024)) "$RES1" $((RES1M / 1024))
printf 'second snapshot: ore %6.2f s (%d MiB peak)   restic %6.2f s (%d MiB peak)   restic/ore %.2fx\n' "$ORE2" $((ORE2M / 1024)) "$RES2" $((RES2M / 1024)) "$(awk -v a="$RES2" -v b="$ORE2" 'BEGIN { print a / b }')"
echo "stored again:    ore $ORE_ADDED bytes ($(pct "$ORE_ADDED"))   restic $RES_ADDED bytes ($(pct "$RES_ADDED"))"
rm -rf "$WORK"
