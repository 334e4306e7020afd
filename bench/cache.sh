#!/usr/bin/env bash
# backend-cache in front of a distant archive: an unchanged re-snapshot with and without it.
#
#   bench/cache.sh [SOURCE] [MS] [link|serial]      (default /usr/share 10 link)
#
# The archive is splitlog on $ORE_BENCH_WORK (default /dev/shm/ore-bench-cache), reached through
# `delay-link`:
#   link    a pipe that holds every byte back MS milliseconds each way (a long network link:
#           round trips of 2*MS that overlap, so a pipelining client hides most of them);
#   serial  a backend that serves one request at a time and takes MS for each (a slow store:
#           nothing overlaps, every question costs MS). The snapshot is
# first taken locally; the cache is then filled from the archive's listing (`rebuild`), as it
# would be after its first snapshot, and the local run's file cache is copied for each side.
# Timed:
#   - re-snapshot reading every file (--no-cache): every chunk is asked about; this is where the
#     cache answers instead of the archive;
#   - re-snapshot with the file cache: unchanged files are not read, few questions are asked.
# Prints seconds and the ratio (without cache / with cache) for both.
set -euo pipefail
SRC=${1:-/usr/share}
MS=${2:-10}
MODE=${3:-link}
WORK=${ORE_BENCH_WORK:-/dev/shm/ore-bench-cache}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/target/release
(cd "$ROOT" && cargo build --release --workspace >&2)

rm -rf "$WORK"; mkdir -p "$WORK"
export ORE_PASSPHRASE=bench
ARCHIVE=$WORK/archive
case $MODE in
link) DISTANT="$BIN/delay-link $MS backend-splitlog $ARCHIVE" ;;
serial) DISTANT="$BIN/delay-link --serial $MS backend-splitlog $ARCHIVE" ;;
*) echo "unknown mode $MODE (link or serial)" >&2; exit 2 ;;
esac
CACHED="$BIN/backend-cache $WORK/cache.db '$DISTANT'"

secs() { /usr/bin/time -f %e -o "$WORK/t" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }; cat "$WORK/t"; }

echo "source: $SRC; $MODE delay: ${MS} ms; work dir: $WORK"
"$BIN/ore" -a "$ARCHIVE" init -q
XDG_CACHE_HOME=$WORK/fc-local "$BIN/ore" -a "$ARCHIVE" snapshot -q bench "$SRC" >/dev/null
"$BIN/ore-admin" "$CACHED" rebuild
# Each run gets its own copy of the file cache the local snapshot left.
cp -r "$WORK/fc-local" "$WORK/fc-distant"
cp -r "$WORK/fc-local" "$WORK/fc-cached"
declare -A T
for id in distant cached; do
    [ $id = distant ] && A=$DISTANT || A=$CACHED
    T[$id-read]=$(XDG_CACHE_HOME=$WORK/fc-$id secs "$BIN/ore" -a "$A" snapshot -q --no-cache bench "$SRC")
    T[$id-filecache]=$(XDG_CACHE_HOME=$WORK/fc-$id secs "$BIN/ore" -a "$A" snapshot -q bench "$SRC")
    printf '%-8s re-snapshot reading every file: %8.2f s   with the file cache: %6.2f s\n' \
        "$id" "${T[$id-read]}" "${T[$id-filecache]}"
done
"$BIN/ore-admin" "$CACHED" stats
awk -v a="${T[distant-read]}" -v b="${T[cached-read]}" -v c="${T[distant-filecache]}" -v d="${T[cached-filecache]}" 'BEGIN {
    printf "ratio without/with cache, reading every file: %.1fx\n", a / b
    printf "ratio without/with cache, with the file cache: %.1fx\n", c / d }'
