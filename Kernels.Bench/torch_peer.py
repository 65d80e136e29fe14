#!/usr/bin/env python3
"""Times PyTorch eager on the ops and shapes of Kernels.Bench and prints JSON the bench reads.

Run it on the GPU machine, in the same session as the bench, then hand the file to the bench:

    python3 Kernels.Bench/torch_peer.py --out torch.json            # CUDA when present, else the CPU
    dotnet Kernels.Bench.dll --torch-results torch.json             # (or dotnet run ... -- --torch-results torch.json)

Op names and size labels are the bench's own (Sigmoid, SwiGlu, Softmax; 64M, 1024x32000), so each PyTorch row
lands beside the bench's row for the same op and shape. Bytes moved are counted as the bench counts them:
bytes read + written by the op's contract (elementwise 8 B/element, GLU 12 B/output, softmax 8 B/element),
whatever extra traffic an eager composite such as F.silu(g) * u really makes (that is the point of comparing).

Timing: CUDA events around a batch of calls after a warm-up, median over samples (torch.cuda.Event elapsed_time
is in milliseconds); on the CPU, time.perf_counter. Every expression allocates its output, as eager code does;
the caching allocator makes that cheap on the GPU.
"""

import argparse
import datetime
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def label(n):
    """The bench's size label: 16M, 64k, or the number."""
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20}M"
    if n >= 1 << 10 and n % (1 << 10) == 0:
        return f"{n >> 10}k"
    return str(n)


def shape_label(rows, cols):
    return label(cols) if rows == 1 else f"{rows}x{cols}"


def parse_count(text):
    text = text.strip()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper(), 1)
    if scale != 1:
        text = text[:-1]
    return int(text) * scale


def prelu_channels(n):
    c = 4096
    while c > 1 and n % c != 0:
        c //= 2
    return c


# name -> (family, expression text, builder(n or shape, device) -> zero-argument callable)
def uniform(shape, device, scale, dtype=torch.float32):
    return ((torch.rand(shape, device=device, dtype=torch.float32) * 2 - 1) * scale).to(dtype)


def unary(expression, fn, dtype=torch.float32):
    def build(rows, cols, device):
        x = uniform((rows * cols,), device, 8.0, dtype)
        return lambda: fn(x)
    return ("elementwise", expression, build)


def backward(expression, fn, dtype=torch.float32):
    """dx from (x, dy) with ATen's fused backward kernels (what autograd calls)."""
    def build(rows, cols, device):
        x = uniform((rows * cols,), device, 8.0, dtype)
        dy = uniform((rows * cols,), device, 2.0, dtype)
        return lambda: fn(dy, x)
    return ("backward", expression, build)


def gated(expression, act, dtype=torch.float32):
    def build(rows, cols, device):
        g = uniform((rows * cols,), device, 8.0, dtype)
        u = uniform((rows * cols,), device, 8.0, dtype)
        return lambda: act(g) * u
    return ("glu", expression, build)


def swiglu_backward(rows, cols, device):
    """dGate, dUp of silu(g) * u from eager ops (PyTorch has no fused SwiGLU backward)."""
    g = uniform((rows * cols,), device, 8.0)
    u = uniform((rows * cols,), device, 8.0)
    dy = uniform((rows * cols,), device, 1.0)

    def run():
        return torch.ops.aten.silu_backward(dy * u, g), dy * F.silu(g)
    return run


def softmax_backward(rows, cols, device):
    y = torch.softmax(uniform((rows, cols), device, 10.0), dim=-1)
    dy = uniform((rows, cols), device, 1.0)
    return lambda: torch._softmax_backward_data(dy, y, -1, torch.float32)


def cross_entropy(rows, cols, device):
    """Loss per row and its gradient (forward + backward, as the fused op computes both)."""
    x = uniform((rows, cols), device, 10.0).requires_grad_()
    t = torch.randint(0, cols, (rows,), device=device)

    def run():
        x.grad = None
        F.cross_entropy(x, t, reduction="none").backward(torch.ones(rows, device=device))
        return x.grad
    return run


def packed_swiglu(rows, cols, device):
    packed = uniform((rows, 2 * cols), device, 8.0)

    def run():
        g, u = packed.chunk(2, dim=-1)
        return F.silu(g) * u
    return run


