#!/usr/bin/env python3
"""Decode + augment images/s: ltlearn's image pipeline next to torchvision + PIL, same files,
same transforms, same number of workers, in one invocation.

ltlearn: benchmarks/bench_decode (data::image_pipeline through data::loader), which also writes
the JPEG set (500 x 375, quality 90 by default) and its list file the first time.
torchvision: a Dataset over the same list (PIL.Image.open(...).convert("RGB"), the loader
torchvision's ImageFolder uses), the same transforms (train: RandomResizedCrop(224),
RandomHorizontalFlip, ColorJitter(0.4, 0.4, 0.4), ToTensor, Normalize; eval: Resize(256),
CenterCrop(224), ToTensor, Normalize) and a DataLoader with the same workers and batch size.
Each side gets one untimed warm-up epoch; the two sides alternate epoch blocks `--rounds` times so
that a change in machine load hits both.

torchvision (Debian's python3-torchvision) is needed only here; without it the script prints a
message and exits 0 after the ltlearn side.

  python3 benchmarks/compare_decode.py --bench build/release/benchmarks/bench_decode --workers 2
  python3 benchmarks/compare_decode.py --bench ... --mode eval --count 512 --epochs 3 --json out.json
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def run_ltl(a):
    cmd = [a.bench, "--dir", a.dir, "--count", str(a.count), "--width", str(a.width), "--height", str(a.height),
           "--quality", str(a.quality), "--workers", str(a.workers), "--batch", str(a.batch),
           "--epochs", str(a.epochs), "--mode", a.mode, "--size", str(a.size),
           "--max-reduction", str(a.max_reduction), "--json"]
    # One thread per worker, as the DataLoader's workers run (workers = 0: the calling thread only).
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    print(out.splitlines()[0])
    return json.loads(out.splitlines()[-1])


def run_torchvision(a):
    try:
        import torch
        from PIL import Image
        from torch.utils.data import DataLoader, Dataset
        from torchvision import transforms as T
    except ImportError as e:
        print(f"compare_decode: torchvision side skipped ({e}); install python3-torchvision to compare")
        return None

    norm = T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    if a.mode == "train":
        tf = T.Compose([T.RandomResizedCrop(a.size), T.RandomHorizontalFlip(), T.ColorJitter(0.4, 0.4, 0.4),
                        T.ToTensor(), norm])
    else:
        tf = T.Compose([T.Resize(a.size * 8 // 7), T.CenterCrop(a.size), T.ToTensor(), norm])

    class ListDataset(Dataset):
        def __init__(self, root, list_file):
            self.items = []
            with open(list_file) as f:
                for line in f:
                    line = line.rstrip("\r\n")
                    if line.strip():
                        path, label = line.rsplit(None, 1)
                        self.items.append((os.path.join(root, path), int(label)))

        def __len__(self):
            return len(self.items)

        def __getitem__(self, i):
            path, label = self.items[i]
            with open(path, "rb") as f:
                img = Image.open(f).convert("RGB")
            return tf(img), label

    torch.set_num_threads(1)
    ds = ListDataset(a.dir, os.path.join(a.dir, "list.txt"))
    extra = {"persistent_workers": True, "prefetch_factor": 2} if a.workers > 0 else {}
    loader = DataLoader(ds, batch_size=a.batch, shuffle=True, num_workers=a.workers, **extra)

    def epoch():
        s = 0.0
        for x, _ in loader:
            s += float(x[0, 0, 0, 0])
        return s

    epoch()  # warm-up: worker start-up, page cache
    t0 = time.perf_counter()
    for _ in range(a.epochs):
        epoch()
    sec = time.perf_counter() - t0
    n = len(ds) * a.epochs
    ips = n / sec
    print(f"torchvision decode+{a.mode}: {n} images in {sec:.3f} s = {ips:.1f} images/s, "
          f"{ips / max(a.workers, 1):.1f} images/s per worker ({a.workers} workers, batch {a.batch})")
    return {"framework": "torchvision", "mode": a.mode, "images": n, "seconds": sec, "images_per_s": ips,
            "workers": a.workers, "batch": a.batch}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", default="build/release/benchmarks/bench_decode")
    p.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "ltl_bench_jpegs"))
    p.add_argument("--count", type=int, default=256)
    p.add_argument("--width", type=int, default=500)
    p.add_argument("--height", type=int, default=375)
    p.add_argument("--quality", type=int, default=90)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--mode", choices=["train", "eval"], default="train")
    p.add_argument("--max-reduction", type=int, default=1, dest="max_reduction",
                   help="ltlearn's DCT-domain reduction limit (1: off, exact torchvision geometry)")
    p.add_argument("--rounds", type=int, default=1, help="alternate the two sides this many times")
    p.add_argument("--json", help="write all results to this file")
    a = p.parse_args()
    if not os.path.exists(a.bench):
        sys.exit(f"compare_decode: {a.bench} not found (build the bench_decode target)")

    results = []
    for _ in range(a.rounds):
        results.append(run_ltl(a))
        tv = run_torchvision(a)
        if tv is None:
            break
        results.append(tv)
        print(f"ratio ltlearn / torchvision: {results[-2]['images_per_s'] / tv['images_per_s']:.2f}x")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
