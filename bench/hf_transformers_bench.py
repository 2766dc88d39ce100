#!/usr/bin/env python3
"""hf_transformers_bench.py — time Hugging Face transformers' BitNetForCausalLM
on the exact 2B4T shape (random weights; speed does not depend on their values)
for the side-by-side comparison of docs/PERFORMANCE.md (CUDA section).

Runs the model in bf16 with plain bf16 linears, its fastest setting that works
(the packed/online ternary paths of transformers unpack or quantize weights
on every call and are slower). Prints one JSON line.

--model DIR loads the weights of our random model instead of torch's random
init: DIR is `bitnet convert r.gguf DIR --to hf-packed` (hf-bf16 needs float
masters, which a ternary GGUF does not have). transformers loads it with its
AutoBitLinear (packed ternary unpacked at load, one weight_scale per matrix);
each such linear is then replaced by a plain bf16 nn.Linear holding
weight * weight_scale, so both engines run the same weights and transformers
runs its fastest path. If loading fails the error is reported and torch's
random init is used (speed does not depend on the values).
usage: python3 bench/hf_transformers_bench.py [--model DIR] [--prompt 512] [--gen 128]
                                              [--caches dynamic,static]
"""
import argparse, json, time

import torch
from transformers import BitNetConfig, BitNetForCausalLM


def plain_linears(model):
    """Replace every nn.Linear subclass (AutoBitLinear) by a bf16 nn.Linear
    with weight * weight_scale; returns how many were replaced."""
    n = 0
    for mod in list(model.modules()):
        for name, ch in list(mod.named_children()):
            if isinstance(ch, torch.nn.Linear) and type(ch) is not torch.nn.Linear:
                w = ch.weight.detach().to(torch.float32)
                sc = getattr(ch, "weight_scale", None)
                if sc is not None:
                    w = w * sc.detach().to(torch.float32).reshape(-1, 1) if sc.numel() == w.shape[0] else w * sc.detach().to(torch.float32).reshape(-1)[0]
                lin = torch.nn.Linear(ch.in_features, ch.out_features, bias=False, device=w.device, dtype=torch.bfloat16)
                lin.weight.data.copy_(w.to(torch.bfloat16))
                setattr(mod, name, lin)
                n += 1
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--model", default=None)
    ap.add_argument("--caches", default="dynamic,static")
    ap.add_argument("--random-prefill", action="store_true", help="also time prefill with torch random init")
    a = ap.parse_args()
    cfg = BitNetConfig(vocab_size=128256, hidden_size=2560, intermediate_size=6912, num_hidden_layers=30,
                       num_attention_heads=20, num_key_value_heads=5, max_position_embeddings=4096,
                       rms_norm_eps=1e-5, rope_theta=500000.0, hidden_act="relu2", tie_word_embeddings=True)
    torch.manual_seed(0)
    res = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    m = None
    if a.model:
        try:
            t = time.time()
            try:
                m = BitNetForCausalLM.from_pretrained(a.model, torch_dtype=torch.bfloat16, device_map="cuda")
            except Exception as e1:  # no accelerate: load on the CPU
                res["device_map_error"] = f"{type(e1).__name__}: {str(e1)[:160]}"
                m = BitNetForCausalLM.from_pretrained(a.model, torch_dtype=torch.bfloat16)
            n = plain_linears(m)
            # nn.Module.to directly: a quantized model's own .to may refuse
            m = torch.nn.Module.to(m, "cuda").eval()
            res["weights"] = f"{a.model}: hf-packed, {n} linears as bf16 nn.Linear (loaded in {time.time() - t:.1f} s)"
            cfg = m.config
        except Exception as e:  # reported, then random init
            res["weights_error"] = f"{type(e).__name__}: {str(e)[:300]}"
            m = None
    torch.set_default_dtype(torch.bfloat16)
    if m is None:
        with torch.device("cuda"):
            m = BitNetForCausalLM(cfg).eval()
        res.setdefault("weights", "torch random init")
    ids = torch.randint(0, cfg.vocab_size, (1, a.prompt), device="cuda")
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
        for cache in a.caches.split(","):
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
        if a.model and a.random_prefill:
            # the same shape with torch's random init (how earlier runs were
            # made), prefill only: does loading change transformers' speed?
            del m
            torch.cuda.empty_cache()
            with torch.device("cuda"):
                r = BitNetForCausalLM(cfg).eval()
            for _ in range(2):
                r(ids)
            torch.cuda.synchronize()
            t = time.time()
            for _ in range(reps):
                r(ids)
            torch.cuda.synchronize()
            res["prefill_tok_s_random_init"] = reps * a.prompt / (time.time() - t)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
