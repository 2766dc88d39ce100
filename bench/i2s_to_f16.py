#!/usr/bin/env python3
"""i2s_to_f16.py — rewrite a bitnet.cpp-style GGUF (I2_S ternary linears, type 36)
as a GGUF whose ternary tensors are F16 values {-beta, 0, +beta}, so that
upstream-family quantizers (ik_llama.cpp's IQ2_BN, llama.cpp's TQ2_0), which
cannot read type 36 (an id clash upstream), can requantize the same weights.

    python3 bench/i2s_to_f16.py IN.gguf OUT.gguf [--arch NAME] [--keep-i2s]

--arch renames general.architecture and every "<arch>." key prefix (llama.cpp
upstream has only "bitnet", the 1bitLLM graph with a SiLU FFN: the same matrix
work as 2B4T, so a fair speed peer, but a different model; bitnet loads such a
file as SiLU too). --keep-i2s copies the I2_S
tensors unchanged (for bitnet.cpp itself). Every other key and tensor is
copied byte for byte; general.file_type becomes 1 (mostly F16) when tensors
are converted. A file without tokenizer.ggml.model (as `bitnet random-model`
writes it) gets a stub SentencePiece-type vocabulary of vocab_size entries:
256 byte tokens <0x00>..<0xFF> then "t<i>" — the llama.cpp family refuses a
model without a tokenizer, and benchmarks only need token ids.

I2_S layout (../shared/SPEC.md 3.3): row-major elements cut into 128-element
blocks of 32 bytes; byte j of a block holds element j in bits 7:6, j+32 in 5:4,
j+64 in 3:2, j+96 in 1:0; codes 00 -> -1, 01 -> 0, 10 -> +1 (11 reads as 0);
n/4 packed bytes are followed by a 32-byte tail starting with the f32 beta.
beta is rounded to f16 here (relative error < 5e-4); the quantizers recompute
their own scale from the values, so the ternary pattern is kept exactly.

Python standard library only; the bulk work is bytes.translate and extended
slice assignment, so a 2B-weight model converts in about a minute.
"""
import mmap
import struct
import sys

GGUF_MAGIC = b"GGUF"
T_I2S, T_F16, T_F32 = 36, 1, 0
# scalar value types: id -> struct size
SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
STRING, ARRAY = 8, 9
# bytes per block, elements per block of the types this script may meet
TYPE_SIZE = {0: (4, 1), 1: (2, 1), 30: (2, 1), 8: (34, 32), 14: (210, 256), 34: (54, 256), 35: (66, 256)}


class Reader:
    def __init__(self, buf):
        self.b, self.p = buf, 0

    def take(self, n):
        if self.p + n > len(self.b):
            raise ValueError("truncated GGUF at offset %d" % self.p)
        s = self.b[self.p:self.p + n]
        self.p += n
        return s

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def string(self):
        n = self.u64()
        if n > len(self.b):
            raise ValueError("string length %d too large" % n)
        return bytes(self.take(n))

    def skip_value(self, t, depth=0):
        if t in SCALAR:
            self.take(SCALAR[t])
        elif t == STRING:
            self.string()
        elif t == ARRAY and depth < 4:
            et, n = self.u32(), self.u64()
            if et in SCALAR:
                self.take(SCALAR[et] * n)
            else:
                for _ in range(n):
                    self.skip_value(et, depth + 1)
        else:
            raise ValueError("bad value type %d" % t)


def gguf_str(s):
    return struct.pack("<Q", len(s)) + s


def i2s_to_f16_bytes(packed, n, beta):
    """n ternary elements packed as I2_S -> n little-endian f16 values."""
    if n % 128:
        raise ValueError("I2_S element count %d is not a multiple of 128" % n)
    nb = n // 4
    packed = bytes(packed[:nb])
    # one code byte (0,1,2,3) per element, planes = bit pairs 7:6, 5:4, 3:2, 1:0
    planes = [packed.translate(bytes(((v >> sh) & 3) for v in range(256))) for sh in (6, 4, 2, 0)]
    codes = bytearray(n)
    for k in range(4):
        pk = planes[k]
        for j in range(32):
            codes[k * 32 + j::128] = pk[j::32]
    pos = struct.pack("<e", beta)
    neg = struct.pack("<e", -beta)
    zero = b"\x00\x00"
    val = [neg, zero, pos, zero]  # 11 reads as 0
    lo = bytes(codes).translate(bytes(val[v & 3][0] for v in range(256)))
    hi = bytes(codes).translate(bytes(val[v & 3][1] for v in range(256)))
    out = bytearray(2 * n)
    out[0::2] = lo
    out[1::2] = hi
    return out


def stub_vocab(n_vocab):
    """kvs of a SentencePiece-type vocabulary with n_vocab placeholder tokens"""
    toks = [("<0x%02X>" % i).encode() for i in range(256)] + [("t%d" % i).encode() for i in range(256, n_vocab)]
    arr_tok = struct.pack("<IQ", STRING, n_vocab) + b"".join(gguf_str(t) for t in toks)
    arr_score = struct.pack("<IQ", 6, n_vocab) + struct.pack("<%df" % n_vocab, *([0.0] * n_vocab))
    types = [6] * 256 + [1] * (n_vocab - 256)  # 6 = byte, 1 = normal
    arr_type = struct.pack("<IQ", 5, n_vocab) + struct.pack("<%di" % n_vocab, *types)
    return [(b"tokenizer.ggml.model", STRING, gguf_str(b"llama")),
            (b"tokenizer.ggml.tokens", ARRAY, arr_tok),
            (b"tokenizer.ggml.scores", ARRAY, arr_score),
            (b"tokenizer.ggml.token_type", ARRAY, arr_type)]


