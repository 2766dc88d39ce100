#!/usr/bin/env python3
"""make_seed.py OUT — a small GGUF fuzz seed (tests/fuzz/corpus/gguf/seed_tq.gguf): arch
"bitnet", one TQ2_0, TQ1_0, Q6_K and Q8_0 tensor holding the first block of the fixtures'
tensors of that type (tiny1-tq20.gguf, tiny1-tq10-q6k.gguf, tiny1-tq20-q80.gguf)."""
import os
import struct
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
from gguf_edit import R, read_value  # noqa: E402


def first_block(path, name, nbytes):
    b = open(path, 'rb').read()
    r = R(b)
    r.take(8)
    n_t, n_kv = r.u64(), r.u64()
    for _ in range(n_kv):
        r.s()
        read_value(r, r.u32())
    found = None
    for _ in range(n_t):
        tn = r.s()
        nd = r.u32()
        [r.u64() for _ in range(nd)]
        r.u32()
        off = r.u64()
        if tn == name:
            found = off
    data0 = (r.p + 31) // 32 * 32
    return b[data0 + found:data0 + found + nbytes]


def s(x):
    e = x.encode()
    return struct.pack('<Q', len(e)) + e


tensors = [('a.weight', 35, 256, first_block(os.path.join(here, 'tiny1-tq20.gguf'), 'blk.0.attn_q.weight', 66)),
           ('b.weight', 34, 256, first_block(os.path.join(here, 'tiny1-tq10-q6k.gguf'), 'blk.0.attn_q.weight', 54)),
           ('token_embd.weight', 14, 256, first_block(os.path.join(here, 'tiny1-tq10-q6k.gguf'), 'token_embd.weight', 210)),
           ('c.weight', 8, 32, first_block(os.path.join(here, 'tiny1-tq20-q80.gguf'), 'token_embd.weight', 34))]
out = bytearray(b'GGUF') + struct.pack('<IQQ', 3, len(tensors), 2)
out += s('general.architecture') + struct.pack('<I', 8) + s('bitnet')
out += s('bitnet.block_count') + struct.pack('<II', 4, 1)
pos = 0
for name, t, n, blob in tensors:
    out += s(name) + struct.pack('<IQIQ', 1, n, t, pos)
    pos += (len(blob) + 31) // 32 * 32
out += b'\0' * ((-len(out)) % 32)
for _, _, _, blob in tensors:
    out += blob + b'\0' * ((-len(blob)) % 32)
open(sys.argv[1], 'wb').write(out)
