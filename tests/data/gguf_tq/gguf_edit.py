#!/usr/bin/env python3
"""gguf_edit.py — rewrite a GGUF file (pure Python, no numpy) for the gguf_tq fixtures.

  gguf_edit.py IN OUT [--arch NAME] [--layers N] [--add-str KEY=VAL] [--add-f32 KEY=VAL]
                      [--add-scale TENSOR=VAL]

--arch NAME  sets general.architecture and renames every "<old arch>." key prefix
             (llama.cpp's llama-quantize knows BitNet only as "bitnet").
--layers N   keeps the tensors of blocks 0..N-1 only and sets <arch>.block_count.
--add-str / --add-f32 (repeatable) append a string / f32 key (after the renaming).
--add-scale TENSOR=VAL (repeatable) appends an F32 tensor of one element (llama.cpp's
             per-linear output multiplier "blk.N.<linear>.scale" of architecture "bitnet").
Tensor bytes are copied unchanged; offsets are recomputed with the file's alignment.
"""
import struct
import sys

SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
FMT = {0: '<B', 1: '<b', 2: '<H', 3: '<h', 4: '<I', 5: '<i', 6: '<f', 7: '<?', 10: '<Q', 11: '<q', 12: '<d'}


class R:
    def __init__(self, b):
        self.b, self.p = b, 0

    def take(self, n):
        v = self.b[self.p:self.p + n]
        if len(v) != n:
            raise ValueError('truncated')
        self.p += n
        return v

    def u32(self):
        return struct.unpack('<I', self.take(4))[0]

    def u64(self):
        return struct.unpack('<Q', self.take(8))[0]

    def s(self):
        return self.take(self.u64()).decode('utf-8')


def read_value(r, t):
    if t == 8:
        return r.s()
    if t == 9:
        et, n = r.u32(), r.u64()
        return (et, [read_value(r, et) for _ in range(n)])
    return struct.unpack(FMT[t], r.take(SIZES[t]))[0]


def write_str(out, s):
    b = s.encode('utf-8')
    out += struct.pack('<Q', len(b)) + b


def write_value(out, t, v):
    if t == 8:
        write_str(out, v)
    elif t == 9:
        et, items = v
        out += struct.pack('<IQ', et, len(items))
        for x in items:
            write_value(out, et, x)
    else:
        out += struct.pack(FMT[t], v)


def main():
    args = sys.argv[1:]
    src, dst = args[0], args[1]
    arch_new = args[args.index('--arch') + 1] if '--arch' in args else None
    layers = int(args[args.index('--layers') + 1]) if '--layers' in args else None

    def pairs(opt):
        return [args[i + 1].split('=', 1) for i, a in enumerate(args) if a == opt]
    b = open(src, 'rb').read()
    r = R(b)
    assert r.take(4) == b'GGUF'
    version = r.u32()
    n_t, n_kv = r.u64(), r.u64()
    kvs = []
    for _ in range(n_kv):
        k = r.s()
        t = r.u32()
        kvs.append([k, t, read_value(r, t)])
    tensors = []
    for _ in range(n_t):
        name = r.s()
        nd = r.u32()
        ne = [r.u64() for _ in range(nd)]
        tt = r.u32()
        off = r.u64()
        tensors.append([name, ne, tt, off])
    align = 32
    for k, t, v in kvs:
        if k == 'general.alignment':
            align = v
    data0 = (r.p + align - 1) // align * align
    # tensor byte ranges: up to the next tensor's offset (or end of file), as stored
    offs = sorted(set(x[3] for x in tensors)) + [len(b) - data0]
    arch_old = next(v for k, t, v in kvs if k == 'general.architecture')
    for kv in kvs:
        if arch_new and kv[0] == 'general.architecture':
            kv[2] = arch_new
        if arch_new and kv[0].startswith(arch_old + '.'):
            kv[0] = arch_new + kv[0][len(arch_old):]
        if layers is not None and kv[0].endswith('.block_count'):
            kv[2] = layers
    kvs += [[k, 8, v] for k, v in pairs('--add-str')] + [[k, 6, float(v)] for k, v in pairs('--add-f32')]
    if layers is not None:
        tensors = [x for x in tensors if not x[0].startswith('blk.') or int(x[0].split('.')[1]) < layers]
    blobs = []
    for x in tensors:
        end = offs[offs.index(x[3]) + 1]
        blobs.append(b[data0 + x[3]:data0 + end])
    for name, v in pairs('--add-scale'):
        tensors.append([name, [1], 0, None])
        blobs.append(struct.pack('<f', float(v)))
    out = bytearray(b'GGUF') + struct.pack('<IQQ', version, len(tensors), len(kvs))
    for k, t, v in kvs:
        write_str(out, k)
        out += struct.pack('<I', t)
        write_value(out, t, v)
    pos = 0
    for x, blob in zip(tensors, blobs):
        write_str(out, x[0])
        out += struct.pack('<I', len(x[1])) + b''.join(struct.pack('<Q', n) for n in x[1])
        out += struct.pack('<IQ', x[2], pos)
        pos += (len(blob) + align - 1) // align * align
    out += b'\0' * ((-len(out)) % align)
    for blob in blobs:
        out += blob + b'\0' * ((-len(blob)) % align)
    open(dst, 'wb').write(out)


if __name__ == '__main__':
    main()
