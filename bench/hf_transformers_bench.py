#!/usr/bin/env python3
"""hf_transformers_bench.py — time Hugging Face transformers' BitNetForCausalLM
on the exact 2B4T shape (random weights; speed does not depend on their values)
for the side-by-side comparison of docs/PERFORMANCE.md (CUDA section).

Runs the model in bf16 with plain bf16 linears, its fastest setting that works
(the packed/online ternary paths of transformers unpack or quantize weights
on every call and are slower). Prints one JSON line.
usage: python3 bench/hf_transformers_bench.py [--prompt 512] [--gen 128]
"""
import argparse, json, time

import torch
from transformers import BitNetConfig, BitNetForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--gen", type=int, default=128)
    a = ap.parse_args()
    cfg = BitNetConfig(vocab_size=128256, hidden_size=2560, intermediate_size=6912, num_hidden_layers=30,
                       num_attention_heads=20, num_key_value_heads=5, max_position_embeddings=4096,
                       rms_norm_eps=1e-5, rope_theta=500000.0, hidden_act="relu2", tie_word_embeddings=True)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        m = BitNetForCausalLM(cfg).eval()
    ids = torch.randint(0, cfg.vocab_size, (1, a.prompt), device="cuda")
    res = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    import transformers
    res["transformers"] = transformers.__version__
    with torch.no_grad():
        for _ in range(2):
            m(ids)
        torch.cuda.synchronize()
        t = time.time()
        reps = 5
        for _ in range(reps):
            m(ids)
        torch.cuda.synchronize()
        res["prefill_tok_s"] = reps * a.prompt / (time.time() - t)
        for cache in ("dynamic", "static"):
            kw = dict(max_new_tokens=a.gen, min_new_tokens=a.gen, do_sample=False)
            if cache == "static":
                kw["cache_implementation"] = "static"
            try:
                m.generate(ids[:, :16], **dict(kw, max_new_tokens=8, min_new_tokens=8))
                torch.cuda.synchronize()
                t = time.time()
                m.generate(ids[:, :16], **kw)
                torch.cuda.synchronize()
                res[f"decode_tok_s_{cache}_cache"] = a.gen / (time.time() - t)
            except Exception as e:  # a setting that does not work is reported, not fatal
                res[f"decode_{cache}_error"] = str(e)[:200]
    print(json.dumps(res))


if __name__ == "__main__":
    main()
