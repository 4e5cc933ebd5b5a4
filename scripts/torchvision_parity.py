#!/usr/bin/env python3
"""Logit parity of ltlearn's ResNets with torchvision's (an independent oracle for the 224-pixel models).

For each architecture: build torchvision's model with a fixed seed, give every batch norm the
running statistics of a random batch and random affine parameters (so that eval mode does real
work), scale the classifier to logits of a trained network's size (|logit| <= 10), export the state
dict to safetensors, run ltlearn's examples/torchvision_logits on the same input [2, 3, 224, 224]
in eval mode, and compare the logits. Then the other direction: the model ltlearn exported back
(nn::save_torchvision) is loaded into a fresh torchvision model with strict=True and must give the
same logits as the original.

  /usr/bin/python3 scripts/torchvision_parity.py --tool build/release/examples/torchvision_logits
  /usr/bin/python3 scripts/torchvision_parity.py --tool ... --models resnet50 resnext50_32x4d --tol 1e-4

Prints, per model, the largest absolute logit difference and that difference relative to the
largest |logit|; exits 1 if a difference exceeds --tol (absolute), 77 without python3-torchvision.
Optional: nothing else in the build or the tests needs Python.
"""
import argparse
import os
import subprocess
import sys
import tempfile

try:
    import torch
    import torchvision
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"torchvision_parity.py: skipped, needs python3-torch and python3-torchvision ({e})")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torchvision_to_safetensors import read_safetensors, write_safetensors  # noqa: E402


def calibrate(model, gen, size):
    """Running statistics of a random batch and random affine parameters for every batch norm (so
    that every part of eval-mode batch norm matters), then the classifier scaled so that the
    largest |logit| on that batch is 10, the scale of a trained network's logits: an untrained
    residual network's logits grow with depth (hundreds to thousands here), where float32's own
    rounding alone exceeds an absolute 1e-4."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.momentum = 1.0  # running statistics = this batch's
    model.train()
    with torch.no_grad():
        calib = torch.randn(2, 3, size, size, generator=gen)
        model(calib)
        for m in bns:
            m.momentum = 0.1
            c = m.num_features
            m.weight.copy_(0.5 + torch.rand(c, generator=gen))
            m.bias.copy_(0.1 * torch.randn(c, generator=gen))
    model.eval()
    with torch.no_grad():
        scale = 10.0 / model(calib).abs().max().item()
        model.fc.weight.mul_(scale)
        model.fc.bias.mul_(scale)


def check(arch, tool, batch, size, seed, tol, work, threads):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    model = getattr(torchvision.models, arch)()
    calibrate(model, gen, size)
    x = torch.randn(batch, 3, size, size, generator=gen)
    with torch.no_grad():
        want = model(x)
    weights = os.path.join(work, f"{arch}.safetensors")
    inp = os.path.join(work, f"{arch}_input.safetensors")
    out = os.path.join(work, f"{arch}_logits.safetensors")
    back = os.path.join(work, f"{arch}_back.safetensors")
    write_safetensors(weights, model.state_dict(), {"format": "pt"})
    write_safetensors(inp, {"input": x})
    subprocess.run([tool, "--arch", arch, "--weights", weights, "--input", inp, "--output", out, "--export", back,
                    "--threads", str(threads)], check=True, stdout=subprocess.DEVNULL)
    got = read_safetensors(out)["logits"]
    assert got.shape == want.shape, f"{arch}: ltlearn logits {tuple(got.shape)}, torchvision {tuple(want.shape)}"
    diff = (got.double() - want.double()).abs().max().item()
    scale = want.double().abs().max().item()
    # The other direction: ltlearn's export loads strictly into torchvision and reproduces it.
    again = getattr(torchvision.models, arch)()
    again.load_state_dict(read_safetensors(back), strict=True)
    again.eval()
    with torch.no_grad():
        back_diff = (again(x) - want).abs().max().item()
    ok = diff <= tol and back_diff == 0.0
    print(f"{arch:16s} logits {tuple(want.shape)}  max |logit| {scale:.4g}  max abs diff {diff:.3g}  "
          f"relative {diff / scale:.3g}  export->torchvision diff {back_diff:.3g}  {'ok' if ok else 'FAIL'}")
    sys.stdout.flush()
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tool", default="build/release/examples/torchvision_logits")
    p.add_argument("--models", nargs="+", default=["resnet18", "resnet50", "resnet152", "resnext50_32x4d"])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tol", type=float, default=1e-4, help="largest allowed absolute logit difference")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    if not os.access(args.tool, os.X_OK):
        raise SystemExit(f"{args.tool}: not found; build it with cmake --build build/release --target torchvision_logits")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="ltl_parity_") as work:
        results = [check(a, args.tool, args.batch, args.size, args.seed, args.tol, work, args.threads)
                   for a in args.models]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
