#!/usr/bin/env bash
# info.sh — `bitnet info`: the tensors, dtypes and shapes it lists for the
# hf-tiny checkpoints equal those of ref/manifest.json (written by the
# transformers oracle); a GGUF made here by an independent writer (python
# struct) is read back; bad input gives exit 1 and one line naming the file.
set -euo pipefail
BN=${BN_BITNET:?BN_BITNET not set}
SRC=${BN_SOURCE_DIR:-.}
DATA="$SRC/tests/data/hf-tiny"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# --- the two HF checkpoints against the manifest
for kind in packed bf16; do
  "$BN" info --json "$DATA/$kind" > "$TMP/$kind.json"
  python3 - "$TMP/$kind.json" "$DATA/ref/manifest.json" "$kind" <<'EOF'
import json, sys
info = json.load(open(sys.argv[1]))
man = json.load(open(sys.argv[2]))
kind = sys.argv[3]
want = man[kind + "_ckpt_keys"]          # name -> [torch dtype, shape]
torch2st = {"torch.bfloat16": "BF16", "torch.float16": "F16", "torch.float32": "F32",
            "torch.float64": "F64", "torch.uint8": "U8", "torch.int8": "I8", "torch.int16": "I16",
            "torch.int32": "I32", "torch.int64": "I64", "torch.bool": "BOOL"}
size = {"BF16": 2, "F16": 2, "F32": 4, "F64": 8, "U8": 1, "I8": 1, "I16": 2, "I32": 4, "I64": 8, "BOOL": 1}
bad = []
got = {t["name"]: t for t in info["tensors"]}
if len(got) != len(info["tensors"]): bad.append("duplicate names in the tensor list")
if set(got) != set(want):
    bad.append("names differ: missing %s, extra %s" % (sorted(set(want) - set(got))[:5], sorted(set(got) - set(want))[:5]))
nbytes = 0
for name, (dt, shape) in want.items():
    t = got.get(name)
    if t is None: continue
    if t["dtype"] != torch2st[dt]: bad.append("%s: dtype %s, manifest %s" % (name, t["dtype"], dt))
    if t["shape"] != shape: bad.append("%s: shape %s, manifest %s" % (name, t["shape"], shape))
    n = 1
    for d in shape: n *= d
    if t["bytes"] != n * size[torch2st[dt]]: bad.append("%s: %d bytes" % (name, t["bytes"]))
    nbytes += n * size[torch2st[dt]]
if info["format"] != "safetensors": bad.append("format %r" % info["format"])
if info["n_tensors"] != len(want): bad.append("n_tensors %d != %d" % (info["n_tensors"], len(want)))
if info["n_bytes"] != nbytes: bad.append("n_bytes %d != %d" % (info["n_bytes"], nbytes))
if info["architecture"] != "bitnet": bad.append("architecture %r" % info["architecture"])
d, hp = man["dims"], info["hparams"]
for k, mk in [("hidden_size", "hidden"), ("intermediate_size", "intermediate"), ("num_hidden_layers", "layers"),
              ("num_attention_heads", "heads"), ("num_key_value_heads", "kv_heads"), ("vocab_size", "vocab")]:
    if hp.get(k) != d[mk]: bad.append("hparams %s=%r, manifest %r" % (k, hp.get(k), d[mk]))
# logical parameters: bf16 masters count every element; packed U8 holds 4 per byte (+1 per scale)
L, H, I, V, KV = d["layers"], d["hidden"], d["intermediate"], d["vocab"], d["kv_heads"] * d["head_dim"]
params = V * H + H + L * (2 * H + H + I + H * H * 2 + 2 * KV * H + 3 * H * I)
if kind == "packed": params += 7 * L
if info["n_params"] != params: bad.append("n_params %d != %d" % (info["n_params"], params))
if bad:
    print("\n".join(bad)); sys.exit(1)
print("%s: %d tensors, dtypes and shapes match the manifest; %d params, %d bytes" %
      (kind, len(want), params, nbytes))
EOF
done

# text form: header line about shape order, totals
"$BN" info "$DATA/packed" > "$TMP/packed.txt"
grep -q '^tensors (shapes as stored, outermost dimension first)' "$TMP/packed.txt" || fail "text: no shape-order line"
grep -q '^totals        74 tensors, 2,364,700 parameters, 830,008 bytes' "$TMP/packed.txt" || fail "text: totals"
grep -Eq '^  model.layers.0.self_attn.q_proj.weight +U8 +\[64, 256\] +16,384$' "$TMP/packed.txt" || fail "text: row"

