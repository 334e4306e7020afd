#!/usr/bin/env bash
# An archive over ssh, with and without a slow link: snapshot and restore through
#   ssh HOST backend-splitlog DIR
# against a private sshd on 127.0.0.1: directly, through `delay-link --tcp 0` (the same path with
# the link emulator in it but no delay), and through `delay-link --tcp MS` between ssh and sshd
# (MS milliseconds each way). Prints seconds, and for each step the ratio (speed over the slow
# link / speed without it) against both paths without delay: the emulator itself takes CPU
# that a real network would not, so the second ratio isolates the delay.
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
SSHD_PORT=$(port); LINK_PORT=$(port); ZERO_PORT=$(port)
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
"$BIN/delay-link" --tcp 0 "127.0.0.1:$ZERO_PORT" "127.0.0.1:$SSHD_PORT" 2>/dev/null &
ZERO=$!
trap 'kill $SSHD $LINK $ZERO 2>/dev/null || true' EXIT
sleep 0.5
ssh_id() {  # ssh_id PORT DIR
    echo "ssh -p $1 -i $WORK/user_key -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR $(id -un)@127.0.0.1 $BIN/backend-splitlog $2"
}
secs() { /usr/bin/time -f %e -o "$WORK/t" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }; cat "$WORK/t"; }

echo "source: $SRC; link: $MS ms each way; work dir: $WORK"
SIDES="direct link0 slow"
declare -A T ID
for side in $SIDES; do
    case $side in direct) P=$SSHD_PORT ;; link0) P=$ZERO_PORT ;; slow) P=$LINK_PORT ;; esac
    ID[$side]=$(ssh_id "$P" "$WORK/archive-$side")
    XDG_CACHE_HOME=$WORK/cache-$side "$BIN/ore" -a "${ID[$side]}" init -q
done
# Each step on every path in turn, so that a machine whose speed drifts treats all alike.
for step in snapshot resnapshot restore; do
    for side in $SIDES; do
        export XDG_CACHE_HOME=$WORK/cache-$side
        case $step in
            restore) T[$side-$step]=$(secs "$BIN/ore" -a "${ID[$side]}" restore -q bench "$WORK/restore-$side")
                diff -r --no-dereference "$SRC" "$WORK/restore-$side" >/dev/null 2>&1 ||
                    echo "warning: the $side restore differs from $SRC" >&2
                rm -rf "$WORK/restore-$side" ;;
            *) T[$side-$step]=$(secs "$BIN/ore" -a "${ID[$side]}" snapshot -q bench "$SRC") ;;
        esac
    done
done
for side in $SIDES; do
    printf '%-6s snapshot %7.2f s   re-snapshot %6.2f s   restore %7.2f s\n' "$side" \
        "${T[$side-snapshot]}" "${T[$side-resnapshot]}" "${T[$side-restore]}"
done
for step in snapshot resnapshot restore; do
    awk -v s="$step" -v a="${T[direct-$step]}" -v z="${T[link0-$step]}" -v b="${T[slow-$step]}" \
        'BEGIN { printf "%-11s over the slow link at %3.0f%% of the speed without it (%3.0f%% of the emulator at 0 ms)\n", s, 100 * a / b, 100 * z / b }'
done
