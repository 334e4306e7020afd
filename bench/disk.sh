#!/usr/bin/env bash
# ore, bupstash and restic on the real disk: snapshot a tree from it into an archive on it,
# and restore back onto it, beside what the disk itself can do.
#
#   bench/disk.sh [SOURCE]            (default /usr/share; must live on the disk under test)
#
# Scratch space: $ORE_BENCH_WORK (default /var/tmp/ore-disk-bench; it must be on the same disk),
# about four times SOURCE's size; deleted at the end. Runs as root: the page cache is dropped
# (`/proc/sys/vm/drop_caches`) before every step that reads, so a snapshot reads the source
# from the disk and a restore reads the archive from it. Every timed step that writes ends with
# `sync`, so a tool is charged for the writing it left in the page cache, not only for what it
# wrote before it exited (each tool syncs its own archive files as it sees fit).
#
# The disk's own limits, measured in the same rounds:
# - sequential write: `dd` of 2 GiB of zeros with `conv=fdatasync`;
# - reading the tree cold: `tar cf - SOURCE | cat`, the floor under a first snapshot;
# - writing the tree: `tar x` of SOURCE's tarball (kept on /dev/shm) and `sync`, the floor
#   under a restore that makes the same files.
#
# The tools are $ORE_BENCH_TOOLS (default "ore bupstash restic"); each runs with encryption
# and its default compression. $ORE_BENCH_REPS rounds (default 2), tools interleaved; the best
# time of each step is kept. A virtual disk is noisy: compare within a run.
set -euo pipefail
SRC=${1:-/usr/share}
WORK=${ORE_BENCH_WORK:-/var/tmp/ore-disk-bench}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ORE=${ORE_BIN:-$ROOT/target/release/ore}
TOOLS=${ORE_BENCH_TOOLS:-"ore bupstash restic"}
REPS=${ORE_BENCH_REPS:-2}
TARBALL=${ORE_BENCH_TARBALL:-/dev/shm/ore-disk-bench.tar}

[ "$(id -u)" = 0 ] || { echo "bench/disk.sh drops the page cache between steps: run it as root" >&2; exit 1; }
[ -x "$ORE" ] || (cd "$ROOT" && cargo build --release -p ore >&2)
for t in $TOOLS; do
    case $t in ore) continue ;; esac
    command -v "$t" >/dev/null || { echo "benchmark needs $t (apt-get install restic; cargo install --locked bupstash, with libsodium-dev and pkg-config)" >&2; exit 1; }
done
rm -rf "$WORK"; mkdir -p "$WORK"
[ "$(stat -c %d "$WORK")" = "$(stat -c %d "$SRC")" ] ||
    echo "note: $WORK and $SRC are on different file systems" >&2
cleanup() { rm -rf "$WORK" "$TARBALL"; }
trap cleanup EXIT

export ORE_PASSPHRASE=bench RESTIC_PASSWORD=bench
export XDG_CACHE_HOME=$WORK/cache RESTIC_CACHE_DIR=$WORK/cache/restic

declare -A T M S
cold() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# run NAME CMD...: time a command, keep the best seconds and the peak RSS (KiB) seen.
run() {
    local name=$1; shift
    if ! /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err"; then
        echo "$name failed:" >&2; cat "$WORK/err" >&2; exit 1
    fi
    local secs kib
    read -r secs kib < "$WORK/time"
    if [ -z "${T[$name]:-}" ] || awk -v a="$secs" -v b="${T[$name]}" 'BEGIN { exit !(a < b) }'; then T[$name]=$secs; fi
    if [ -z "${M[$name]:-}" ] || [ "$kib" -gt "${M[$name]}" ]; then M[$name]=$kib; fi
    printf '  %-24s %7.2f s  %7d MiB\n' "$name" "$secs" $(( kib / 1024 ))
}
# synced CMD...: the command, then sync (timed together by run).
synced() { "$@" && sync; }
export -f synced
size() { du -sb "$1" | cut -f1; }

