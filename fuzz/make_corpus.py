#!/usr/bin/env python3
"""Writes the seed corpus (fuzz/corpus/<parser>/) and the past-crash inputs (fuzz/crashes/<parser>/).

The files are committed; rerun this only to regenerate them (output is deterministic). New crashes
found by `bash scripts/ltl.sh fuzz` go into fuzz/crashes/<parser>/ by hand, with a test.
"""
import gzip
import json
import os
import struct

here = os.path.dirname(os.path.abspath(__file__))


def put(kind, parser, name, data):
    d = os.path.join(here, kind, parser)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def gz(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


def idx(magic, dims, payload):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + payload


def st(header, data=b""):
    h = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(h)) + h + data


# ---- IDX -------------------------------------------------------------------------------------
img = idx(0x803, [2, 2, 3], bytes(range(0, 120, 10)))
lab = idx(0x801, [4], bytes([0, 9, 3, 1]))
put("corpus", "idx", "images_valid", img)
put("corpus", "idx", "labels_valid", lab)
put("corpus", "idx", "images_valid.gz", gz(img))
put("corpus", "idx", "labels_valid.gz", gz(lab))
put("corpus", "idx", "images_truncated", img[:-1])
put("corpus", "idx", "images_trailing", img + b"\0")
put("corpus", "idx", "bad_magic", idx(0xD03, [1, 1, 1], b"\0"))
put("corpus", "idx", "labels_out_of_range", idx(0x801, [2], bytes([1, 200])))
put("corpus", "idx", "huge_header", idx(0x803, [0xFFFFFFFF] * 3, b"\0" * 4))
put("corpus", "idx", "gzip_truncated", gz(img)[:-6])
# A gzip whose header declares 2 images of 2x2 but which inflates to 64 MiB (finding 5).
put("crashes", "idx", "gzip_inflates_past_declared.gz", gz(idx(0x803, [2, 2, 2], b"\0" * (8 + (64 << 20)))))
put("crashes", "idx", "labels_inflate_past_declared.gz", gz(idx(0x801, [3], b"\1" * (3 + (64 << 20)))))

# ---- CIFAR -----------------------------------------------------------------------------------
rec10 = bytes([7]) + bytes(range(256)) * 12
rec100 = bytes([3, 42]) + bytes(range(256)) * 12
put("corpus", "cifar", "cifar10_two_records", rec10 + rec10)
put("corpus", "cifar", "cifar100_one_record", rec100)
put("corpus", "cifar", "cifar10_one_record.gz", gz(rec10))
put("corpus", "cifar", "cifar10_bad_label", bytes([10]) + rec10[1:])
put("corpus", "cifar", "cifar10_truncated", rec10[:-1])
put("corpus", "cifar", "empty", b"")

# ---- safetensors / checkpoint ------------------------------------------------------------------
f32 = struct.pack("<4f", 1.0, -2.0, 0.5, 3.0)
state = json.dumps({"epoch": 3, "iteration": 42, "rngs": {"mix": [1, 2, 3, 4]}, "extra": {"batch_in_epoch": 5}})
put("corpus", "safetensors", "checkpoint_valid",
    st({"model.w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
        "optim.m": {"dtype": "F64", "shape": [1], "data_offsets": [16, 24]},
        "__metadata__": {"format": "ltlearn-checkpoint-1", "ltlearn.state": state}},
       f32 + struct.pack("<d", 0.25)))
put("corpus", "safetensors", "i64_scalar", st({"n": {"dtype": "I64", "shape": [], "data_offsets": [0, 8]}},
                                              struct.pack("<q", -7)))
put("corpus", "safetensors", "empty_header", st({}))
put("corpus", "safetensors", "hole", st({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, f32[:8]))
put("corpus", "safetensors", "bad_dtype", st({"a": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}, f32[:4]))
put("corpus", "safetensors", "header_too_long", struct.pack("<Q", 1 << 40) + b"{}")
# Past crashes (issue 20, findings 4 and 6).
put("crashes", "safetensors", "number_overflow_1e999", st(b'{"a":1e999}     '))
put("crashes", "safetensors", "deep_shape_100000",
    st(b'{"t":{"dtype":"F32","shape":' + b"[" * 100000 + b"]" * 100000 + b',"data_offsets":[0,4]}}', f32[:4]))
put("crashes", "safetensors", "deep_state_extra_100000",
    st({"__metadata__": {"format": "ltlearn-checkpoint-1",
                         "ltlearn.state": '{"epoch":1,"iteration":1,"extra":' + "[" * 100000 + "]" * 100000 + "}"}}))
put("crashes", "safetensors", "numel_wraps_to_64_bytes",
    st(b'{"big":{"dtype":"F32","shape":[%d],"data_offsets":[0,64]}}' % ((1 << 62) + 16), b"\0" * 64))
put("crashes", "safetensors", "numel_2_62_plus_1",
    st(b'{"big":{"dtype":"F32","shape":[%d],"data_offsets":[0,64]}}' % ((1 << 62) + 1), b"\0" * 64))
put("crashes", "safetensors", "numel_signed_overflow",
    st(b'{"big":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,64]}}', b"\0" * 64))
put("crashes", "safetensors", "duplicate_tensor_names",
    st(b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
       f32[:4]))
put("crashes", "safetensors", "state_wrong_types",
    st({"__metadata__": {"format": "ltlearn-checkpoint-1", "ltlearn.state": '{"epoch":"3","iteration":[1]}'}}))
