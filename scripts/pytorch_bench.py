"""PyTorch's side of `repro bench`: the same networks, batch sizes, optimizer
(Adam, lr 1e-3), random data and row names, timed the same way (median and
best of 5 repetitions, each after one untimed warm-up batch), so that
`scripts/bench-pair.py` can run both interleaved and pair their rows. Run it
on an otherwise idle machine: with two OpenMP threads on two busy cores,
PyTorch runs 10-40x slower (measured: LeNet-300-100 5,300 samples/s on one
thread, 190-1,050 on two, while two compilers ran). Each
network is written the way its authors' code computes it:

- lenet5-conv: Bain's LeNet5 (conv 3x3 pad 1: 64, 64, max-pool 2, FC 256, 256, 10).
- bnn-*: Laborieux et al.'s binarized MLP: bias-free linear layers on sign(W)
  (identity straight-through estimator), BatchNorm1d(track_running_stats=False)
  after every layer, sign activations with the hardtanh estimator.
- fc1-masked-3pct: LeNet-300-100 with 3% of every weight matrix kept; as Bain's
  code, weights start masked and gradients are multiplied by the mask.
- sparse-2048 / adn-2048: Numenta's sparse MLP (half of each unit's weights
  zero, re-zeroed after every step; k-WTA keeping 5%) and its active-dendrite
  version (10 segments over a 784-d context, absolute-max gating, the segment
  products computed per example as `einsum("ijk,bk->bij")`).

Needs `pip install torch`; not used by the tests.

    python3 scripts/pytorch_bench.py [--quick] [--only NAME[,NAME...]]
"""

import statistics
import sys
import time

import torch
from torch import nn

torch.set_num_threads(2)
QUICK = "--quick" in sys.argv
ONLY = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else []
REPETITIONS = 3 if QUICK else 5


def mlp(hidden):
    layers, width = [], 784
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, 10))


def lenet5():
    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        nn.Conv2d(1, 64, 3, padding=1), nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(12544, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))


class SignWeight(torch.autograd.Function):
    """sign(W) forward, identity backward (the binary weights' gradient goes to W)."""

    @staticmethod
    def forward(ctx, w):
        return torch.sign(w)

    @staticmethod
    def backward(ctx, g):
        return g