bytes=$(du -sb "$SRC" 2>/dev/null | cut -f1)
echo "source: $SRC ($(( bytes / 1000000 )) MB, $(find "$SRC" -type f 2>/dev/null | wc -l) files); work dir: $WORK ($(df --output=source "$WORK" | tail -1))"
tar cf "$TARBALL" -C "$(dirname "$SRC")" "$(basename "$SRC")" 2>/dev/null || true
for rep in $(seq "$REPS"); do
echo "round $rep of $REPS:"
rm -f "$WORK/dd"; cold
run "dd write 2 GiB" dd if=/dev/zero of="$WORK/dd" bs=4M count=512 conv=fdatasync status=none
rm -f "$WORK/dd"; cold
run "tar c, cold" sh -c "tar cf - '$SRC' 2>/dev/null | cat >/dev/null"
rm -rf "$WORK/tarx"; mkdir -p "$WORK/tarx"; cold
run "tar x + sync" bash -c "synced tar xf '$TARBALL' -C '$WORK/tarx'"
rm -rf "$WORK/tarx"
for tool in $TOOLS; do
    rm -rf "$WORK/ore" "$WORK/restic" "$WORK/bupstash" "$WORK/cache" "$WORK/restore"
    case $tool in
    ore)
        "$ORE" -a "$WORK/ore" init -q
        cold; run "ore snapshot" bash -c "synced '$ORE' -a '$WORK/ore' snapshot -q bench '$SRC'"
        run "ore re-snapshot" bash -c "synced '$ORE' -a '$WORK/ore' snapshot -q bench '$SRC'"
        cold; run "ore restore" bash -c "synced '$ORE' -a '$WORK/ore' restore -q bench '$WORK/restore'"
        S[ore]=$(size "$WORK/ore") ;;
    restic)
        restic -q -r "$WORK/restic" init >/dev/null
        cold; run "restic snapshot" bash -c "synced restic -q -r '$WORK/restic' backup '$SRC'"
        run "restic re-snapshot" bash -c "synced restic -q -r '$WORK/restic' backup '$SRC'"
        cold; run "restic restore" bash -c "synced restic -q -r '$WORK/restic' restore latest --target '$WORK/restore'"
        S[restic]=$(size "$WORK/restic") ;;
    bupstash)
        [ -f "$WORK/bupstash.key" ] || bupstash new-key -o "$WORK/bupstash.key"
        bupstash init -r "$WORK/bupstash"
        export BUPSTASH_KEY=$WORK/bupstash.key BUPSTASH_REPOSITORY=$WORK/bupstash
        cold; run "bupstash snapshot" bash -c "synced bupstash put '$SRC'"
        id=$(head -1 "$WORK/out")
        run "bupstash re-snapshot" bash -c "synced bupstash put '$SRC'"
        mkdir -p "$WORK/restore"
        cold; run "bupstash restore" bash -c "synced bupstash restore --into '$WORK/restore' 'id=$id'"
        S[bupstash]=$(size "$WORK/bupstash") ;;
    esac
    rm -rf "$WORK/restore"
done 2>&1
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
mbs() { awk -v b="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.0f MB/s", b / s / 1e6; else print "-" }'; }
echo
echo "best of $REPS (seconds; MB/s of the source's $(( bytes / 1000000 )) MB):"
printf '  %-24s %7s %9s\n' "disk: dd write 2 GiB" "${T[dd write 2 GiB]}" "$(mbs 2147483648 "${T[dd write 2 GiB]}")"
printf '  %-24s %7s %9s\n' "disk: tar c, cold" "${T[tar c, cold]}" "$(mbs "$bytes" "${T[tar c, cold]}")"
printf '  %-24s %7s %9s\n' "disk: tar x + sync" "${T[tar x + sync]}" "$(mbs "$bytes" "${T[tar x + sync]}")"
for tool in $TOOLS; do
    for step in snapshot re-snapshot restore; do
        printf '  %-24s %7s %9s  %5d MiB\n' "$tool $step" "${T[$tool $step]}" "$(mbs "$bytes" "${T[$tool $step]}")" $(( ${M[$tool $step]} / 1024 ))
    done
    printf '  %-24s %7d MB\n' "$tool archive" $(( ${S[$tool]} / 1000000 ))
done
echo
echo "ratios (other tool's time / ore's; for the floors, floor / ore: 1.00 is at the disk's limit):"
for tool in $TOOLS; do
    [ "$tool" = ore ] && continue
    for step in snapshot re-snapshot restore; do
        printf '  %-24s %s\n' "$tool/ore $step" "$(ratio "${T[$tool $step]}" "${T[ore $step]}")"
    done
done
printf '  %-24s %s\n' "tar c cold / ore snapshot" "$(ratio "${T[tar c, cold]}" "${T[ore snapshot]}")"
printf '  %-24s %s\n' "tar x / ore restore" "$(ratio "${T[tar x + sync]}" "${T[ore restore]}")"