# --- the packed checkpoint re-sharded by python (2 shards + index.json) plus a
# small tokenizer.json: same tensors, tokenizer summary read from the folder
mkdir "$TMP/sharded"
python3 - "$DATA/packed/model.safetensors" "$TMP/sharded" <<'EOF'
import json, struct, sys
src, out = sys.argv[1], sys.argv[2]
b = open(src, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); data = b[8 + n:]
names = sorted(k for k in h if k != "__metadata__")
parts = [names[: len(names) // 2], names[len(names) // 2:]]
wm = {}
for i, part in enumerate(parts):
    fn = "model-%05d-of-00002.safetensors" % (i + 1)
    hdr, blob = {"__metadata__": {"format": "pt"}}, b""
    for k in part:
        s, e = h[k]["data_offsets"]
        hdr[k] = {"dtype": h[k]["dtype"], "shape": h[k]["shape"], "data_offsets": [len(blob), len(blob) + e - s]}
        blob += data[s:e]; wm[k] = fn
    hb = json.dumps(hdr).encode(); hb += b" " * (-len(hb) % 8)
    open(out + "/" + fn, "wb").write(struct.pack("<Q", len(hb)) + hb + blob)
json.dump({"metadata": {"total_size": len(data)}, "weight_map": wm}, open(out + "/model.safetensors.index.json", "w"))
json.dump({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},
           "added_tokens": [{"id": 3, "content": "<s>"}]}, open(out + "/tokenizer.json", "w"))
EOF
cp "$DATA/packed/config.json" "$TMP/sharded/"
"$BN" info --json "$TMP/sharded" > "$TMP/sharded.json"
python3 - "$TMP/sharded.json" "$TMP/packed.json" <<'EOF'
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
key = lambda j: sorted((t["name"], t["dtype"], t["shape"], t["bytes"]) for t in j["tensors"])
assert key(a) == key(b), "sharded tensors differ from the single file"
assert (a["n_tensors"], a["n_params"], a["n_bytes"]) == (b["n_tensors"], b["n_params"], b["n_bytes"])
assert [f.rsplit("/", 1)[1] for f in a["files"]] == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"], a["files"]
t = a["tokenizer"]
assert (t["tokenizer.json"], t["tokenizer.model"], t["model"], t["n_vocab"], t["n_merges"], t["n_added_tokens"], t["bos_token_id"]) \
    == (True, False, "BPE", 3, 1, 1, 510), t
print("sharded: %d tensors in 2 shards, same as the single file; tokenizer summary ok" % a["n_tensors"])
EOF

# --- a GGUF written here independently (python struct, GGUF v3)
python3 - "$TMP/tiny.gguf" <<'EOF'
import struct, sys
def s(x): b = x.encode(); return struct.pack("<Q", len(b)) + b
kv = [("general.architecture", 8, s("bitnet-b1.58")),
      ("bitnet-b1.58.embedding_length", 4, struct.pack("<I", 4)),
      ("bitnet-b1.58.attention.layer_norm_rms_epsilon", 6, struct.pack("<f", 1e-5)),
      ("tokenizer.ggml.model", 8, s("gpt2")),
      ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 3) + s("a") + s("b") + s("c")),
      ("tokenizer.ggml.merges", 9, struct.pack("<IQ", 8, 2) + s("a b") + s("ab c")),
      ("tokenizer.ggml.bos_token_id", 4, struct.pack("<I", 1)),
      ("tokenizer.ggml.eos_token_id", 4, struct.pack("<I", 2))]
tensors = [("token_embd.weight", [4, 3], 1, 24), ("blk.0.attn_q.weight", [128, 2], 36, 128 * 2 // 4 + 32),
           ("output_norm.weight", [4], 0, 16)]
out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv))
for k, t, v in kv: out += s(k) + struct.pack("<I", t) + v
off, offs = 0, []
for name, ne, typ, nb in tensors:
    offs.append(off); off = (off + nb + 31) // 32 * 32
for (name, ne, typ, nb), o in zip(tensors, offs):
    out += s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne) + struct.pack("<IQ", typ, o)
