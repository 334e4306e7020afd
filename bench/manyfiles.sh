#!/usr/bin/env bash
# Many small files: a generated tree (default 1,000,000 files of 10-500 bytes in 1,000
# directories) snapshotted, snapshotted again unchanged, and restored, by ore and its peers in
# one run, with ratios against bupstash (the fastest peer) at the end.
#
#   bench/manyfiles.sh [FILES]
#
# Tools: $ORE_BENCH_TOOLS (default "ore bupstash"; add restic, which takes minutes here).
# Restores: $ORE_BENCH_ROUNDS rounds (default 3), the tools taking turns in each, best kept: the
# kernel's cost of making a million files moves by half from one minute to the next here.
# ORE_BASELINE=/path/to/an/older/ore runs that binary too, as "base". Everything lives under
# $ORE_BENCH_WORK (default /dev/shm/ore-manyfiles). Peak RSS is per command (/usr/bin/time).
set -euo pipefail
N=${1:-1000000}
WORK=${ORE_BENCH_WORK:-/dev/shm/ore-manyfiles}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ORE=${ORE_BIN:-$ROOT/target/release/ore}
TOOLS=${ORE_BENCH_TOOLS:-"ore bupstash"}
ROUNDS=${ORE_BENCH_ROUNDS:-3}
BASE=${ORE_BASELINE:-}
[ -z "$BASE" ] || TOOLS="ore base ${TOOLS/ore/}"
FLOOR=$ROOT/target/release/cpu-floor
[ -x "$ORE" ] || (cd "$ROOT" && cargo build --release -p ore >&2)
[ -x "$FLOOR" ] || (cd "$ROOT" && cargo build --release -p ore-tests --bin cpu-floor >&2)
for t in $TOOLS; do
    case $t in ore|base) continue ;; esac
    command -v "$t" >/dev/null || { echo "needs $t (restic: apt-get install restic; bupstash: cargo install --locked bupstash, with libsodium-dev and pkg-config)" >&2; exit 1; }
done
rm -rf "$WORK"; mkdir -p "$WORK/src"
export ORE_PASSPHRASE=bench RESTIC_PASSWORD=bench XDG_CACHE_HOME=$WORK/cache RESTIC_CACHE_DIR=$WORK/cache/restic
echo "making $N small files..."
python3 - "$WORK/src" "$N" <<'PY'
import os, sys, random
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
words = [b"alpha", b"beta", b"gamma", b"delta", b"file", b"dir", b"ore", b"data", b"\n"]
per = 1000
for d in range((n + per - 1) // per):
    p = os.path.join(root, "d%04d" % d)
    os.mkdir(p)
    for i in range(min(per, n - d * per)):
        size = rng.randint(10, 500)
        body = b"file %d in dir %d " % (i, d)
        while len(body) < size:
            body += rng.choice(words) + b" "
        with open(os.path.join(p, "f%04d" % i), "wb") as f:
            f.write(body[:size])
PY
echo "source: $(du -sb "$WORK/src" | cut -f1) bytes in $(find "$WORK/src" -type f | wc -l) files"
declare -A T M S C
run() {
    local name=$1; shift
    /usr/bin/time -f "%e %M %U %S" -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err" || { echo "$name failed:" >&2; cat "$WORK/err" >&2; exit 1; }
    read -r secs kib user sys < "$WORK/time"
    T[$name]=$secs; M[$name]=$kib; C[$name]=$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')
    printf '  %-22s %8.2f s  %6d MiB  %6.2f CPU-s (%.2f user, %.2f system)\n' "$name" "$secs" $((kib / 1024)) "${C[$name]}" "$user" "$sys"
}
# Keeps the best of the rounds of step $1 (its last run is in T, M and C under "$1 now").
best() {
    local name=$1
    if [ -z "${T[$name]:-}" ] || awk -v a="${T[$name now]}" -v b="${T[$name]}" 'BEGIN { exit !(a < b) }'; then
        T[$name]=${T[$name now]}; M[$name]=${M[$name now]}; C[$name]=${C[$name now]}
    fi
}
for t in $TOOLS; do
    case $t in
    ore|base)
        bin=$ORE; [ "$t" = base ] && bin=$BASE
        "$bin" -q -a "$WORK/$t" init
        run "$t snapshot" "$bin" -q -a "$WORK/$t" snapshot many "$WORK/src"
        run "$t re-snapshot" "$bin" -q -a "$WORK/$t" snapshot many "$WORK/src"
        S[$t]=$(du -sb "$WORK/$t" | cut -f1) ;;
    bupstash)
        bupstash new-key -o "$WORK/bupstash.key"
        bupstash init -r "$WORK/bupstash"
        export BUPSTASH_KEY=$WORK/bupstash.key BUPSTASH_REPOSITORY=$WORK/bupstash
        run "bupstash snapshot" bupstash put "$WORK/src"
        id=$(cat "$WORK/out")
        echo "$id" > "$WORK/bupstash.id"
        run "bupstash re-snapshot" bupstash put "$WORK/src"
        S[bupstash]=$(du -sb "$WORK/bupstash" | cut -f1) ;;
    restic)
        restic -q -r "$WORK/restic" init >/dev/null
        run "restic snapshot" restic -q -r "$WORK/restic" backup "$WORK/src"
        run "restic re-snapshot" restic -q -r "$WORK/restic" backup "$WORK/src"
        S[restic]=$(du -sb "$WORK/restic" | cut -f1) ;;
    esac
