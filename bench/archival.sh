#!/usr/bin/env bash
# Archival mode at scale (docs/ARCHIVAL.md): an archive tag of N synthetic objects (default
# 1,000,000; made by the library through tests/src/bin/archival-gen.rs, since a million
# `ore import` runs would take hours), then what the issue's targets measure:
#   - index nodes stored by one more `ore import` (a handful, not the index);
#   - the search cache: made by the first search (time, size), brought up to date after it;
#   - `ore search` with one term, three terms, a word and a range, warm, from the index
#     alone (--no-cache) and through the search cache: best of 3, with peak RSS;
#   - `ore import` of a real tree as one object against `ore snapshot` of it.
#
#   bench/archival.sh [N] [TREE]        (TREE default /usr/share)
#
# Everything lives under $ORE_BENCH_WORK (default /dev/shm/ore-archival).
set -euo pipefail
N=${1:-1000000}
TREE=${2:-/usr/share}
WORK=${ORE_BENCH_WORK:-/dev/shm/ore-archival}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ORE=$ROOT/target/release/ore
GEN=$ROOT/target/release/archival-gen
[ -x "$ORE" ] && [ -x "$GEN" ] || (cd "$ROOT" && cargo build --release -p ore -p ore-tests --bin ore --bin archival-gen >&2)
rm -rf "$WORK"; mkdir -p "$WORK"
export ORE_PASSPHRASE=bench XDG_CACHE_HOME=$WORK/cache
A=$WORK/archive
"$ORE" -a "$A" init -q

echo "filing $N synthetic objects on tag big..."
/usr/bin/time -f "generator: %e s, peak %M KiB" "$GEN" "$A" big "$N" 2>&1 | tail -n 2
"$ORE" -a "$A" tags

# The search cache: made from every entry by the first search, then brought up to date.
/usr/bin/time -f "search cache made by the first search: %e s, peak %M KiB" \
    env ORE_DEBUG=1 "$ORE" -a "$A" search big 'creator=creator-1' 2>&1 > /dev/null | grep -E 'search cache|made by'
ls -l "$WORK"/cache/ore/search-*.db | awk '{ printf "search cache: %.0f MB\n", $5 / 1e6 }'

mkdir -p "$WORK/one"; echo "one more" > "$WORK/one/f"
"$ORE" -a "$A" --json import big "$WORK/one" --set title="one more" --set creator=creator-17 2>/dev/null |
    python3 -c 'import json,sys; print("index nodes stored by one more import:", json.load(sys.stdin)["index_nodes"])'
/usr/bin/time -f "search after it (the cache brought up to date): %e s" \
    env ORE_DEBUG=1 "$ORE" -a "$A" search big 'creator=creator-1' 2>&1 > /dev/null | grep -E 'search cache|search after'

best() { # best wall time and its peak RSS of 3 warm runs of `ore search big QUERY [--no-cache]`
    local q=$1 how=$2 out=$WORK/times
    : > "$out"
    "$ORE" -a "$A" search big "$q" $how > /dev/null  # warm
    for _ in 1 2 3; do
        /usr/bin/time -f "%e %M" -a -o "$out" "$ORE" -a "$A" search big "$q" $how > "$WORK/hits"
    done
    sort -n "$out" | head -n 1 | awk -v q="$q" -v how="${how:-(cache)}" -v n="$(wc -l < "$WORK/hits")" \
        '{ printf "search %-52s %-10s %6.3f s  peak %4d MiB  %d hits\n", q, how, $1, $2 / 1024, n }'
}
# The floor of every search: start-up and the passphrase's key derivation.
: > "$WORK/times"
for _ in 1 2 3; do
    /usr/bin/time -f "%e %M" -a -o "$WORK/times" "$ORE" -a "$A" tags > /dev/null
done
sort -n "$WORK/times" | head -n 1 | awk '{ printf "start-up (ore tags)                                           %6.3f s  peak %4d MiB\n", $1, $2 / 1024 }'
for q in 'creator=creator-17' 'creator=creator-17 and date>=1950-01-01 and tags:t7' \
    'title~w123' 'size<1000000 and not tags:t3'; do
    best "$q" --no-cache
    best "$q" ""
done

# `find` over a mounted by-creator/: the issue's target is under 2 s.
mkdir -p "$WORK/mnt"
"$ORE" -a "$A" mount "$WORK/mnt" 2> "$WORK/mount.err" &
for _ in $(seq 200); do mountpoint -q "$WORK/mnt" && break; sleep 0.1; done
start=$(date +%s.%N)
found=$(find "$WORK/mnt/big/by-creator" | wc -l)
end=$(date +%s.%N)
echo "find over a mounted by-creator/: $found names in $(echo "$end - $start" | bc) s (first, cold)"
start=$(date +%s.%N)
found=$(find "$WORK/mnt/big/by-creator" | wc -l)
end=$(date +%s.%N)
echo "find over a mounted by-creator/: $found names in $(echo "$end - $start" | bc) s (again)"
fusermount3 -u "$WORK/mnt"; wait

echo "one object of $TREE against a snapshot of it (archive on $WORK):"
for tool in snapshot import; do
    rm -rf "$WORK/t"; "$ORE" -a "$WORK/t" init -q
    case $tool in
    snapshot) /usr/bin/time -f "  ore snapshot: %e s, peak %M KiB" "$ORE" -a "$WORK/t" snapshot -q home "$TREE" > /dev/null ;;
    import) /usr/bin/time -f "  ore import:   %e s, peak %M KiB" "$ORE" -a "$WORK/t" import -q docs "$TREE" > /dev/null ;;
    esac
done
