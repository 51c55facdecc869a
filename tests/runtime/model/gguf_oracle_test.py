"""Strata's GGUF reader and block dequantization against the `gguf` package (llama.cpp's own
gguf-py: GGUFWriter writes the files, GGUFReader and gguf.quants.dequantize are the oracle):

* a file with every metadata value type and arrays, and a tensor of every type Strata loads
  (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) filled with seeded random
  blocks: metadata equal, shapes equal, every dequantized value bit-identical; a Q2_K tensor is
  read but refused by name when dequantized; general.alignment 64;
* the same file as version 2 opens; a model split in three shards opens from its first file;
* corruptions are errors naming the file and the field, never a crash: version 1, a bad magic,
  an unknown tensor type, a bad alignment, a duplicate key or tensor name, a misaligned or
  overlapping tensor, a byte count that overflows, and truncations at ~260 points;
* a tensor with no elements reads as empty.

Usage: gguf_oracle_test.py GGUF_DUMP_BIN
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
from gguf import GGMLQuantizationType as Q, GGUFReader, GGUFValueType as V, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from oracle_support import finish  # noqa: E402

LOADED = [Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q4_K, Q.Q5_K, Q.Q6_K]
# Byte ranges of each block's fp16 scales: random bytes there could be NaN or infinity.
HALF_FIELDS = {Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2], Q.Q8_0: [0], Q.Q4_K: [0, 2],
               Q.Q5_K: [0, 2], Q.Q6_K: [208], Q.Q2_K: [80, 82]}
failures = []


def check(cond, message):
    if not cond:
        failures.append(message)


def random_tensor(rng, qtype, rows, blocks_per_row):
    block, size = GGML_QUANT_SIZES[qtype]
    cols = block * blocks_per_row
    if qtype == Q.F32:
        return rng.standard_normal((rows, cols)).astype(np.float32), None
    if qtype == Q.F16:
        return rng.standard_normal((rows, cols)).astype(np.float16), None
    raw = rng.integers(0, 256, size=(rows, blocks_per_row, size), dtype=np.uint8)
    if qtype == Q.BF16:
        bits = (rng.standard_normal((rows, cols)).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
        return bits.view(np.uint8).reshape(rows, cols * 2), qtype
    for at in HALF_FIELDS[qtype]:
        scales = (rng.standard_normal((rows, blocks_per_row)) * 0.1).astype(np.float16)
        raw[:, :, at:at + 2] = scales.view(np.uint8).reshape(rows, blocks_per_row, 2)
    return raw.reshape(rows, blocks_per_row * size), qtype


def write_model(path, rng, split_max_tensors=0):
    w = GGUFWriter(path, "llama", split_max_tensors=split_max_tensors)
    w.add_custom_alignment(64)
    for key, value, vtype in [("t.u8", 200, V.UINT8), ("t.i8", -100, V.INT8), ("t.u16", 60000, V.UINT16),
                              ("t.i16", -30000, V.INT16), ("t.u32", 4000000000, V.UINT32), ("t.i32", -2000000000, V.INT32),
                              ("t.f32", 0.1, V.FLOAT32), ("t.bool", True, V.BOOL), ("t.str", "héllo ✓", V.STRING),
                              ("t.u64", 2**62 + 5, V.UINT64), ("t.i64", -(2**62), V.INT64), ("t.f64", 1e-300, V.FLOAT64)]:
        w.add_key_value(key, value, vtype)
    w.add_array("t.arr_str", ["a", "", "日本"])
    w.add_array("t.arr_i32", [1, -2, 3])
    w.add_array("t.arr_f32", [0.5, -1.25])
    w.add_array("t.arr_bool", [True, False])
    for k, qtype in enumerate(LOADED + [Q.Q2_K]):
        data, raw = random_tensor(rng, qtype, rows=3, blocks_per_row=1 if GGML_QUANT_SIZES[qtype][0] == 256 else 2)
        w.add_tensor(f"blk.{k}.{qtype.name.lower()}", data, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def dump(binary, path, work):
    out = os.path.join(work, "dump.json")
    subprocess.run([binary, path, out], check=True, timeout=60)
    with open(out) as f:
        return json.load(f)


def compare_with_reader(label, path, got):
    if "error" in got:
        failures.append(f"{label}: Strata refused the file: {got['error']}")
        return 0
    r = GGUFReader(path)
    for key, field in r.fields.items():
        if key.startswith("GGUF."):
            continue
        want = field.contents()
        if isinstance(want, float) or (isinstance(want, list) and want and isinstance(want[0], float)):
            width = np.float32 if field.types[-1] == V.FLOAT32 else np.float64
            want = [float(width(x)) for x in want] if isinstance(want, list) else float(width(want))
        check(got["metadata"].get(key) == want, f"{label}: metadata {key}: strata {got['metadata'].get(key)!r}, gguf {want!r}")
    tensors = {t["name"]: t for t in got["tensors"]}
    values = 0
    for t in r.tensors:
        mine = tensors.get(t.name)
        if mine is None:
            failures.append(f"{label}: tensor {t.name} missing")
            continue
        check(mine["ne"] == [int(x) for x in t.shape], f"{t.name}: ne {mine['ne']} vs {list(t.shape)}")
        check(mine["type"] == t.tensor_type.name, f"{t.name}: type {mine['type']} vs {t.tensor_type.name}")
        if t.tensor_type not in LOADED:
            check("error" in mine and t.tensor_type.name in mine["error"], f"{t.name}: expected a refusal naming the type")
            continue
        want = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)
        have = np.array(mine["values"], dtype=np.float64).astype(np.float32)
        same = np.array_equal(want.view(np.uint32), have.view(np.uint32))
        check(same, f"{t.name} ({t.tensor_type.name}): {int((want != have).sum())} of {want.size} values differ, "
                    f"first {want[:4]} vs {have[:4]}")
        values += want.size
    return values


def expect_error(binary, label, data, work, *needles):
    path = os.path.join(work, f"{label}.gguf")
    with open(path, "wb") as f:
        f.write(data)
    try:
        got = dump(binary, path, work)
    except subprocess.CalledProcessError as e:
        failures.append(f"{label}: gguf_dump crashed (exit {e.returncode})")
        return
    message = got.get("error", "")
    check(bool(message), f"{label}: accepted")
    for needle in (path,) + needles:
        check(needle in message, f"{label}: the error does not name {needle!r}: {message!r}")


def main():
    binary = sys.argv[1]
    rng = np.random.default_rng(2026)
    work = tempfile.mkdtemp(prefix="gguf-oracle-")
    path = os.path.join(work, "model.gguf")
    write_model(path, rng)
    values = compare_with_reader("v3", path, dump(binary, path, work))
    data = bytearray(open(path, "rb").read())
    v2 = bytearray(data)
    v2[4:8] = struct.pack("<I", 2)
    v2_path = os.path.join(work, "v2.gguf")
    open(v2_path, "wb").write(v2)
    got_v2 = dump(binary, v2_path, work)
    check("error" not in got_v2 and len(got_v2.get("tensors", [])) == len(LOADED) + 1, f"version 2: {got_v2.get('error')}")
    # Shards: three files, opened from the first.
    shard_dir = os.path.join(work, "shards")
    os.makedirs(shard_dir)
    write_model(os.path.join(shard_dir, "model.gguf"), np.random.default_rng(7), split_max_tensors=4)
    shards = sorted(os.listdir(shard_dir))
    check(len(shards) == 3 and shards[0].endswith("-00001-of-00003.gguf"), f"the writer made {shards}")
    got = dump(binary, os.path.join(shard_dir, shards[0]), work)
    check(len(got.get("tensors", [])) == len(LOADED) + 1, f"shards: {got.get('error')} {len(got.get('tensors', []))} tensors")
    got_dir = dump(binary, shard_dir, work)
    check(len(got_dir.get("tensors", [])) == len(LOADED) + 1, f"shard directory: {got_dir.get('error')}")

    # A tensor with no elements (a fuzzer finding: dequantizing it passed a null buffer on).
    empty_path = os.path.join(work, "empty.gguf")
    w = GGUFWriter(empty_path, "llama")
    w.add_tensor("empty", np.zeros((0, 32), dtype=np.float32))
    w.add_tensor("q8_empty", np.zeros((0, 34), dtype=np.uint8), raw_dtype=Q.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    got_empty = dump(binary, empty_path, work)
    check([t.get("values") for t in got_empty.get("tensors", [])] == [[], []], f"empty tensors: {got_empty}")

    # Corruptions.
    v1 = bytearray(data)
    v1[4:8] = struct.pack("<I", 1)
    expect_error(binary, "version1", bytes(v1), work, "version 1")
    expect_error(binary, "magic", b"GGUX" + bytes(data[4:]), work, "magic")
    r = GGUFReader(path)
    info = r.tensors[0].field  # the first tensor's info: name length, name, n_dims, dims, type, offset
    type_at = info.offset + sum(p.nbytes for p in info.parts[:4])
    bad_type = bytearray(data)
    bad_type[type_at:type_at + 4] = struct.pack("<I", 99)
    expect_error(binary, "unknown-type", bytes(bad_type), work, "unknown ggml type 99", r.tensors[0].name)
    align = r.fields["general.alignment"]
    bad_align = bytearray(data)
    value_at = align.offset + sum(p.nbytes for p in align.parts[:-1])
    bad_align[value_at:value_at + 4] = struct.pack("<I", 48)
    expect_error(binary, "alignment", bytes(bad_align), work, "general.alignment")
    # Structure that a schema cannot express: a duplicate key, a duplicate tensor name, an offset
    # off the alignment, two tensors on the same bytes, a dimension whose byte count overflows.
    key_field = r.fields["t.u8"]
    dup_key = bytearray(data)
    name_at = key_field.offset + key_field.parts[0].nbytes
    dup_key[name_at:name_at + 4] = b"t.i8"
    expect_error(binary, "duplicate-key", bytes(dup_key), work, "'t.i8'", "twice")
    t0, t1 = r.tensors[0].field, r.tensors[1].field
    dup_name = bytearray(data)
    n1_at = t1.offset + t1.parts[0].nbytes
    if len(r.tensors[0].name) == len(r.tensors[1].name):
        dup_name[n1_at:n1_at + len(r.tensors[1].name)] = r.tensors[0].name.encode()
        expect_error(binary, "duplicate-tensor", bytes(dup_name), work, r.tensors[0].name, "twice")
    off1_at = t1.offset + sum(p.nbytes for p in t1.parts[:-1])
    misaligned = bytearray(data)
    misaligned[off1_at:off1_at + 8] = struct.pack("<Q", struct.unpack("<Q", data[off1_at:off1_at + 8])[0] + 1)
    expect_error(binary, "misaligned", bytes(misaligned), work, r.tensors[1].name, "alignment")
    overlap = bytearray(data)
    off0_at = t0.offset + sum(p.nbytes for p in t0.parts[:-1])
    overlap[off1_at:off1_at + 8] = data[off0_at:off0_at + 8]
    expect_error(binary, "overlap", bytes(overlap), work, "overlaps")
    huge = bytearray(data)
    ne0_at = t0.offset + t0.parts[0].nbytes + t0.parts[1].nbytes + t0.parts[2].nbytes
    huge[ne0_at:ne0_at + 8] = struct.pack("<q", 2**62)
    expect_error(binary, "huge-dimension", bytes(huge), work, r.tensors[0].name)
    truncations = 0
    for cut in sorted(set(list(range(0, 600, 7)) + list(range(600, len(data), max(1, len(data) // 200))))):
        if cut >= len(data):
            continue
        label = f"truncated-{cut}"
        p = os.path.join(work, "cut.gguf")
        open(p, "wb").write(data[:cut])
        got = dump(binary, p, work)
        check("error" in got and p in got["error"], f"{label}: {got.get('error', 'accepted')}")
        truncations += 1
    print(f"{values} dequantized values over {len(LOADED)} types bit-identical to gguf-py; metadata of 17 keys; "
          f"version 2, three shards and a shard directory open; version 1, bad magic, unknown type, bad alignment, "
          f"duplicates, misalignment, overlap, overflow and {truncations} truncations refused with the file and the "
          f"field named")
    finish(failures, most=30)


if __name__ == "__main__":
    main()
