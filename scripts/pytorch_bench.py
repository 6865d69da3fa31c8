"""PyTorch's side of `repro bench`: the same networks, batch sizes, optimizer
(Adam, lr 1e-3) and random data, timed the same way (median and best of 5
repetitions after one warm-up batch), so that both can run interleaved on one
machine. Needs `pip install torch`; not used by the tests.

    python3 scripts/pytorch_bench.py [--quick]
"""

import statistics
import sys
import time

import torch
from torch import nn

torch.set_num_threads(2)
QUICK = "--quick" in sys.argv
REPETITIONS = 3 if QUICK else 5


def mlp(hidden):
    layers, width = [], 784
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, 10))


def train_rate(hidden, batch, steps):
    net = mlp(hidden)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(steps * batch, 784, generator=gen) * 2 - 1
    y = torch.randint(0, 10, (steps * batch,), generator=gen)

    def step(i):
        opt.zero_grad()
        loss = loss_fn(net(x[i * batch:(i + 1) * batch]), y[i * batch:(i + 1) * batch])
        loss.backward()
        opt.step()

    step(0)
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    return steps * batch / (time.perf_counter() - start)


def eval_rate(hidden, steps):
    net = mlp(hidden)
    x = torch.rand(steps * 1000, 784) * 2 - 1
    with torch.no_grad():
        net(x[:1000])
        start = time.perf_counter()
        for i in range(steps):
            net(x[i * 1000:(i + 1) * 1000]).argmax(1)
    return steps * 1000 / (time.perf_counter() - start)


def report(what, name, batch, measure):
    runs = sorted(measure() for _ in range(REPETITIONS))
    print(f"{what:<10} {name:<15} batch {batch:>4}  {statistics.median(runs):>10.1f} samples/s"
          f"  (best {runs[-1]:.1f}, {REPETITIONS} runs)", flush=True)


budget = 2_000 if QUICK else 10_000
for name, hidden, batch in [("lenet-300-100", [300, 100], 60), ("lenet-300-100", [300, 100], 128),
                            ("mlp-2048-2048", [2048, 2048], 128), ("mlp-2048-2048", [2048, 2048], 256)]:
    report("train", name, batch, lambda: train_rate(hidden, batch, max(budget // batch, 3)))
for name, hidden in [("lenet-300-100", [300, 100]), ("mlp-2048-2048", [2048, 2048])]:
    report("evaluate", name, 1000, lambda: eval_rate(hidden, 4 if QUICK else 10))
