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

# ---- encoded images (JPEG, PNG) ------------------------------------------------------------------
# jpeg_rgb_8x8, jpeg_gray_8x8 and jpeg_progressive_8x8 were written once by libjpeg-turbo (8x8,
# quality 50) and are committed as they are; the inputs below derive from them or are built here.
import zlib


def png(w, h, color_type, rows):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    raw = b"".join(b"\0" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


with open(os.path.join(here, "corpus", "image", "jpeg_rgb_8x8"), "rb") as f:
    rgb_jpeg = f.read()
put("corpus", "image", "jpeg_truncated", rgb_jpeg[: len(rgb_jpeg) // 2])
put("corpus", "image", "png_rgb_4x4", png(4, 4, 2, [bytes(range(r, r + 12)) for r in range(4)]))
put("corpus", "image", "png_gray_alpha_2x2", png(2, 2, 4, [b"\x10\xff\x20\x80", b"\x30\x00\x40\xff"]))
put("corpus", "image", "png_huge_dimensions", png(1 << 30, 1 << 30, 2, [b"\0" * 3]))
put("corpus", "image", "gif_magic", b"GIF89a" + b"\0" * 10)
put("corpus", "image", "empty", b"")

# ---- ImageNet-LT / Places-LT list files ------------------------------------------------------------
put("corpus", "list", "valid", b"train/n01/a.JPEG 0\ntrain/n02/b c.JPEG 1\n\n")
put("corpus", "list", "crlf", b"a.jpg 3\r\nb.jpg 2\r\n")
put("corpus", "list", "bad_label", b"a.jpg x1\nb.jpg -1\n")
put("corpus", "list", "label_overflow", b"a.jpg 99999999999999999999999\n")
put("corpus", "list", "no_path", b"   7\n")

# ---- iNaturalist annotation JSON ---------------------------------------------------------------------
inat = {"images": [{"id": 1, "file_name": "train_val2018/a/1.jpg"}, {"id": 2, "file_name": "train_val2018/b/2.jpg"}],
        "annotations": [{"image_id": 2, "category_id": 9}, {"image_id": 1, "category_id": 4}],
        "categories": [{"id": 9, "name": "b"}, {"id": 4, "name": "a"}]}
put("corpus", "inat", "valid", json.dumps(inat).encode())
put("corpus", "inat", "unknown_category",
    json.dumps(dict(inat, annotations=[{"image_id": 1, "category_id": 5}, {"image_id": 2, "category_id": 9}])).encode())
put("corpus", "inat", "duplicate_image_id",
    json.dumps(dict(inat, images=[{"id": 1, "file_name": "x.jpg"}, {"id": 1, "file_name": "y.jpg"}])).encode())
put("corpus", "inat", "wrong_types", b'{"images":{"id":"1"},"annotations":[],"categories":null}')
put("corpus", "inat", "deep_nesting", b'{"images":' + b"[" * 5000 + b"]" * 5000 + b"}")
