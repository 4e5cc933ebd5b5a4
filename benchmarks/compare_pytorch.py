#!/usr/bin/env python3
"""ltlearn next to PyTorch on the same workloads, in one invocation, with the same thread count.

Runs the Google Benchmark binary ltl_bench (JSON output) and the PyTorch equivalents (CPU,
torch.set_num_threads(N)) workload by workload, alternating the two so that a change in machine
load hits both, and prints ltlearn/PyTorch ratios. Also reports the loss kernel's GB/s as a share
of this machine's copy bandwidth at the same working-set size, and the peak RSS of a ResNet-32
training run (each framework in a process of its own).

PyTorch (Debian's python3-torch) is used here only; the library and its tests never need it.

  python3 benchmarks/compare_pytorch.py --bench build/release/benchmarks/ltl_bench --threads 2
  python3 benchmarks/compare_pytorch.py ... --only loss,model --min-time 1 --json out.json

--device cuda runs the GPU workloads instead (ltl_bench_cuda, built with -DLTL_WITH_CUDA=ON): the
ResNet-32 CIFAR training step at batch 128, ResNet-50 224x224 at batch 64, and the fused loss at
(512, 8142) and (1024, 8142) with the device's copy bandwidth, each beside PyTorch eager on the
same GPU (cuDNN, TF32 off as in ltlearn, composite losses). Both sides are timed with CUDA events.
Where PyTorch sees no GPU, it says why and runs the CPU comparison instead.

  python3 benchmarks/compare_pytorch.py --device cuda --cuda-bench build/release/benchmarks/ltl_bench_cuda
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

LOSS_VARIANTS = ["ce", "cdt", "ldam", "la", "cb_focal", "drw"]
LOSS_SIZES = [(128, 10), (128, 100), (256, 1000), (512, 8142)]
CUDA_LOSS_SIZES = [(512, 8142), (1024, 8142)]
MODEL_SHAPES = [(3, 32), (1, 28)]


def conv_layers():
    out = []
    for hw in (32, 28):
        h2 = (hw + 1) // 2
        h4 = (h2 + 1) // 2
        out += [(128, 3 if hw == 32 else 1, 16, hw, 1), (128, 16, 16, hw, 1), (128, 16, 32, hw, 2),
                (128, 32, 32, h2, 1), (128, 32, 64, h2, 2), (128, 64, 64, h4, 1)]
    return out


# ----------------------------------------------------------------------------------------------
# ltlearn side: one ltl_bench run per filter, results by benchmark name.
def run_ltl(binary, filt, threads, min_time):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    try:
        subprocess.run([binary, f"--benchmark_filter={filt}", f"--benchmark_min_time={min_time}",
                        f"--benchmark_out={out}", "--benchmark_out_format=json"],
                       env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(out) as f:
            data = json.load(f)
    finally:
        os.unlink(out)
    return {b["name"]: b for b in data["benchmarks"] if b.get("run_type", "iteration") == "iteration"}


def run_ltl_cuda(binary, filt, min_time):
    """ltl_bench_cuda results by name (manual-time runs); skipped ones carry their reason."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    try:
        subprocess.run([binary, f"--benchmark_filter={filt}", f"--benchmark_min_time={min_time}",
                        f"--benchmark_out={out}", "--benchmark_out_format=json"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(out) as f:
            data = json.load(f)
    finally:
        os.unlink(out)
    res = {}
    for b in data["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration":
            continue
        name = b["name"]
        for suffix in ("/manual_time", "/real_time"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
        res[name] = b
    return res


def ltl_skip_reason(b):
    """Why ltl_bench_cuda skipped a benchmark (None when it ran)."""
    if b is None:
        return "not in ltl_bench_cuda's output"
    if b.get("error_occurred"):
        return b.get("error_message", "skipped")
    return None


def seconds_per_iter(b):
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
    return b["real_time"] * scale


# ----------------------------------------------------------------------------------------------
# PyTorch side.
def torch_setup(threads):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    return torch


def time_torch(fn, min_time, reps=3):
    """Median over `reps` repetitions of the mean seconds per call, each at least min_time long."""
    fn()
    fn()
    results = []
    for _ in range(reps):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= min_time:
                break
        results.append(dt / n)
    results.sort()
    return results[len(results) // 2]


def time_torch_cuda(torch, fn, min_time, reps=3):
    """As time_torch, with each call timed by CUDA events on the current stream."""
    fn()
    fn()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    results = []
    for _ in range(reps):
        n, gpu_s, t0 = 0, 0.0, time.perf_counter()
        while True:
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            gpu_s += start.elapsed_time(stop) * 1e-3
            n += 1
            if time.perf_counter() - t0 >= min_time:
                break
        results.append(gpu_s / n)
    results.sort()
    return results[len(results) // 2]


def cuda_unavailable_reason(torch):
    """Why PyTorch cannot run on a GPU here (None when it can)."""
    if not torch.cuda.is_available():
        if torch.version.cuda is None:
            return f"this PyTorch ({torch.__version__}) was built without CUDA"
        return "PyTorch sees no CUDA device (driver missing or no GPU)"
    return None


def resnet50(torch):
    """torchvision's ResNet-50 (ImageNet layout)."""
    import torchvision
    return torchvision.models.resnet50(num_classes=1000)


def run_cuda(args, torch, results):
    """The GPU comparison: training steps, fused loss and copy bandwidth (see the module doc)."""
    F = torch.nn.functional
    dev = torch.device("cuda")
    # ltlearn computes in FP32 with FMA (no TF32 unless asked): the same for PyTorch.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    results["gpu"] = torch.cuda.get_device_name(0)
    print(f"GPU {results['gpu']}, torch {torch.__version__} (CUDA {torch.version.cuda}, "
          f"cuDNN {torch.backends.cudnn.version()})")
    groups = set(args.only.split(","))

    if "model" in groups:
        print("\n## Training steps (images/s; ratio = ltl / torch)")
        ltl = run_ltl_cuda(args.cuda_bench, "BM_cuda_resnet(32|50)_train", max(args.min_time, 2))
        rows = []
        for name, batch, hw, make in (("resnet32_train", 128, 32, lambda: resnet32(torch, 3)),
                                      ("resnet50_train", 64, 224, lambda: resnet50(torch))):
            net = make().to(dev)
            classes = 10 if name.startswith("resnet32") else 1000
            opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4)
            g = torch.Generator().manual_seed(7)
            x = torch.randn(batch, 3, hw, hw, generator=g).to(dev)
            y = torch.randint(0, classes, (batch,), generator=g).to(dev)

            def train():
                net.train()
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(net(x), y).backward()
                opt.step()
            t_torch = time_torch_cuda(torch, train, max(args.min_time, 2))
            b = ltl.get(f"BM_cuda_{name}/{batch}")
            why = ltl_skip_reason(b)
            row = {"workload": name, "batch": batch, "torch_img_s": batch / t_torch}
            if why:
                row["ltl_skipped"] = why
                print(f"{name:15} b{batch:<4} torch {row['torch_img_s']:9.1f} img/s  ltl skipped: {why}")
            else:
                t_ltl = seconds_per_iter(b)
                row.update({"ltl_img_s": batch / t_ltl, "ratio": t_torch / t_ltl,
                            "ltl_peak_MiB": b.get("peak_MiB")})
                print(f"{name:15} b{batch:<4} ltl {row['ltl_img_s']:9.1f} img/s  torch {row['torch_img_s']:9.1f} "
                      f"img/s  ratio {row['ratio']:.2f}x")
            rows.append(row)
            del net, opt
            torch.cuda.empty_cache()
        results["model"] = rows

    if "loss" in groups:
        print("\n## Fused loss on the GPU, forward + backward (GB/s = logits read + gradient written)")
        print(f"{'variant':9} {'B':>5} {'C':>5} | {'ltl autograd':>12} {'torch':>10} {'ratio':>7} | "
              f"{'kernel GB/s':>11} {'copy GB/s':>9} {'share':>6}")
        ltl = run_ltl_cuda(args.cuda_bench, "BM_cuda_(loss_(autograd|kernel)|copy_bandwidth)", args.min_time)
        rows = []
        for B, C in CUDA_LOSS_SIZES:
            copy_b = ltl.get(f"BM_cuda_copy_bandwidth/B:{B}/C:{C}")
            copy = None if ltl_skip_reason(copy_b) else copy_b["bytes_per_second"]
            g = torch.Generator().manual_seed(11)
            z0 = (torch.randn(B, C, generator=g) * 2.0).to(dev)
            y = torch.randint(0, C, (B,), generator=g).to(dev)
            for v, name in enumerate(LOSS_VARIANTS):
                fn = torch_loss_fn(torch, name, C)
                z = z0.clone().requires_grad_(True)

                def step():
                    z.grad = None
                    fn(z, y).backward()
                t_torch = time_torch_cuda(torch, step, args.min_time)
                row = {"variant": name, "B": B, "C": C, "torch_s": t_torch,
                       "copy_GBps": copy / 1e9 if copy else None}
                a = ltl.get(f"BM_cuda_loss_autograd/variant:{v}/B:{B}/C:{C}")
                k = ltl.get(f"BM_cuda_loss_kernel/variant:{v}/B:{B}/C:{C}")
                why = ltl_skip_reason(a) or ltl_skip_reason(k)
                if why:
                    row["ltl_skipped"] = why
                    print(f"{name:9} {B:5} {C:5} | {'-':>12} {t_torch * 1e6:8.1f}us {'-':>7} | ltl skipped: {why}")
                else:
                    t_ltl = seconds_per_iter(a)
                    row.update({"ltl_s": t_ltl, "ratio": t_torch / t_ltl, "kernel_GBps": k["bytes_per_second"] / 1e9,
                                "share": k.get("copy_share")})
                    share = f"{row['share'] * 100:5.0f}%" if row["share"] is not None else "    -"
                    copy_txt = f"{row['copy_GBps']:9.2f}" if copy else f"{'-':>9}"
                    print(f"{name:9} {B:5} {C:5} | {t_ltl * 1e6:10.1f}us {t_torch * 1e6:8.1f}us "
                          f"{row['ratio']:6.1f}x | {row['kernel_GBps']:11.2f} {copy_txt} {share}")
                rows.append(row)
        results["loss"] = rows


def resnet32(torch, in_channels):
    """ResNet-32 for small images with option-A shortcuts (He et al. 2016 §4.2)."""
    nn, F = torch.nn, torch.nn.functional

    class Shortcut(nn.Module):
        def __init__(self, planes):
            super().__init__()
            self.pad = planes // 4

        def forward(self, x):
            return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = Shortcut(cout) if stride != 1 or cin != cout else nn.Identity()

        def forward(self, x):
            h = F.relu(self.bn1(self.conv1(x)))
            return F.relu(self.bn2(self.conv2(h)) + self.shortcut(x))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
            self.bn = nn.BatchNorm2d(16)
            layers, cin = [], 16
            for s, cout in enumerate((16, 32, 64)):
                for b in range(5):
                    layers.append(Block(cin, cout, 2 if (b == 0 and s > 0) else 1))
                    cin = cout
            self.layers = nn.Sequential(*layers)
            self.fc = nn.Linear(64, 10)
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.kaiming_normal_(m.weight)

        def forward(self, x):
            h = self.layers(F.relu(self.bn(self.conv(x))))
            return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))

    return Net()


def peak_rss_mib():
    """Peak resident set of this process image (VmHWM). Not ru_maxrss: execve inherits it."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return -1.0


def lt_counts(C):
    return [int(5000.0 * 0.01 ** (c / max(1, C - 1))) + 1 for c in range(C)]


def torch_loss_fn(torch, variant, C):
    """PyTorch's composite implementation of each loss variant (as the papers' code writes it)."""
    F = torch.nn.functional
    n = torch.tensor(lt_counts(C), dtype=torch.float64)

    def cb_weights(beta=0.9999):
        w = (1 - beta) / (1 - beta ** n)
        return (w * C / w.sum()).float()

    if variant == "ce":
        return lambda z, y: F.cross_entropy(z, y)
    if variant == "cdt":
        a = ((n.max() / n) ** 0.2).float()
        return lambda z, y: F.cross_entropy(z / a, y)
    if variant == "ldam":
        m = 1.0 / n ** 0.25
        m = (m * (0.5 / m.max())).float()

        def ldam(z, y):
            onehot = torch.zeros_like(z).scatter_(1, y[:, None], 1.0)
            return F.cross_entropy(30.0 * (z - onehot * m[None, :]), y)
        return ldam
    if variant == "la":
        b = torch.log(n / n.sum()).float()
        return lambda z, y: F.cross_entropy(z + b, y)
    if variant == "cb_focal":
        w = cb_weights()

        def focal(z, y):
            logp = F.log_softmax(z, dim=1).gather(1, y[:, None]).squeeze(1)
            wy = w[y]
            return -(wy * (1 - logp.exp()) * logp).sum() / wy.sum()
        return focal
    w = cb_weights()  # drw: class-balanced weights after the start epoch
    return lambda z, y: F.cross_entropy(z, y, weight=w)


# ----------------------------------------------------------------------------------------------
def fmt_rate(x, unit):
    for k, s in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= k:
            return f"{x / k:.2f} {s}{unit}"
    return f"{x:.1f} {unit}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--bench", default=os.path.join(here, "..", "build", "release", "benchmarks", "ltl_bench"))
    ap.add_argument("--rss-bin", default=None, help="ltl_train_rss (default: beside --bench)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=0.5, help="seconds per measurement")
    ap.add_argument("--only", default="loss,conv,model,data,rss", help="comma-separated groups")
    ap.add_argument("--json", default=None, help="also write all results here")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="cuda: the GPU workloads of ltl_bench_cuda beside PyTorch on the same GPU (groups model, "
                         "loss); falls back to cpu, saying why, when PyTorch sees no GPU")
    ap.add_argument("--cuda-bench", default=None, help="ltl_bench_cuda (default: beside --bench)")
    args = ap.parse_args()
    if args.device == "cuda":
        import torch
        why = cuda_unavailable_reason(torch)
        cuda_bench = args.cuda_bench or os.path.join(os.path.dirname(args.bench), "ltl_bench_cuda")
        if why is None and not os.access(cuda_bench, os.X_OK):
            why = f"{cuda_bench} does not exist (configure with -DLTL_WITH_CUDA=ON and build ltl_bench_cuda)"
        if why is None:
            args.cuda_bench = cuda_bench
            results = {"device": "cuda", "torch": torch.__version__, "loadavg_before": os.getloadavg()}
            run_cuda(args, torch, results)
            if args.json:
                with open(args.json, "w") as f:
                    json.dump(results, f, indent=1)
            return
        print(f"--device cuda: {why}; running the CPU comparison instead")
    groups = set(args.only.split(","))
    rss_bin = args.rss_bin or os.path.join(os.path.dirname(args.bench), "ltl_train_rss")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # PyTorch's OpenMP team too
    torch = torch_setup(args.threads)
    F = torch.nn.functional
    results = {"threads": args.threads, "loadavg_before": os.getloadavg(), "torch": torch.__version__}
    print(f"threads {args.threads}, torch {torch.__version__}, load average {os.getloadavg()}")

    if "loss" in groups:
        print("\n## Fused loss, forward + backward (GB/s = logits read + gradient written)")
        print(f"{'variant':9} {'B':>4} {'C':>5} | {'ltl autograd':>12} {'torch':>10} {'ratio':>7} | "
              f"{'kernel GB/s':>11} {'copy GB/s':>9} {'share':>6}")
        rows = []
        for B, C in LOSS_SIZES:
            ltl = run_ltl(args.bench, f"BM_(loss_(autograd|kernel)/variant:[0-9]|copy_bandwidth)/B:{B}/C:{C}/",
                          args.threads, args.min_time)
            copy = ltl[f"BM_copy_bandwidth/B:{B}/C:{C}/real_time"]["bytes_per_second"]
            g = torch.Generator().manual_seed(11)
            z0 = torch.randn(B, C, generator=g) * 2.0
            y = torch.randint(0, C, (B,), generator=g)
            for v, name in enumerate(LOSS_VARIANTS):
                fn = torch_loss_fn(torch, name, C)
                z = z0.clone().requires_grad_(True)

                def step():
                    z.grad = None
                    fn(z, y).backward()
                t_torch = time_torch(step, args.min_time)
                a = ltl[f"BM_loss_autograd/variant:{v}/B:{B}/C:{C}/real_time"]
                k = ltl[f"BM_loss_kernel/variant:{v}/B:{B}/C:{C}/real_time"]
                t_ltl = seconds_per_iter(a)
                row = {"variant": name, "B": B, "C": C, "ltl_s": t_ltl, "torch_s": t_torch,
                       "ratio": t_torch / t_ltl, "kernel_GBps": k["bytes_per_second"] / 1e9,
                       "copy_GBps": copy / 1e9, "share": k["bytes_per_second"] / copy}
                rows.append(row)
                print(f"{name:9} {B:4} {C:5} | {t_ltl * 1e6:10.1f}us {t_torch * 1e6:8.1f}us {row['ratio']:6.1f}x | "
                      f"{row['kernel_GBps']:11.2f} {row['copy_GBps']:9.2f} {row['share'] * 100:5.0f}%")
        results["loss"] = rows

    if "conv" in groups:
        print("\n## conv2d 3x3, batch 128 (time per call; ratio = torch time / ltl time)")
        print(f"{'layer':22} | {'ltl fwd':>9} {'torch fwd':>9} {'ratio':>6} | {'ltl bwd':>9} {'torch bwd':>9} {'ratio':>6}")
        rows = []
        for (N, cin, cout, hw, s) in conv_layers():
            tag = f"N:{N}/Cin:{cin}/Cout:{cout}/HW:{hw}/stride:{s}/real_time"
            ltl = run_ltl(args.bench, f"BM_conv_(forward|backward)/{tag.replace('/real_time', '')}",
                          args.threads, args.min_time)
            x = torch.randn(N, cin, hw, hw)
            w = torch.randn(cout, cin, 3, 3) * 0.1
            ho = (hw + 2 - 3) // s + 1
            dy = torch.randn(N, cout, ho, ho)
            with torch.no_grad():
                tf = time_torch(lambda: F.conv2d(x, w, None, s, 1), args.min_time)
                tb = time_torch(lambda: torch.ops.aten.convolution_backward(
                    dy, x, w, None, [s, s], [1, 1], [1, 1], False, [0, 0], 1, [True, True, False]), args.min_time)
            lf = seconds_per_iter(ltl[f"BM_conv_forward/{tag}"])
            lb = seconds_per_iter(ltl[f"BM_conv_backward/{tag}"])
            name = f"{cin}->{cout} {hw}x{hw} s{s}"
            rows.append({"layer": name, "ltl_fwd_s": lf, "torch_fwd_s": tf, "ltl_bwd_s": lb, "torch_bwd_s": tb})
            print(f"{name:22} | {lf * 1e3:7.2f}ms {tf * 1e3:7.2f}ms {tf / lf:5.2f}x | "
                  f"{lb * 1e3:7.2f}ms {tb * 1e3:7.2f}ms {tb / lb:5.2f}x")
        results["conv"] = rows

    if "model" in groups:
        print("\n## ResNet-32, batch 128 (images/s; ratio = ltl / torch)")
        rows = []
        for c, hw in MODEL_SHAPES:
            ltl = run_ltl(args.bench, f"BM_resnet32_(train|eval)/128/{c}/{hw}/", args.threads, max(args.min_time, 2))
            net = resnet32(torch, c)
            opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4)
            g = torch.Generator().manual_seed(7)
            x = torch.randn(128, c, hw, hw, generator=g)
            y = torch.randint(0, 10, (128,), generator=g)

            def train():
                net.train()
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(net(x), y).backward()
                opt.step()

            def evaluate():
                net.eval()
                with torch.inference_mode():
                    net(x)
            for mode, fn in (("train", train), ("eval", evaluate)):
                t_torch = time_torch(fn, max(args.min_time, 2))
                t_ltl = seconds_per_iter(ltl[f"BM_resnet32_{mode}/128/{c}/{hw}/real_time"])
                row = {"mode": mode, "input": f"{c}x{hw}x{hw}", "ltl_img_s": 128 / t_ltl,
                       "torch_img_s": 128 / t_torch, "ratio": t_torch / t_ltl}
                rows.append(row)
                print(f"{mode:5} {row['input']:9} ltl {row['ltl_img_s']:8.1f} img/s  torch "
                      f"{row['torch_img_s']:8.1f} img/s  ratio {row['ratio']:.2f}x")
        results["model"] = rows

    if "data" in groups:
        print("\n## Data pipeline on one thread (make_batch + crop + flip + normalise)")
        ltl = run_ltl(args.bench, "BM_data_pipeline|BM_decode_fashion_mnist", args.threads, args.min_time)
        rows = {k: v.get("items_per_second") for k, v in ltl.items()}
        for k, v in rows.items():
            if v:
                print(f"{k:45} {fmt_rate(v, 'img/s')}")
        results["data"] = rows

    if "rss" in groups:
        print("\n## Peak RSS of 10 ResNet-32 training steps at batch 128 (separate processes)")
        rows = []
        for c, hw in MODEL_SHAPES:
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
            out = subprocess.run([rss_bin, str(c), str(hw), "10", "128"], env=env, check=True,
                                 capture_output=True, text=True).stdout
            ltl = json.loads(out.strip().splitlines()[-1])
            code = ("import sys, json; sys.path.insert(0, %r); import compare_pytorch as cp; "
                    "torch = cp.torch_setup(%d); base = cp.peak_rss_mib(); "
                    "net = cp.resnet32(torch, %d); opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, "
                    "weight_decay=2e-4); x = torch.randn(128, %d, %d, %d); y = torch.randint(0, 10, (128,))\n"
                    "for _ in range(10):\n"
                    "    opt.zero_grad(set_to_none=True); torch.nn.functional.cross_entropy(net(x), y).backward(); "
                    "opt.step()\n"
                    "print(json.dumps({'peak_rss_mib': cp.peak_rss_mib(), 'after_import_mib': base}))"
                    ) % (here, args.threads, c, c, hw, hw)
            out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                                 text=True).stdout
            tr = json.loads(out.strip().splitlines()[-1])
            row = {"input": f"{c}x{hw}x{hw}", "ltl_peak_rss_mib": ltl["peak_rss_mib"],
                   "ltl_allocator_peak_mib": ltl["allocator_peak_mib"], "torch_peak_rss_mib": tr["peak_rss_mib"],
                   "torch_after_import_mib": tr["after_import_mib"]}
            rows.append(row)
            print(f"{row['input']:9} ltl {row['ltl_peak_rss_mib']:7.1f} MiB (allocator peak "
                  f"{row['ltl_allocator_peak_mib']:.1f})  torch {row['torch_peak_rss_mib']:7.1f} MiB "
                  f"({row['torch_after_import_mib']:.1f} after import)")
        results["rss"] = rows

    results["loadavg_after"] = os.getloadavg()
    print(f"\nload average after: {os.getloadavg()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
