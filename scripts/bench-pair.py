#!/usr/bin/env python3
"""Runs `repro bench` and `scripts/pytorch_bench.py` interleaved, network by
network, twice (repro first in round 1, PyTorch first in round 2), and prints
repro's samples/s over PyTorch's for every row of each round. This VM's speed
drifts by 20-40% from minute to minute, so only ratios measured in the same
minutes mean anything; the two rounds show how far they move. Needs
`pip install torch`; the README's performance table comes from its
`--markdown` output.

    python3 scripts/bench-pair.py [--repro target/release/repro] [--quick]
                                  [--only NAME[,NAME...]] [--markdown]
"""

import argparse
import os
import re
import subprocess
import sys

NETWORKS = ["lenet-300-100", "mlp-2048-2048", "lenet5-conv", "bnn-1024", "bnn-4096",
            "bnn-4096-float", "bnn-4096-layer", "bnn-4096-layer-float", "fc1-masked-3pct", "sparse-2048", "adn-2048"]
ROW = re.compile(r"^(train|evaluate)\s+(\S+)\s+batch\s+(\d+)\s+([\d.]+) samples/s\s+\(best ([\d.]+), (\d+) runs\)")


def rows(command):
    """The `train|evaluate NAME batch N X samples/s (best Y, K runs)` rows a command prints."""
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        m = ROW.match(line)
        if m:
            found[(m[1], m[2], int(m[3]))] = float(m[4])
    return found


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repro", default=os.path.join(here, "..", "target", "release", "repro"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=",".join(NETWORKS))
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    quick = ["--quick"] if args.quick else []
    results = [({}, {}), ({}, {})]
    for round_, (ours, theirs) in enumerate(results):
        for net in args.only.split(","):
            repro = lambda: ours.update(rows([args.repro, "bench", "--only", net, *quick]))
            torch = lambda: theirs.update(rows([sys.executable, os.path.join(here, "pytorch_bench.py"), "--only", net, *quick]))
            for run in ([repro, torch] if round_ == 0 else [torch, repro]):
                run()
            # Each row as soon as it is measured: a run cut short keeps what it got.
            done = [k for k in ours if k[1] == net and k in theirs]
            for what, name, batch in done:
                a, b = ours[(what, name, batch)], theirs[(what, name, batch)]
                print(f"round {round_ + 1}: {what} {name} batch {batch}: {a:.1f} / {b:.1f} = {a / b:.2f}x",
                      file=sys.stderr, flush=True)
    keys = [k for k in results[0][0] if all(k in side for pair in results for side in pair)]
    if args.markdown:
        print("| row | repro (samples/s) | PyTorch | ratio | repro, round 2 | PyTorch | ratio |")
        print("|---|---|---|---|---|---|---|")
    for what, name, batch in keys:
        cells = []
        for ours, theirs in results:
            a, b = ours[(what, name, batch)], theirs[(what, name, batch)]
            cells.append((a, b, a / b))
        if args.markdown:
            print(f"| {what} {name} batch {batch} | " + " | ".join(f"{a:,.0f} | {b:,.0f} | {r:.2f}" for a, b, r in cells) + " |")
        else:
            print(f"{what:<10} {name:<15} batch {batch:>4}  " + "   ".join(f"{a:>9.1f} / {b:>9.1f} = {r:5.2f}x" for a, b, r in cells))


if __name__ == "__main__":
    main()