def main(argv):
    args = [a for a in argv[1:]]
    new_arch = None
    keep_i2s = "--keep-i2s" in args
    if keep_i2s:
        args.remove("--keep-i2s")
    if "--arch" in args:
        i = args.index("--arch")
        if i + 1 >= len(args):
            sys.exit("--arch needs a value")
        new_arch = args[i + 1].encode()
        del args[i:i + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    src, dst = args
    with open(src, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    r = Reader(mm)
    if r.take(4) != GGUF_MAGIC:
        sys.exit("%s: not a GGUF file" % src)
    version = r.u32()
    if version not in (2, 3):
        sys.exit("%s: GGUF version %d not supported" % (src, version))
    n_tensors, n_kv = r.u64(), r.u64()
    kvs, arch, alignment = [], None, 32
    for _ in range(n_kv):
        key = r.string()
        t = r.u32()
        start = r.p
        r.skip_value(t)
        raw = bytes(mm[start:r.p])
        if key == b"general.architecture":
            arch = raw[8:]
        if key == b"general.alignment":
            alignment = struct.unpack("<I", raw)[0]
        kvs.append([key, t, raw])
    if arch is None:
        sys.exit("%s: no general.architecture" % src)
    tensors = []
    for _ in range(n_tensors):
        name = r.string()
        nd = r.u32()
        if nd > 4:
            sys.exit("tensor %r: %d dims" % (name, nd))
        dims = [r.u64() for _ in range(nd)]
        t = r.u32()
        off = r.u64()
        tensors.append((name, dims, t, off))
    data0 = (r.p + alignment - 1) // alignment * alignment

    out_kvs = []
    for key, t, raw in kvs:
        if new_arch is not None:
            if key == b"general.architecture":
                raw = gguf_str(new_arch)
            elif key.startswith(arch + b"."):
                key = new_arch + key[len(arch):]
        if key == b"general.file_type" and t == 4 and not keep_i2s:
            raw = struct.pack("<I", 1)
        out_kvs.append((key, t, raw))
    if not any(k == b"tokenizer.ggml.model" for k, _, _ in out_kvs):
        nv = [k for k in kvs if k[0] == arch + b".vocab_size" and k[1] == 4]
        if not nv:
            sys.exit("%s: no tokenizer and no %s.vocab_size" % (src, arch.decode()))
        n_vocab = struct.unpack("<I", nv[0][2])[0]
        if n_vocab < 256:
            sys.exit("%s: vocab_size %d too small for a stub vocabulary" % (src, n_vocab))
        out_kvs += stub_vocab(n_vocab)
        print("added a stub vocabulary of %d tokens" % n_vocab)

    # sizes of the output tensors
    plan = []
    off = 0
    for name, dims, t, src_off in tensors:
        n = 1
        for d in dims:
            n *= d
        if t == T_I2S and keep_i2s:
            size, out_t = n // 4 + 32, T_I2S
        elif t == T_I2S:
            size, out_t = 2 * n, T_F16
        elif t in TYPE_SIZE:
            bs, be = TYPE_SIZE[t]
            if n % be:
                sys.exit("tensor %r: %d elements not a multiple of %d" % (name, n, be))
            size, out_t = n // be * bs, t
        else:
            sys.exit("tensor %r: type %d not handled" % (name, t))
        plan.append((name, dims, t, src_off, n, out_t, off, size))
        off = (off + size + alignment - 1) // alignment * alignment

    with open(dst, "wb") as o:
        head = bytearray(GGUF_MAGIC + struct.pack("<IQQ", 3, len(plan), len(out_kvs)))
        for key, t, raw in out_kvs:
            head += gguf_str(key) + struct.pack("<I", t) + raw
        for name, dims, t, src_off, n, out_t, o_off, size in plan:
            head += gguf_str(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
            head += struct.pack("<IQ", out_t, o_off)
        head += b"\x00" * ((-len(head)) % alignment)
        o.write(head)
        written = 0
        n_i2s = 0
        for name, dims, t, src_off, n, out_t, o_off, size in plan:
            a = data0 + src_off
            if t == T_I2S and not keep_i2s:
                if a + n // 4 + 4 > len(mm):
                    sys.exit("tensor %r extends past the end of the file" % name)
                beta = struct.unpack("<f", mm[a + n // 4:a + n // 4 + 4])[0]
                data = i2s_to_f16_bytes(mm[a:a + n // 4], n, beta)
                n_i2s += 1
            else:
                if a + size > len(mm):
                    sys.exit("tensor %r extends past the end of the file" % name)
                data = mm[a:a + size]
            if written != o_off:
                o.write(b"\x00" * (o_off - written))
                written = o_off
            o.write(data)
            written += size
        pad = (-written) % alignment
        o.write(b"\x00" * pad)
    print("%s -> %s: %d tensors (%d I2_S -> F16), %d keys, arch %s" %
          (src, dst, len(plan), n_i2s, len(out_kvs), (new_arch or arch).decode()))


if __name__ == "__main__":
    main(sys.argv)