class SignActivation(torch.autograd.Function):
    """sign(x) forward, hardtanh's gradient backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sign(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x.abs() <= 1).to(g.dtype)


class BinaryLinear(nn.Linear):
    def forward(self, x):
        return nn.functional.linear(x, SignWeight.apply(self.weight))


class BNN(nn.Module):
    def __init__(self, width):
        super().__init__()
        sizes = [784, width, width, 10]
        self.fc = nn.ModuleList(BinaryLinear(a, b, bias=False) for a, b in zip(sizes, sizes[1:]))
        for layer in self.fc:
            nn.init.uniform_(layer.weight, -0.05, 0.05)
        self.bn = nn.ModuleList(nn.BatchNorm1d(b, track_running_stats=False) for b in sizes[1:])

    def forward(self, x):
        for i, (fc, bn) in enumerate(zip(self.fc, self.bn)):
            x = bn(fc(x))
            if i + 1 < len(self.fc):
                x = SignActivation.apply(x)
        return x


class SignProduct(nn.Module):
    """One binarized hidden layer's product alone, sign(W) h for fixed +-1 inputs h
    (as repro's `bnn-4096-layer` rows); the data only sets the batch size."""

    def __init__(self, width):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.weight = nn.Parameter(torch.rand(width, width, generator=gen) * 2 - 1)
        self.h = torch.randint(0, 2, (1000, width), generator=gen).float() * 2 - 1

    def forward(self, x):
        return self.h[: x.shape[0]] @ torch.sign(self.weight).t()


def kwta(x, k):
    """Keeps the k largest units of every example, zeroes the rest."""
    top = x.topk(k, dim=1).indices
    return torch.zeros_like(x).scatter(1, top, x.gather(1, top))


def half_zero_mask(out, inp, gen):
    """Half of each unit's weights fixed at zero."""
    mask = torch.ones(out, inp)
    for row in mask:
        row[torch.randperm(inp, generator=gen)[: inp // 2]] = 0
    return mask


class Active(nn.Module):
    """Numenta's sparse MLP, with active dendrites when `segments` > 0."""

    def __init__(self, segments, context=784, width=2048):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.fc = nn.ModuleList([nn.Linear(784, width), nn.Linear(width, width)])
        self.masks = [half_zero_mask(width, 784, gen), half_zero_mask(width, width, gen)]
        self.rezero()
        self.out = nn.Linear(width, 10)
        self.segments = nn.ParameterList(
            nn.Parameter(torch.empty(width, segments, context).uniform_(-0.01, 0.01))
            for _ in range(2 if segments else 0))
        self.k = round(0.05 * width)
        self.context = context if segments else 0

    def rezero(self):
        with torch.no_grad():
            for fc, mask in zip(self.fc, self.masks):
                fc.weight.mul_(mask)

    def forward(self, x):
        ctx = x[:, 784:]
        x = x[:, :784]
        for i, fc in enumerate(self.fc):
            y = fc(x)
            if self.context:
                d = torch.einsum("ijk,bk->bij", self.segments[i], ctx)
                strongest = d.abs().max(dim=2, keepdim=True).indices
                y = y * torch.sigmoid(d.gather(2, strongest).squeeze(2))
            x = kwta(y, self.k)
        return self.out(x)


def masked_fc1(keep):
    net = mlp([300, 100])
    gen = torch.Generator().manual_seed(1)
    masks = {}
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("weight"):
                masks[name] = (torch.rand(p.shape, generator=gen) < keep).float()
                p.mul_(masks[name])
    return net, masks


def data(n, context, gen):
    x = torch.rand(n, 784, generator=gen) * 2 - 1
    if context:
        x = torch.cat([x, torch.rand(1, context, generator=gen).expand(n, context)], 1)
    return x, torch.randint(0, 10, (n,), generator=gen)


def train_rate(build, batch, steps):
    net, after_backward, after_step, context = build()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    x, y = data(steps * batch, context, torch.Generator().manual_seed(0))

    def step(i):
        opt.zero_grad()
        loss = loss_fn(net(x[i * batch:(i + 1) * batch]), y[i * batch:(i + 1) * batch])
        loss.backward()
        after_backward()
        opt.step()
        after_step()

    step(0)
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    return steps * batch / (time.perf_counter() - start)


def eval_rate(build, steps):
    net, _, _, context = build()
    x, _ = data(steps * 1000, context, torch.Generator().manual_seed(0))
    with torch.no_grad():
        net(x[:1000])
        start = time.perf_counter()
        for i in range(steps):
            net(x[i * 1000:(i + 1) * 1000]).argmax(1)
    return steps * 1000 / (time.perf_counter() - start)


def plain(make):
    def build():
        return make(), lambda: None, lambda: None, 0
    return build


def masked_build():
    net, masks = masked_fc1(0.03)
    params = dict(net.named_parameters())

    def mask_grads():
        for name, mask in masks.items():
            params[name].grad.mul_(mask)

    return net, mask_grads, lambda: None, 0


def active_build(segments):
    def build():
        net = Active(segments)
        return net, lambda: None, net.rezero, net.context
    return build


# name, network, training batch sizes, evaluated at batch 1000, cost (as `repro bench`'s table)
CASES = [
    ("lenet-300-100", plain(lambda: mlp([300, 100])), [60, 128], True, 1),
    ("mlp-2048-2048", plain(lambda: mlp([2048, 2048])), [128, 256], True, 1),
    ("lenet5-conv", plain(lenet5), [60], True, 20),
    ("bnn-1024", plain(lambda: BNN(1024)), [100], True, 1),
    ("bnn-4096", plain(lambda: BNN(4096)), [100], True, 10),
    # repro's float evaluation of the same network; PyTorch has one path, measured again.
    ("bnn-4096-float", plain(lambda: BNN(4096)), [], True, 10),
    # The 4096 x 4096 layer's product alone; PyTorch has one (float) path, measured twice.
    ("bnn-4096-layer", plain(lambda: SignProduct(4096)), [], True, 10),
    ("bnn-4096-layer-float", plain(lambda: SignProduct(4096)), [], True, 10),
    ("fc1-masked-3pct", masked_build, [60], False, 1),
    ("sparse-2048", active_build(0), [256], True, 2),
    ("adn-2048", active_build(10), [256], True, 2),
]


def report(what, name, batch, measure):
    runs = sorted(measure() for _ in range(REPETITIONS))
    print(f"{what:<10} {name:<15} batch {batch:>4}  {statistics.median(runs):>10.1f} samples/s"
          f"  (best {runs[-1]:.1f}, {REPETITIONS} runs)", flush=True)


budget = 2_000 if QUICK else 10_000
# Batches each evaluation run times at least without --quick (`repro bench`'s MIN_EVAL_BATCHES).
MIN_EVAL_BATCHES = 5
for name, build, batches, evaluated, cost in CASES:
    if ONLY and name not in ONLY:
        continue
    for batch in batches:
        report("train", name, batch, lambda: train_rate(build, batch, max(budget // (batch * cost), 3)))
    if evaluated:
        steps = max(4 // cost, 2) if QUICK else max(10 // cost, MIN_EVAL_BATCHES)
        report("evaluate", name, 1000, lambda: eval_rate(build, steps))
