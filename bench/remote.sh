#!/usr/bin/env bash
# An archive over ssh, with and without a slow link: snapshot and restore through
#   ssh HOST backend-splitlog DIR
# against a private sshd on 127.0.0.1, first directly, then through `delay-link --tcp MS`
# between ssh and sshd (MS milliseconds each way). Prints seconds and the ratio (speed over the
# slow link / speed without it) for each step.
#
#   bench/remote.sh [SOURCE] [MS]       (default /usr/share 20)
#
# Archives and restore targets live under $ORE_BENCH_WORK (default /dev/shm/ore-bench-remote).
set -euo pipefail
SRC=${1:-/usr/share}
MS=${2:-20}
WORK=${ORE_BENCH_WORK:-/dev/shm/ore-bench-remote}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/target/release
[ -x /usr/sbin/sshd ] || { echo "needs /usr/sbin/sshd (apt-get install openssh-server)" >&2; exit 1; }
(cd "$ROOT" && cargo build --release --workspace >&2)

rm -rf "$WORK"; mkdir -p "$WORK"
export ORE_PASSPHRASE=bench
ssh-keygen -q -t ed25519 -N "" -f "$WORK/host_key"
ssh-keygen -q -t ed25519 -N "" -f "$WORK/user_key"
cp "$WORK/user_key.pub" "$WORK/authorized_keys"
mkdir -p /run/sshd 2>/dev/null || true
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SSHD_PORT=$(port); LINK_PORT=$(port)
cat > "$WORK/sshd_config" <<CONF
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $WORK/host_key
PidFile $WORK/sshd.pid
AuthorizedKeysFile $WORK/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
PermitRootLogin prohibit-password
LogLevel ERROR
CONF
/usr/sbin/sshd -D -e -f "$WORK/sshd_config" 2>"$WORK/sshd.log" &
SSHD=$!
"$BIN/delay-link" --tcp "$MS" "127.0.0.1:$LINK_PORT" "127.0.0.1:$SSHD_PORT" 2>"$WORK/link.log" &
LINK=$!
trap 'kill $SSHD $LINK 2>/dev/null || true' EXIT
sleep 0.5
ssh_id() {  # ssh_id PORT DIR
    echo "ssh -p $1 -i $WORK/user_key -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR $(id -un)@127.0.0.1 $BIN/backend-splitlog $2"
}
secs() { /usr/bin/time -f %e -o "$WORK/t" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }; cat "$WORK/t"; }

echo "source: $SRC; link: $MS ms each way; work dir: $WORK"
declare -A T
for side in direct slow; do
    [ $side = direct ] && P=$SSHD_PORT || P=$LINK_PORT
    A=$(ssh_id "$P" "$WORK/archive-$side")
    export XDG_CACHE_HOME=$WORK/cache-$side
    "$BIN/ore" -a "$A" init -q
    T[$side-snapshot]=$(secs "$BIN/ore" -a "$A" snapshot -q bench "$SRC")
    T[$side-resnapshot]=$(secs "$BIN/ore" -a "$A" snapshot -q bench "$SRC")
    T[$side-restore]=$(secs "$BIN/ore" -a "$A" restore -q bench "$WORK/restore-$side")
    diff -r --no-dereference "$SRC" "$WORK/restore-$side" >/dev/null 2>&1 || echo "warning: the $side restore differs from $SRC" >&2
    rm -rf "$WORK/restore-$side"
    printf '%-6s snapshot %7.2f s   re-snapshot %6.2f s   restore %7.2f s\n' "$side" \
        "${T[$side-snapshot]}" "${T[$side-resnapshot]}" "${T[$side-restore]}"
done
for step in snapshot resnapshot restore; do
    awk -v s="$step" -v a="${T[direct-$step]}" -v b="${T[slow-$step]}" \
        'BEGIN { printf "%-11s over the slow link at %3.0f%% of the speed without it\n", s, 100 * a / b }'
done
