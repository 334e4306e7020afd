#!/usr/bin/env bash
# Side-by-side benchmark: ore, restic and borg on the same tree in one run.
#
#   bench/compare.sh [SOURCE]            (default /usr/share)
#
# The tools are $ORE_BENCH_TOOLS (default "ore restic borg"; bupstash too when given, e.g.
# ORE_BENCH_TOOLS="ore bupstash restic borg").
#
# With ORE_BASELINE=/path/to/an/older/ore, that binary runs too, interleaved with the others as
# the tool "base", so a change is measured against the build before it in the same run (its
# ratios against restic and borg are printed beside ore's).
#
# Every tool runs with encryption and its default compression; archives, caches and restore
# targets live under $ORE_BENCH_WORK (default /dev/shm/ore-bench) so the slow disk of a test
# machine does not decide the result. The page cache is warmed first. Every step is repeated
# $ORE_BENCH_REPS times (default 3) with the tools interleaved, and the best time of each is
# kept, because a shared machine is noisy. Prints seconds, peak RSS and archive sizes, then the
# ratios that matter (restic's time / ore's time, and so on).
set -euo pipefail
SRC=${1:-/usr/share}
WORK=${ORE_BENCH_WORK:-/dev/shm/ore-bench}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ORE=${ORE_BIN:-$ROOT/target/release/ore}
TOOLS=${ORE_BENCH_TOOLS:-"ore restic borg"}
BASE=${ORE_BASELINE:-}
[ -z "$BASE" ] || { [ -x "$BASE" ] || { echo "ORE_BASELINE=$BASE is not an executable" >&2; exit 1; }; others=" $TOOLS "; TOOLS="ore base ${others// ore / }"; }
REPS=${ORE_BENCH_REPS:-3}

[ -x "$ORE" ] || (cd "$ROOT" && cargo build --release -p ore >&2)
for t in zstd $TOOLS; do
    case $t in ore|base) continue ;; esac
    command -v $t >/dev/null || { echo "benchmark needs $t (apt-get install restic borgbackup zstd; cargo install --locked bupstash, with libsodium-dev and pkg-config)" >&2; exit 1; }
done

rm -rf "$WORK"; mkdir -p "$WORK"
export ORE_PASSPHRASE=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench
export XDG_CACHE_HOME=$WORK/cache BORG_BASE_DIR=$WORK/borg-base RESTIC_CACHE_DIR=$WORK/cache/restic
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

declare -A T M S
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
    printf '  %-22s %7.2f s  %7d MiB\n' "$name" "$secs" $(( kib / 1024 ))
}
size() { du -sb "$1" | cut -f1; }

