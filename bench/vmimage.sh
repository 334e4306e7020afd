#!/usr/bin/env bash
# A virtual machine's disk image: a sparse file of IMAGE GiB (default 16) holding DATA GiB
# (default 4) of random bytes in extents spread over it, the rest holes and zeros. It is
# snapshotted, then 1% of its data is rewritten in scattered places of PLACE_KIB (default
# 1024) each and snapshotted again, then restored; ore against bupstash, with
# `cp --sparse=always` of the image between the same file systems as the floor for the
# restore.
#
#   bench/vmimage.sh [IMAGE_GIB] [DATA_GIB] [PLACE_KIB]
#
# What a second snapshot stores again is about one chunk (256 KiB on average) per place
# rewritten, plus the place itself: with 4 KiB places, 1% of the data rewritten touches about
# half of its chunks, whatever the tool (bupstash stores them again too).
#
# ORE_BENCH_REPS restores and copies each (default 3), the best kept.
#
# Needs about 4 x DATA GiB free under $ORE_BENCH_WORK (default /dev/shm/ore-vmimage).
set -euo pipefail
IMAGE=${1:-16}
DATA=${2:-4}
PLACE=${3:-1024}
WORK=${ORE_BENCH_WORK:-/dev/shm/ore-vmimage}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ORE=${ORE_BIN:-$ROOT/target/release/ore}
[ -x "$ORE" ] || (cd "$ROOT" && cargo build --release -p ore >&2)
command -v bupstash >/dev/null || { echo "needs bupstash (cargo install --locked bupstash, with libsodium-dev and pkg-config)" >&2; exit 1; }
rm -rf "$WORK"; mkdir -p "$WORK/src"
export ORE_PASSPHRASE=bench XDG_CACHE_HOME=$WORK/cache
IMG=$WORK/src/disk.img
echo "making a ${IMAGE} GiB image with ${DATA} GiB of data..."
python3 - "$IMG" "$IMAGE" "$DATA" <<'PY'
import os, sys, random
path, image, data = sys.argv[1], int(sys.argv[2]) << 30, int(sys.argv[3]) << 30
rng = random.Random(7)
extent = 64 << 20                       # data in 64 MiB extents, spread evenly with holes between
n = data // extent
gap = (image - data) // n
with open(path, "wb") as f:
    f.truncate(image)
    pos = 0
    for _ in range(n):
        pos += rng.randrange(gap // 2, gap + gap // 2) // 4096 * 4096
        pos = min(pos, image - extent)
        f.seek(pos)
        for _ in range(extent // (8 << 20)):
            f.write(os.urandom(8 << 20))
        pos += extent
PY
echo "image: $(du -B1 --apparent-size "$IMG" | cut -f1) bytes apparent, $(du -B1 "$IMG" | cut -f1) allocated"
declare -A T
run() {
    local name=$1; shift
    /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err" || { echo "$name failed:" >&2; cat "$WORK/err" >&2; exit 1; }
    read -r secs kib < "$WORK/time"
    T[$name]=$secs
    printf '  %-24s %8.2f s  %6d MiB\n' "$name" "$secs" $((kib / 1024))
}
rewrite() {
    # 1% of the data, in scattered writes of PLACE KiB inside the data extents.
    python3 - "$IMG" "$DATA" "$PLACE" <<'PY'
import os, sys, random
path, data, place = sys.argv[1], int(sys.argv[2]) << 30, int(sys.argv[3]) << 10
rng = random.Random(11)
fd = os.open(path, os.O_RDWR)
size = os.fstat(fd).st_size
extents, pos = [], 0
while pos < size:
    try:
        start = os.lseek(fd, pos, os.SEEK_DATA)
    except OSError:
        break
    end = os.lseek(fd, start, os.SEEK_HOLE)
    extents.append((start, end))
    pos = end
done, want = 0, data // 100
while done < want:
    start, end = rng.choice(extents)
    at = start + rng.randrange(0, max(1, (end - start - place) // 4096)) * 4096
    os.pwrite(fd, os.urandom(place), at)
    done += place
os.close(fd)
PY
}
size() { du -sb "$1" | cut -f1; }
"$ORE" -q -a "$WORK/ore" init
bupstash new-key -o "$WORK/bupstash.key"; bupstash init -r "$WORK/bupstash"
export BUPSTASH_KEY=$WORK/bupstash.key BUPSTASH_REPOSITORY=$WORK/bupstash
cat "$IMG" > /dev/null
run "ore snapshot" "$ORE" -q -a "$WORK/ore" snapshot vm "$WORK/src"
O1=$(size "$WORK/ore")
run "bupstash snapshot" bupstash put "$WORK/src"
B1=$(size "$WORK/bupstash")
rewrite
cat "$IMG" > /dev/null
run "ore second snapshot" "$ORE" -q -a "$WORK/ore" snapshot vm "$WORK/src"
O2=$(size "$WORK/ore")
run "bupstash second snapshot" bupstash put "$WORK/src"
B2=$(size "$WORK/bupstash")
# The restores: bupstash's archive goes first (four copies of the data in memory at once made
# the kernel's own page allocation decide the times), and each restore and copy starts with
# the page cache dropped of what the last one left, best of $ORE_BENCH_REPS (default 3),
# interleaved. (The first write into guest memory that a virtual machine has not touched yet
# costs several times a later one: a first restore took 14 s, with 20 s of system time, and a
# first cp 19 s, where later ones took 5 and 3 s.)
rm -rf "$WORK/bupstash"
settle() { rm -rf "$WORK/restore" "$WORK/copy.img"; sync; echo 1 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
best() { awk -v a="$1" -v b="${2:-}" 'BEGIN { print (b == "" || a < b) ? a : b }'; }
for rep in $(seq "${ORE_BENCH_REPS:-3}"); do
    settle
    run "ore restore" "$ORE" -q -a "$WORK/ore" restore vm "$WORK/restore"
    R=$(best "${T[ore restore]}" "${R:-}")
    if [ "$rep" = 1 ]; then
        cmp "$IMG" "$WORK/restore/disk.img" || { echo "ore restored another image" >&2; exit 1; }
        echo "  restored image: $(du -B1 "$WORK/restore/disk.img" | cut -f1) bytes allocated"
    fi
    settle
    run "cp --sparse=always" cp --sparse=always "$IMG" "$WORK/copy.img"
    C=$(best "${T[cp --sparse=always]}" "${C:-}")
done
settle
T[ore restore]=$R T[cp --sparse=always]=$C
awk -v d="$DATA" -v o1="$O1" -v o2="$O2" -v b1="$B1" -v b2="$B2" 'BEGIN {
    printf "stored by the second snapshot: ore %d bytes (%.2f%% of the data), bupstash %d bytes (%.2f%%)\n",
        o2 - o1, 100 * (o2 - o1) / (d * 2^30), b2 - b1, 100 * (b2 - b1) / (d * 2^30) }'
awk -v a="${T[bupstash snapshot]}" -v b="${T[ore snapshot]}" 'BEGIN { printf "first snapshot: bupstash / ore %.2fx\n", a / b }'
awk -v a="${T[bupstash second snapshot]}" -v b="${T[ore second snapshot]}" 'BEGIN { printf "second snapshot: bupstash / ore %.2fx\n", a / b }'
awk -v a="${T[cp --sparse=always]}" -v b="${T[ore restore]}" 'BEGIN { printf "restore (best of each): ore %.2f s, cp %.2f s, cp / ore %.2fx\n", b, a, a / b }'
rm -rf "$WORK"
