#!/usr/bin/env python3
"""lora_demo_data.py — the small "answer in a fixed format" task of the LoRA
demo (docs/TRAINING.md, Fine-tuning): a one-sentence story, a question about
it, and the reply `It was <name>.`. Train and eval use disjoint
(name, place, verb) combinations. Usage: lora_demo_data.py OUTDIR"""
import itertools, json, random, sys

names = ["Lily", "Tom", "Ben", "Sue", "Tim", "Max", "Anna", "Sam", "Mia", "Jack", "Lucy", "Bob"]
places = ["park", "store", "beach", "garden", "school", "farm", "zoo", "lake"]
verbs = [("went to", "went to"), ("ran to", "ran to"), ("walked to", "walked to"),
         ("played at", "played at")]
combos = list(itertools.product(names, places, range(len(verbs))))
random.Random(7).shuffle(combos)
out = sys.argv[1]

def chat(n, p, v):
    past, q = verbs[v]
    return {"messages": [
        {"role": "user", "content": f"One day, {n} {past} the {p}. Who {q} the {p}?"},
        {"role": "assistant", "content": f"It was {n}."}]}

with open(f"{out}/train.jsonl", "w") as f:
    for c in combos[:300]:
        f.write(json.dumps(chat(*c)) + "\n")
with open(f"{out}/eval.jsonl", "w") as f:
    for i, c in enumerate(combos[300:360]):
        f.write(json.dumps(chat(*c)) + "\n")
# the eval prompts for `bitnet generate --file` (the reply left out)
with open(f"{out}/eval_prompts.jsonl", "w") as f:
    for i, c in enumerate(combos[300:360]):
        m = chat(*c)["messages"]
        f.write(json.dumps({"id": i, "messages": m[:1], "max_tokens": 10, "temperature": 0,
                            "expected": m[1]["content"]}) + "\n")