def prelu(rows, cols, device):
    n = rows * cols
    c = prelu_channels(n)
    x = uniform((n // c, c), device, 8.0)        # channels last, as the bench's PReLU: F.prelu's channel is dim 1
    w = uniform((c,), device, 0.5)
    return lambda: F.prelu(x, w)


def rowwise(expression, fn, dtype=torch.float32):
    def build(rows, cols, device):
        x = uniform((rows, cols), device, 10.0, dtype)
        return lambda: fn(x)
    return ("rowwise", expression, build)


OPS = {
    "Sigmoid": unary("torch.sigmoid(x)", torch.sigmoid),
    "Tanh": unary("torch.tanh(x)", torch.tanh),
    "Relu": unary("F.relu(x)", F.relu),
    "LeakyRelu": unary("F.leaky_relu(x, 0.01)", lambda x: F.leaky_relu(x, 0.01)),
    "Elu": unary("F.elu(x, 1.0)", lambda x: F.elu(x, 1.0)),
    "Selu": unary("F.selu(x)", F.selu),
    "Gelu": unary("F.gelu(x)", F.gelu),
    "GeluTanh": unary("F.gelu(x, approximate='tanh')", lambda x: F.gelu(x, approximate="tanh")),
    "Silu": unary("F.silu(x)", F.silu),
    "Swish": unary("F.silu(x) (beta = 1)", F.silu),
    "QuickGelu": unary("x * torch.sigmoid(1.702 * x)", lambda x: x * torch.sigmoid(1.702 * x)),
    "Softplus": unary("F.softplus(x, beta=1, threshold=20)", lambda x: F.softplus(x, beta=1.0, threshold=20.0)),
    "Mish": unary("F.mish(x)", F.mish),
    "HardSigmoid": unary("F.hardsigmoid(x)", F.hardsigmoid),
    "HardSwish": unary("F.hardswish(x)", F.hardswish),
    "Relu6": unary("F.relu6(x)", F.relu6),
    "PRelu": ("elementwise", "F.prelu(x[n/C, C], w[C])", prelu),
    "SwiGlu": gated("F.silu(g) * u", F.silu),
    "GeGlu": gated("F.gelu(g) * u", F.gelu),
    "GeGluTanh": gated("F.gelu(g, approximate='tanh') * u", lambda g: F.gelu(g, approximate="tanh")),
    "ReGlu": gated("F.relu(g) * u", F.relu),
    "SwiGluPacked": ("packed", "g, u = packed.chunk(2, -1); F.silu(g) * u", packed_swiglu),
    "Softmax": rowwise("torch.softmax(x, dim=-1)", lambda x: torch.softmax(x, dim=-1)),
    "LogSoftmax": rowwise("torch.log_softmax(x, dim=-1)", lambda x: torch.log_softmax(x, dim=-1)),
    "SigmoidBackward": backward("aten.sigmoid_backward(dy, sigmoid(x))", lambda dy, x: torch.ops.aten.sigmoid_backward(dy, x)),
    "SiluBackward": backward("aten.silu_backward(dy, x)", torch.ops.aten.silu_backward),
    "GeluBackward": backward("aten.gelu_backward(dy, x)", torch.ops.aten.gelu_backward),
    "SwiGluBackward": ("backward2", "aten.silu_backward(dy * u, g), dy * F.silu(g)", swiglu_backward),
    "SoftmaxBackward": ("rowwise2", "torch._softmax_backward_data(dy, y, -1)", softmax_backward),
    "CrossEntropy": ("ce", "F.cross_entropy(x, t, reduction='none').backward()", cross_entropy),
    "Silu-bf16": unary("F.silu(x) on bf16", F.silu, torch.bfloat16),
    "Gelu-bf16": unary("F.gelu(x) on bf16", F.gelu, torch.bfloat16),
    "SwiGlu-bf16": gated("F.silu(g) * u on bf16", F.silu, torch.bfloat16),
    "SiluBackward-bf16": backward("aten.silu_backward(dy, x) on bf16", torch.ops.aten.silu_backward, torch.bfloat16),
    "Softmax-bf16": rowwise("torch.softmax(x, dim=-1) on bf16", lambda x: torch.softmax(x, dim=-1), torch.bfloat16),
}


def bytes_moved(name, family, rows, cols):
    """The bench's BenchOp.BytesMoved: the op's contract in its storage type (bf16 ops: half the float32 bytes)."""
    n = rows * cols
    if family in ("glu", "packed", "backward", "rowwise2"):
        bytes_ = 12 * n
    elif family == "backward2":
        bytes_ = 20 * n
    elif family == "ce":
        bytes_ = 8 * n + 8 * rows
    elif name == "PRelu":
        bytes_ = 8 * n + 4 * prelu_channels(n)
    else:
        bytes_ = 8 * n
    return bytes_ // 2 if name.endswith("-bf16") else bytes_


def shapes_for(family, gpu, args):
    if family in ("rowwise", "rowwise2", "ce"):
        if args.shapes:
            return args.shapes
        if args.smoke:
            return [(64, 3200), (4, 12825), (1, 262144)]
        base = [(1024, 32000), (32, 128256), (1, 262144)]
        return base[:1] + [(4096, 32000)] + base[1:] if gpu else base
    counts = args.counts or ([1 << 18] if args.smoke else [1 << 26] if gpu else [1 << 24])
    if family == "packed":
        return [(n // 4096, 4096) if n % 4096 == 0 else (1, n) for n in counts]
    return [(1, n) for n in counts]


class Timer:
    """Median seconds per call: warm-up, batches sized to ~2 ms, samples until min_time and min_samples."""

    def __init__(self, device, min_time, min_samples):
        self.cuda = device.type == "cuda"
        self.min_time = min_time
        self.min_samples = min_samples

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def batch_seconds(self, fn, batch):
        if self.cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(batch):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000.0     # elapsed_time is in milliseconds
        t0 = time.perf_counter()
        for _ in range(batch):
            fn()
        return time.perf_counter() - t0

    def measure(self, fn):
        for _ in range(3):                                 # warm-up: kernels loaded, allocator primed
            fn()
        self.sync()
        single = max(self.batch_seconds(fn, 1), 1e-7)
        batch = max(1, min(10000, int(0.002 / single)))
        samples, spent = [], 0.0
        while len(samples) < self.min_samples or spent < self.min_time:
            seconds = self.batch_seconds(fn, batch)
            samples.append(seconds / batch)
            spent += seconds
            if len(samples) >= 2000:
                break
        return statistics.median(samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None, help="cuda, cuda:1 or cpu (default: cuda when available, else cpu)")
    parser.add_argument("--ops", default="", help="comma-separated op names as the bench names them (default: all)")
    parser.add_argument("--sizes", default="", help="element counts (16M) and RxC shapes (1024x32000), as the bench takes them")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, few samples")
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds of samples per op (default 0.3)")
    parser.add_argument("--out", default="-", help="where the JSON goes (default: stdout)")
    args = parser.parse_args()

    args.counts, args.shapes = [], []
    for s in filter(None, (t.strip() for t in args.sizes.split(","))):
        if "x" in s.lower():
            r, c = s.lower().split("x")
            args.shapes.append((parse_count(r), parse_count(c)))
        else:
            args.counts.append(parse_count(s))

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    gpu = device.type == "cuda"
    names = [n.strip() for n in args.ops.split(",") if n.strip()] or list(OPS)
    lookup = {k.lower(): k for k in OPS}
    unknown = [n for n in names if n.lower() not in lookup]
    if unknown:
        parser.error(f"unknown ops {unknown}; known: {', '.join(OPS)}")

    timer = Timer(device, 0.01 if args.smoke else args.min_time, 3 if args.smoke else 15)
    torch.manual_seed(1)
    results, copy_bytes = [], set()
    with torch.inference_mode():
        for name in (lookup[n.lower()] for n in names):
            family, expression, build = OPS[name]
            for rows, cols in shapes_for(family, gpu, args):
                fn = build(rows, cols, device)
                seconds = timer.measure(fn)
                moved = bytes_moved(name, family, rows, cols)
                copy_bytes.add(moved)
                results.append({
                    "op": name, "size": shape_label(rows, cols), "expression": expression,
                    "bytes": moved, "median_s": seconds, "gbps": moved / seconds / 1e9,
                })
                print(f"{name:>13} {shape_label(rows, cols):>11}  {seconds * 1e3:9.3f} ms  {moved / seconds / 1e9:8.1f} GB/s",
                      file=sys.stderr)
                del fn
                if gpu:
                    torch.cuda.empty_cache()
        copies = []
        for moved in sorted(copy_bytes):
            src = torch.empty(moved // 8, device=device, dtype=torch.float32).uniform_()
            dst = torch.empty_like(src)
            seconds = timer.measure(lambda: dst.copy_(src))
            copies.append({"bytes": (moved // 8) * 8, "median_s": seconds, "gbps": (moved // 8) * 8 / seconds / 1e9})
            del src, dst

    report = {
        "tool": "torch_peer.py",
        "torch_version": torch.__version__,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if gpu else "CPU",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "threads": torch.get_num_threads(),
        "results": results,
        "copy": copies,
    }
    text = json.dumps(report, indent=2)
    if args.out == "-":
        print(text)
    else:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
