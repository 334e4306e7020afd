#!/usr/bin/env bash
# The long run of the crash and damage campaign (docs/CAMPAIGN.md):
#
#   bench/campaign.sh [SEED] [KILLS] [CORRUPTIONS]      (default 22, 1000, 500)
#
# Builds the workspace in release mode, then runs `target/release/campaign SEED KILLS
# CORRUPTIONS`: KILLS kill points (snapshot, gc, forget, sync; ore or a backend process
# SIGKILLed) and CORRUPTIONS damage trials (a byte flipped, a file truncated or deleted),
# shared evenly among the five archive kinds, with the invariants checked after each. Prints
# the counts, and each violation with the seed, kind and step that replay it; exits 1 when
# there was any.
#
# Environment: CAMPAIGN_KINDS=embedded,splitlog,fs,cache,replicated (a subset replays one
# kind: its steps depend only on the seed and the kind), CAMPAIGN_SCALE (small files in the
# tree, 300), CAMPAIGN_DIR (scratch, default /dev/shm), CAMPAIGN_VERBOSE=1 (a line per step).
set -euo pipefail
SEED=${1:-22}
KILLS=${2:-1000}
CORRUPTIONS=${3:-500}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
(cd "$ROOT" && cargo build --release --workspace --bins >&2)
export CAMPAIGN_DIR=${CAMPAIGN_DIR:-/dev/shm}
exec "$ROOT/target/release/campaign" "$SEED" "$KILLS" "$CORRUPTIONS"
