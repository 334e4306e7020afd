#!/usr/bin/env bash
# `ore import --each TREE` (one object per file) against `ore snapshot TREE`, each into a
# fresh archive, interleaved, best of ROUNDS, with the ratio the issue sets (≤ 1.5×):
#
#   bench/archival-each.sh [TREE] [ROUNDS]       (TREE default /usr/share, ROUNDS 3)
#
# Archives under $ORE_BENCH_WORK (default /dev/shm/ore-each); the tree is read once first,
# so every run reads it warm.
set -euo pipefail
TREE=${1:-/usr/share}
ROUNDS=${2:-3}
WORK=${ORE_BENCH_WORK:-/dev/shm/ore-each}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ORE=$ROOT/target/release/ore
[ -x "$ORE" ] || (cd "$ROOT" && cargo build --release -p ore --bin ore >&2)
rm -rf "$WORK"; mkdir -p "$WORK"
export ORE_PASSPHRASE=bench XDG_CACHE_HOME=$WORK/cache
find "$TREE" -type f -printf '%s\n' > /dev/null 2>&1 || true
find "$TREE" -type f -print0 2>/dev/null | xargs -0 cat > /dev/null 2>&1 || true
files=$(find "$TREE" -type f 2>/dev/null | wc -l)
echo "$TREE: $files regular files; archives on $WORK"
: > "$WORK/times"
for round in $(seq "$ROUNDS"); do
    for tool in snapshot each; do
        rm -rf "$WORK/a" "$WORK/cache"; "$ORE" -a "$WORK/a" init -q
        case $tool in
        snapshot) args=(snapshot -q home "$TREE") ;;
        each) args=(import -q docs "$TREE" --each) ;;
        esac
        /usr/bin/time -f "$tool %e %M" -a -o "$WORK/times" "$ORE" -a "$WORK/a" "${args[@]}" > /dev/null 2> "$WORK/err" ||
            { [ $? -eq 3 ] || { cat "$WORK/err"; exit 1; }; }
        if [ "$tool" = each ]; then
            "$ORE" -a "$WORK/a" tags | sed 's/^/  round '"$round"': /'
        fi
    done
done
awk '{ if (!($1 in best) || $2 < best[$1]) { best[$1] = $2; rss[$1] = $3 } }
     END { printf "snapshot      %6.2f s  peak %4d MiB\n", best["snapshot"], rss["snapshot"] / 1024;
           printf "import --each %6.2f s  peak %4d MiB\n", best["each"], rss["each"] / 1024;
           printf "ratio         %6.2f (target <= 1.5)\n", best["each"] / best["snapshot"] }' "$WORK/times"