out += b"\0" * ((32 - len(out) % 32) % 32)
data = bytearray(off)
open(sys.argv[1], "wb").write(out + bytes(data))
EOF
"$BN" info --json "$TMP/tiny.gguf" > "$TMP/gguf.json" || fail "info on the python-written GGUF"
python3 - "$TMP/gguf.json" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
want = [("token_embd.weight", "F16", [4, 3], 24), ("blk.0.attn_q.weight", "I2_S", [128, 2], 96),
        ("output_norm.weight", "F32", [4], 16)]
got = [(t["name"], t["dtype"], t["shape"], t["bytes"]) for t in j["tensors"]]
bad = []
if got != want: bad.append("tensors %s" % got)
if j["format"] != "gguf" or j["architecture"] != "bitnet-b1.58": bad.append("format/arch %s %s" % (j["format"], j["architecture"]))
tok = j["tokenizer"]
if (tok.get("model"), tok.get("n_tokens"), tok.get("n_merges"), tok.get("bos_token_id"), tok.get("eos_token_id")) != ("gpt2", 3, 2, 1, 2):
    bad.append("tokenizer %s" % tok)
if j["hparams"].get("bitnet-b1.58.embedding_length") != 4: bad.append("hparams %s" % j["hparams"])
if (j["n_tensors"], j["n_params"], j["n_bytes"]) != (3, 12 + 256 + 4, 136): bad.append("totals")
if bad: print("\n".join(bad)); sys.exit(1)
print("gguf: tensors, tokenizer and totals as written")
EOF
"$BN" info "$TMP/tiny.gguf" | grep -q '^tensors (shapes in GGUF order, ne\[0\] (the contiguous dimension) first)' \
  || fail "gguf text: no shape-order line"

# --- bad input: exit 1, exactly one line naming the file
expect_fail() {  # path needle
  local rc=0
  "$BN" info "$1" > "$TMP/out" 2> "$TMP/err" || rc=$?
  [ "$rc" = 1 ] || fail "info $1: exit $rc, want 1"
  [ "$(wc -l < "$TMP/err")" = 1 ] || fail "info $1: stderr is not one line: $(cat "$TMP/err")"
  grep -qF "bitnet info: $1: " "$TMP/err" || fail "info $1: message does not name the file: $(cat "$TMP/err")"
  grep -qF "$2" "$TMP/err" || fail "info $1: message lacks '$2': $(cat "$TMP/err")"
  echo "ok: $(cat "$TMP/err")"
}
head -c 500000 "$DATA/packed/model.safetensors" > "$TMP/trunc.safetensors"
expect_fail "$TMP/trunc.safetensors" "past the end of the data section"
head -c 3000 "$DATA/packed/model.safetensors" > "$TMP/trunc2.safetensors"
expect_fail "$TMP/trunc2.safetensors" "runs past the end of the file"
mkdir "$TMP/hf" && cp "$DATA/packed/config.json" "$TMP/hf/" && cp "$TMP/trunc.safetensors" "$TMP/hf/model.safetensors"
expect_fail "$TMP/hf/model.safetensors" "past the end"
# a folder: the message names the shard file inside it
rc=0; "$BN" info "$TMP/hf" 2> "$TMP/err" > /dev/null || rc=$?
[ "$rc" = 1 ] && [ "$(wc -l < "$TMP/err")" = 1 ] && grep -qF "$TMP/hf/model.safetensors: " "$TMP/err" \
  || fail "folder with a truncated shard: rc $rc, $(cat "$TMP/err")"
printf '{"hidden_size": ' > "$TMP/hf/config.json"
rc=0; "$BN" info "$TMP/hf" 2> "$TMP/err" > /dev/null || rc=$?
[ "$rc" = 1 ] && grep -qF "config.json: not valid JSON" "$TMP/err" || fail "bad config.json: $(cat "$TMP/err")"
head -c 100 "$TMP/tiny.gguf" > "$TMP/trunc.gguf"
expect_fail "$TMP/trunc.gguf" "trunc.gguf"
expect_fail "$TMP/does-not-exist" "cannot open"

# --- usage
"$BN" info --help | grep -q '^usage: bitnet info PATH \[--json\]' || fail "--help"
rc=0; "$BN" info 2> /dev/null || rc=$?; [ "$rc" = 2 ] || fail "no PATH: exit $rc, want 2"
rc=0; "$BN" info --bogus x 2> /dev/null || rc=$?; [ "$rc" = 2 ] || fail "unknown option: exit $rc, want 2"
echo "info.sh: all checks passed"
