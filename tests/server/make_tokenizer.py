#!/usr/bin/env python3
"""Writes tests/data/server/tokenizer/{tokenizer.json,tokenizer_config.json}:
a byte-level BPE tokenizer of exactly 512 ids for the server tests, so it
fits `bitnet random-model --shape tiny` (vocab 512, eos 511). Ids 0..255 are
the bytes (GPT-2 byte-to-unicode alphabet), 256..508 are 253 merges learned
on tests/data/tokenizer/tinyshakespeare.txt, 509..511 are <|im_start|>,
<|begin_of_text|> and <|im_end|> (eos/eot, = the random model's eos 511).
Deterministic: rerunning gives the same files."""
import collections, json, os, re, sys

root = os.path.dirname(os.path.abspath(__file__)) + "/../.."
text = open(root + "/tests/data/tokenizer/tinyshakespeare.txt", encoding="utf-8").read()[:40000]

bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
cs = bs[:]
n = 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
byte_char = {b: chr(c) for b, c in zip(bs, cs)}

words = collections.Counter(re.findall(r" ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+", text))
seqs = {w: [byte_char[b] for b in w.encode("utf-8")] for w in words}
vocab = {byte_char[b]: b for b in range(256)}
merges = []
while len(vocab) < 509:
    pairs = collections.Counter()
    for w, f in words.items():
        s = seqs[w]
        for a, b in zip(s, s[1:]):
            pairs[(a, b)] += f
    if not pairs:
        break
    (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
    merges.append(a + " " + b)
    vocab[a + b] = len(vocab)
    for w in seqs:
        s, o, i = seqs[w], [], 0
        while i < len(s):
            if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                o.append(a + b); i += 2
            else:
                o.append(s[i]); i += 1
        seqs[w] = o
assert len(vocab) == 509, len(vocab)
special = ["<|im_start|>", "<|begin_of_text|>", "<|im_end|>"]
added = [{"id": 509 + i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
          "normalized": False, "special": True} for i, t in enumerate(special)]
tok = {
    "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    "post_processor": None,
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
              "vocab": vocab, "merges": merges},
}
cfg = {
    "bos_token": "<|begin_of_text|>", "eos_token": "<|im_end|>",
    "chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
                     "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
}
out = root + "/tests/data/server/tokenizer"
os.makedirs(out, exist_ok=True)
json.dump(tok, open(out + "/tokenizer.json", "w", encoding="utf-8"), ensure_ascii=False, indent=0)
json.dump(cfg, open(out + "/tokenizer_config.json", "w"), indent=1)
print(out, len(vocab) + len(special), "ids")