echo "source: $SRC ($(du -sh "$SRC" 2>/dev/null | cut -f1), $(find "$SRC" -type f 2>/dev/null | wc -l) files); work dir: $WORK"
# Warm the page cache (through a pipe: GNU tar skips reading file contents when it writes to
# /dev/null). Again at the start of every round: this machine's page cache has been seen to
# lose the tree between rounds (a round's first step then took 5 s instead of 1.6 s).
warm_source() { tar cf - "$SRC" 2>/dev/null | cat >/dev/null; }
warm_source
# Warm the memory the runs will write into: on a virtual machine the first touch of a page of
# guest memory costs several times a later one (4 GiB written to /dev/shm took 10.3 s the first
# time and 2.3 s the next here), which would charge whichever tool first creates files in
# /dev/shm for the host's work. $ORE_BENCH_WARM MiB (default 4096) are written and deleted.
dd if=/dev/zero of="$WORK/warm" bs=1M count="${ORE_BENCH_WARM:-4096}" status=none
rm -f "$WORK/warm"
for rep in $(seq "$REPS"); do
echo "round $rep of $REPS:"
warm_source
run "tar|zstd -3 -T2" sh -c "tar cf - '$SRC' 2>/dev/null | zstd -3 -T2 >/dev/null"
for tool in $TOOLS; do
    rm -rf "$WORK/ore" "$WORK/restic" "$WORK/borg" "$WORK/bupstash" "$WORK/cache" "$WORK/borg-base"
    case $tool in
    ore)
        "$ORE" -a "$WORK/ore" init -q
        run "ore snapshot" "$ORE" -a "$WORK/ore" snapshot -q bench "$SRC"
        run "ore re-snapshot" "$ORE" -a "$WORK/ore" snapshot -q bench "$SRC"
        run "ore restore" "$ORE" -a "$WORK/ore" restore -q bench "$WORK/ore-restore"
        S[ore]=$(size "$WORK/ore")
        rm -rf "$WORK/ore-restore" ;;
    base)
        "$BASE" -a "$WORK/base" init -q
        run "base snapshot" "$BASE" -a "$WORK/base" snapshot -q bench "$SRC"
        run "base re-snapshot" "$BASE" -a "$WORK/base" snapshot -q bench "$SRC"
        run "base restore" "$BASE" -a "$WORK/base" restore -q bench "$WORK/base-restore"
        S[base]=$(size "$WORK/base")
        rm -rf "$WORK/base" "$WORK/base-restore" ;;
    restic)
        restic -q -r "$WORK/restic" init >/dev/null
        run "restic snapshot" restic -q -r "$WORK/restic" backup "$SRC"
        run "restic re-snapshot" restic -q -r "$WORK/restic" backup "$SRC"
        run "restic restore" restic -q -r "$WORK/restic" restore latest --target "$WORK/restic-restore"
        S[restic]=$(size "$WORK/restic")
        rm -rf "$WORK/restic-restore" ;;
    bupstash)
        [ -f "$WORK/bupstash.key" ] || bupstash new-key -o "$WORK/bupstash.key"
        bupstash init -r "$WORK/bupstash"
        export BUPSTASH_KEY=$WORK/bupstash.key BUPSTASH_REPOSITORY=$WORK/bupstash
        run "bupstash snapshot" bupstash put "$SRC"
        id=$(cat "$WORK/out")
        run "bupstash re-snapshot" bupstash put "$SRC"
        mkdir -p "$WORK/bupstash-restore"
        run "bupstash restore" bupstash restore --into "$WORK/bupstash-restore" "id=$id"
        S[bupstash]=$(size "$WORK/bupstash")
        rm -rf "$WORK/bupstash-restore" ;;
    borg)
        borg init -e repokey "$WORK/borg" >/dev/null 2>&1
        run "borg snapshot" borg create "$WORK/borg::a1" "$SRC"
        run "borg re-snapshot" borg create "$WORK/borg::a2" "$SRC"
        mkdir -p "$WORK/borg-restore"
        run "borg restore" sh -c "cd '$WORK/borg-restore' && borg extract '$WORK/borg::a1'"
        S[borg]=$(size "$WORK/borg")
        rm -rf "$WORK/borg-restore" ;;
    esac
done 2>&1
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo
echo "best of $REPS:"
show() { printf '  %-22s %7.2f s  peak %5d MiB\n' "$1" "${T[$1]}" $(( ${M[$1]} / 1024 )); }
show "tar|zstd -3 -T2"
for t in $TOOLS; do for step in snapshot re-snapshot restore; do show "$t $step"; done; done
echo "archive sizes (bytes): $(for t in $TOOLS; do printf '%s %s  ' $t ${S[$t]:-0}; done)"
echo "ratios (other tool's time / ore's time; above 1 means ore is faster):"
for t in $TOOLS; do
    [ "$t" = ore ] || [ "$t" = base ] && continue
    for step in snapshot re-snapshot restore; do
        printf '  %-8s %-12s %6sx\n' "$t" "$step" "$(ratio "${T[$t $step]}" "${T[ore $step]}")"
    done
    printf '  %-8s %-12s %6sx  (size: %s / ore)\n' "$t" "archive" "$(ratio "${S[$t]}" "${S[ore]}")" "$t"
    printf '  %-8s %-12s %6sx  (peak RSS of snapshot: %s / ore)\n' "$t" "memory" "$(ratio "${M[$t snapshot]}" "${M[ore snapshot]}")" "$t"
done
if [ -n "$BASE" ]; then
    echo "this build against the baseline (base's time / ore's time; below 1 means slower now):"
    for step in snapshot re-snapshot restore; do
        printf '  %-12s %6sx\n' "$step" "$(ratio "${T[base $step]}" "${T[ore $step]}")"
    done
    for t in $TOOLS; do
        [ "$t" = ore ] || [ "$t" = base ] && continue
        for step in snapshot re-snapshot restore; do
            printf '  %-8s %-12s ore %6sx  base %6sx\n' "$t" "$step" "$(ratio "${T[$t $step]}" "${T[ore $step]}")" "$(ratio "${T[$t $step]}" "${T[base $step]}")"
        done
    done
fi
printf '  ore snapshot vs tar|zstd: %sx of its time\n' "$(ratio "${T[ore snapshot]}" "${T[tar|zstd -3 -T2]}")"
