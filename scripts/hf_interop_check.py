#!/usr/bin/env python3
# Part 2 of scripts/hf_interop_check.sh (see there); run where torch exists.
import json, sys, os, numpy as np, torch, transformers
from transformers import AutoModelForCausalLM
D = os.path.dirname(os.path.abspath(__file__))
IDS = [1,17,300,42,99,5,250,7,64,128,33,200]
print("torch", torch.__version__, "transformers", transformers.__version__)
def compare(name, model, ids):
    with torch.no_grad():
        out = model(torch.tensor([ids])).logits[0].float().numpy()
    ours = np.fromfile(os.path.join(D, name + ".ours.bin"), dtype="<f4").reshape(out.shape)
    d = np.abs(out - ours)
    mx = np.abs(out).max(axis=1)
    print(f"{name}: mean|d| {d.mean():.3e}  max|d|/max|logit| {(d.max(axis=1)/mx).max():.3e}  argmax equal {int((out.argmax(1)==ours.argmax(1)).sum())}/{len(ids)}")
def load(path):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager").eval()
for name in ["tiny-hfbf16", "tiny-hfpacked"]:
    try: compare(name, load(os.path.join(D, name)), IDS)
    except Exception as e: print(name, "FAILED:", repr(e)[:400])
try: compare("demo-hfpacked", load(os.path.join(D, "demo-hfpacked")), IDS)
except Exception as e: print("demo-hfpacked FAILED:", repr(e)[:400])
base_dir = os.path.join(D, "tiny-base")
try: compare("tiny-base", load(base_dir), IDS)
except Exception as e: print("tiny-base FAILED:", repr(e)[:400])
try:
    import peft
    print("peft", peft.__version__)
    from peft import PeftModel
    m = PeftModel.from_pretrained(load(base_dir), os.path.join(D, "tiny-lora")).eval()
    compare("tiny-lora", m, IDS)
except ImportError:
    print("peft not installed on this machine")
except Exception as e:
    print("tiny-lora FAILED:", repr(e)[:600])