done
# The restores, the tools taking turns; what each restored is compared with the source once.
for round in $(seq "$ROUNDS"); do
    echo "restore round $round of $ROUNDS:"
    for t in $TOOLS; do
        out=$WORK/restore-$t
        rm -rf "$out"
        case $t in
        ore|base)
            bin=$ORE; [ "$t" = base ] && bin=$BASE
            run "$t restore now" "$bin" -q -a "$WORK/$t" restore many "$out" ;;
        bupstash)
            mkdir -p "$out"
            run "bupstash restore now" bupstash restore --into "$out" "id=$(cat "$WORK/bupstash.id")" ;;
        restic)
            run "restic restore now" restic -q -r "$WORK/restic" restore latest --target "$out"
            out=$out$WORK/src ;;
        esac
        best "$t restore"
        if [ "$round" = 1 ]; then
            diff -rq "$WORK/src" "$out" >/dev/null || { echo "$t restored something else" >&2; exit 1; }
        fi
        rm -rf "$WORK/restore-$t"
    done
done
echo "best restore of $ROUNDS rounds:"
for t in $TOOLS; do
    printf '  %-22s %8.2f s  %6d MiB  %6.2f CPU-s\n' "$t restore" "${T[$t restore]}" $((M[$t restore] / 1024)) "${C[$t restore]}"
done
echo "archive sizes (bytes):"
for t in $TOOLS; do printf '  %-10s %12d\n' "$t" "${S[$t]}"; done
if [[ " $TOOLS " == *" bupstash "* ]]; then
    echo "bupstash / ore (above 1: ore is faster, smaller or lighter):"
    for t in $TOOLS; do
        case $t in ore|base) ;; *) continue ;; esac
        for step in snapshot re-snapshot restore; do
            awk -v a="${T[bupstash $step]}" -v b="${T[$t $step]}" -v n="$t $step" 'BEGIN { printf "  %-18s %6.2fx\n", n, a / b }'
        done
        awk -v a="${S[bupstash]}" -v b="${S[$t]}" -v n="$t archive" 'BEGIN { printf "  %-18s %6.2fx\n", n, a / b }'
        awk -v a="${M[bupstash snapshot]}" -v b="${M[$t snapshot]}" -v n="$t peak RSS" 'BEGIN { printf "  %-18s %6.2fx\n", n, a / b }'
    done
fi
# The floor under a first snapshot of this tree: the system calls per file alone, on one
# thread (`cpu-floor --files`), against the CPU a snapshot twice as fast as bupstash's could
# spend on this machine's cores.
"$FLOOR" --files "$WORK/src" > "$WORK/floor.json"
python3 - "$WORK/floor.json" "${T[bupstash snapshot]:-}" "${C[ore snapshot]:-}" "$(nproc)" <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))
n, least, ore = f["files"], f["passes"]["least"], f["passes"]["ore"]
print(f"system calls per file, alone on one thread, over {n} files:")
print(f"  least (openat, fstat, read, close)           {least['us_per_file']:6.2f} us  {least['cpu_s']:6.2f} CPU-s")
print(f"  ore's (+ fstatat, a 2nd fstat, flistxattr)  {ore['us_per_file']:6.2f} us  {ore['cpu_s']:6.2f} CPU-s")
if sys.argv[2]:
    cores = int(sys.argv[4])
    target = float(sys.argv[2]) / 2
    print(f"a first snapshot 2x bupstash's takes {target:.2f} s: {target * cores:.2f} CPU-s on {cores} cores, "
          f"of which ore's calls alone take {ore['cpu_s']:.2f}" +
          (f" (ore's whole snapshot used {float(sys.argv[3]):.2f})" if sys.argv[3] else ""))
PY
rm -rf "$WORK"
