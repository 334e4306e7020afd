#!/usr/bin/env bash
# Keeping an archive healthy, side by side with restic in one run:
#
#   bench/upkeep.sh [SOURCE] [SNAPSHOTS]      (default /usr/share, 30)
#
# Copies SOURCE to $ORE_BENCH_WORK (default /dev/shm/ore-upkeep), then makes SNAPSHOTS
# snapshots of it with both tools, changing it between them the same way each time (every
# 97th file from a moving offset gets a line appended, every 499th is deleted, and 20 new
# files of random data appear). Then it times, and takes the peak RSS of:
#   ore check --read-data          vs  restic check --read-data
#   ore gc (after forgetting half) vs  restic prune (after forgetting half)
# and prints restic's time and memory divided by ore's.
set -euo pipefail
SRC=${1:-/usr/share}
N=${2:-30}
WORK=${ORE_BENCH_WORK:-/dev/shm/ore-upkeep}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ORE=${ORE_BIN:-$ROOT/target/release/ore}
[ -x "$ORE" ] || (cd "$ROOT" && cargo build --release -p ore >&2)
command -v restic >/dev/null || { echo "benchmark needs restic (apt-get install restic)" >&2; exit 1; }

rm -rf "$WORK"; mkdir -p "$WORK"
export ORE_PASSPHRASE=bench RESTIC_PASSWORD=bench
export XDG_CACHE_HOME=$WORK/cache RESTIC_CACHE_DIR=$WORK/cache/restic
DATA=$WORK/data
cp -a "$SRC" "$DATA" 2>/dev/null || true
find "$DATA" -type f | sort > "$WORK/files"
echo "source: $SRC copied to $DATA ($(du -sh "$DATA" | cut -f1), $(wc -l < "$WORK/files") files); $N snapshots"

declare -A T M
run() {
    local name=$1; shift
    if ! /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err"; then
        echo "$name failed:" >&2; cat "$WORK/err" >&2; exit 1
    fi
    local secs kib
    read -r secs kib < "$WORK/time"
    T[$name]=$secs; M[$name]=$kib
    printf '  %-34s %7.2f s  %6d MiB\n' "$name" "${T[$name]}" $(( ${M[$name]} / 1024 ))
}

change() {
    local i=$1
    awk -v o="$i" 'NR % 97 == o % 97' "$WORK/files" | while read -r f; do
        [ -f "$f" ] && echo "round $i" >> "$f"
    done
    awk -v o="$i" 'NR % 499 == o % 499' "$WORK/files" | while read -r f; do rm -f "$f"; done
    mkdir -p "$DATA/new-$i"
    for j in $(seq 20); do head -c 50000 /dev/urandom > "$DATA/new-$i/f$j"; done
}

"$ORE" -a "$WORK/ore" init -q
restic init -q --repo "$WORK/restic" >/dev/null
SECONDS=0
for i in $(seq "$N"); do
    [ "$i" -gt 1 ] && change "$i"
    "$ORE" -a "$WORK/ore" snapshot -q bench "$DATA" >/dev/null
    restic -q --repo "$WORK/restic" backup "$DATA" >/dev/null
done
echo "made $N snapshots with each tool in $SECONDS s; archives: ore $(du -sh "$WORK/ore" | cut -f1), restic $(du -sh "$WORK/restic" | cut -f1)"

run "ore check --read-data" "$ORE" -a "$WORK/ore" check --read-data -q
run "restic check --read-data" restic --repo "$WORK/restic" check --read-data
run "ore check" "$ORE" -a "$WORK/ore" check -q
run "restic check" restic --repo "$WORK/restic" check

half=$(( N / 2 ))
"$ORE" -a "$WORK/ore" forget bench --keep-last "$half" -q >/dev/null
"$ORE" -a "$WORK/ore" reflog expire --older-than 0s -q
restic -q --repo "$WORK/restic" forget --keep-last "$half" >/dev/null
run "ore gc" "$ORE" -a "$WORK/ore" gc
cat "$WORK/out"
run "restic prune" restic --repo "$WORK/restic" prune
echo "archives after: ore $(du -sh "$WORK/ore" | cut -f1), restic $(du -sh "$WORK/restic" | cut -f1)"
"$ORE" -a "$WORK/ore" check -q

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fx", (b > 0 ? a / b : 0) }'; }
echo
echo "restic / ore (higher is better for ore):"
for pair in "check --read-data" "check" ; do
    echo "  $pair: time $(ratio "${T[restic $pair]}" "${T[ore $pair]}"), memory $(ratio "${M[restic $pair]}" "${M[ore $pair]}")"
done
echo "  gc vs prune: time $(ratio "${T[restic prune]}" "${T[ore gc]}"), memory $(ratio "${M[restic prune]}" "${M[ore gc]}")"
