#!/usr/bin/env python3
"""Converts torchvision ResNet / ResNeXt state dicts to safetensors (what ltlearn reads) and back.

ltlearn loads and writes torchvision weights as safetensors with torchvision's own names
(ltl::nn::load_torchvision / save_torchvision); this script is the bridge to PyTorch files, so
the library itself never needs Python. Needs Debian's python3-torch (and python3-torchvision for
`pretrained` and for the strict check of `to-pth --arch`); run it with /usr/bin/python3.

  # a torchvision checkpoint (.pth: a state dict, or a dict holding one under 'state_dict' or 'model')
  torchvision_to_safetensors.py to-safetensors resnet50-0676ba61.pth resnet50.safetensors
  # torchvision's pretrained weights by name (downloads them unless they are in the torch hub cache)
  torchvision_to_safetensors.py pretrained resnext50_32x4d IMAGENET1K_V2 resnext50.safetensors
  # back: an ltlearn export to a .pth that torchvision's load_state_dict(strict=True) accepts
  torchvision_to_safetensors.py to-pth exported.safetensors exported.pth --arch resnet50 --num-classes 1000

The safetensors reader and writer are written out here (a few lines) because Debian has no
python3-safetensors; the files are the standard format that the `safetensors` package also reads.
"""
import argparse
import json
import struct
import sys

try:
    import numpy as np
    import torch
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"torchvision_to_safetensors.py: needs python3-torch and python3-numpy ({e})", file=sys.stderr)
    sys.exit(77)

_TO_DTYPE = {"F32": np.float32, "F64": np.float64, "I64": np.int64}
_FROM_TORCH = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}


def write_safetensors(path, tensors, metadata=None):
    """Writes {name: torch.Tensor} as safetensors (names sorted; F32/F64/I64; other floats as F32)."""
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in _FROM_TORCH:
            t = t.to(torch.float32 if t.is_floating_point() else torch.int64)
        raw = t.numpy().tobytes()
        header[name] = {"dtype": _FROM_TORCH[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in chunks:
            f.write(raw)


def read_safetensors(path):
    """Reads a safetensors file into {name: torch.Tensor} (F32, F64 and I64 only)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        if e["dtype"] not in _TO_DTYPE:
            raise SystemExit(f"{path}: tensor '{name}' has dtype {e['dtype']}, only F32, F64 and I64 are read")
        b, en = e["data_offsets"]
        arr = np.frombuffer(data[base + b:base + en], dtype=_TO_DTYPE[e["dtype"]]).reshape(e["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


def state_dict_of(obj, path):
    """The state dict inside a loaded .pth (plain, or under 'state_dict' / 'model'), 'module.' stripped."""
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise SystemExit(f"{path}: no state dict of tensors found")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}


def torchvision_model(arch, num_classes, weights=None):
    import torchvision
    if not hasattr(torchvision.models, arch):
        raise SystemExit(f"torchvision has no model '{arch}'")
    if weights is not None:
        return getattr(torchvision.models, arch)(weights=weights)
    return getattr(torchvision.models, arch)(num_classes=num_classes)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("to-safetensors", help="a .pth state dict -> safetensors")
    a.add_argument("pth")
    a.add_argument("out")
    b = sub.add_parser("pretrained", help="torchvision's pretrained weights by name -> safetensors")
    b.add_argument("arch", help="resnet18, resnet50, resnet152, resnext50_32x4d, ...")
    b.add_argument("weights", help="torchvision weight name, e.g. IMAGENET1K_V1, IMAGENET1K_V2, DEFAULT")
    b.add_argument("out")
    c = sub.add_parser("to-pth", help="safetensors -> a .pth state dict")
    c.add_argument("safetensors")
    c.add_argument("out")
    c.add_argument("--arch", help="also load it into torchvision.models.ARCH with strict=True (a check)")
    c.add_argument("--num-classes", type=int, default=1000)
    args = p.parse_args()

    if args.cmd == "to-safetensors":
        sd = state_dict_of(torch.load(args.pth, map_location="cpu"), args.pth)
        write_safetensors(args.out, sd, {"format": "pt", "source": args.pth})
        print(f"{args.out}: {len(sd)} tensors")
    elif args.cmd == "pretrained":
        m = torchvision_model(args.arch, 1000, weights=args.weights)
        write_safetensors(args.out, m.state_dict(), {"format": "pt", "source": f"torchvision {args.arch} {args.weights}"})
        print(f"{args.out}: {len(m.state_dict())} tensors")
    else:
        sd = read_safetensors(args.safetensors)
        if args.arch:
            m = torchvision_model(args.arch, args.num_classes)
            m.load_state_dict(sd, strict=True)
            print(f"{args.safetensors}: loads into torchvision {args.arch} ({args.num_classes} classes) with strict=True")
        torch.save(sd, args.out)
        print(f"{args.out}: {len(sd)} tensors")


if __name__ == "__main__":
    main()
