#!/usr/bin/env python3
"""Interleaved timing of a few commands, for A/B measurements on a noisy machine.

    bench/interleave.py CASES ROUNDS

CASES is a JSON object {"name": [[argv...], {"ENV": "value", ...}], ...}; one case must be
named "find" (the reference: a bare `find -printf` walk, a `cp`, or any command to compare
against). Each round runs every case once, in order, so a slow minute of the machine falls
on all of them alike. Prints, per case, the wall time's minimum and median, the median as a
ratio of the reference's median, and the median CPU time (user + system of the command and
its children).

Example (an unchanged re-snapshot against a stat walk of the same tree):

    bench/interleave.py '{"find": [["find", "/usr/share", "-printf", "%s %T@ %i\\n"], {}],
      "ore": [["target/release/ore", "-q", "-a", "/dev/shm/a", "snapshot", "s", "/usr/share"],
              {"ORE_PASSPHRASE": "bench", "XDG_CACHE_HOME": "/dev/shm/c"}]}' 21
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def run(cmd, env):
    e = dict(os.environ)
    e.update(env)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    cases = json.loads(sys.argv[1])
    rounds = int(sys.argv[2])
    if "find" not in cases:
        sys.exit("CASES needs a case named \"find\": the reference the others are compared with")
    res = {k: [] for k in cases}
    for _ in range(rounds):
        for k, (cmd, env) in cases.items():
            res[k].append(run(cmd, env))
    ref = statistics.median(w for w, _ in res["find"])
    for k, v in res.items():
        walls = [w for w, _ in v]
        cpus = [c for _, c in v]
        med = statistics.median(walls)
        print(f"{k:12s} wall min {min(walls):.3f} med {med:.3f} (/find {med / ref:.2f})"
              f"  cpu med {statistics.median(cpus):.3f}")


if __name__ == "__main__":
    main()
