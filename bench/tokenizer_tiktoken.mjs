// tokenizer_tiktoken.mjs — the reference side of the tokenizer benchmark:
// encode a file N times with npm `tiktoken` (OpenAI's Rust core as WASM),
// loaded with the LLaMA 3 ranks file and Meta's pat_str, and report MB/s
// and tokens/s in the same format as bench_tokenizer.c.
//
// usage: TIKTOKEN_MODULE=/tmp/tt/node_modules/tiktoken \
//        node bench/tokenizer_tiktoken.mjs RANKS_FILE TEXT_FILE [N]
// (without TIKTOKEN_MODULE, `tiktoken` is resolved from the current folder)
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";

const require = createRequire(path.join(process.cwd(), "noop.js"));
const { Tiktoken } = require(process.env.TIKTOKEN_MODULE || "tiktoken");

const [ranksFile, textFile, nArg] = process.argv.slice(2);
if (!ranksFile || !textFile) {
  console.error("usage: node tokenizer_tiktoken.mjs RANKS_FILE TEXT_FILE [N]");
  process.exit(2);
}
const N = Number(nArg || 10);
const patStr =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const ranks = readFileSync(ranksFile, "utf8");
const nBase = ranks.split("\n").filter((l) => l.length > 0).length;
const specials = { "<|begin_of_text|>": nBase, "<|end_of_text|>": nBase + 1 };
const enc = new Tiktoken(ranks, specials, patStr);
const buf = readFileSync(textFile);
const text = buf.toString("utf8");

let ids = enc.encode_ordinary(text); // warm-up (and the token count)
const t0 = process.hrtime.bigint();
for (let i = 0; i < N; i++) ids = enc.encode_ordinary(text);
const s = Number(process.hrtime.bigint() - t0) / 1e9;
const mb = (buf.length * N) / 1e6;
console.log(
  `tiktoken(npm wasm) ${path.basename(textFile)}: ${buf.length} bytes -> ${ids.length} tokens, ` +
    `${N} runs in ${s.toFixed(3)} s: ${(mb / s).toFixed(2)} MB/s, ${((ids.length * N) / s / 1e6).toFixed(3)} M tokens/s`
);
if (process.env.DUMP_IDS) console.log(Array.from(ids).join("\n"));
enc.free();
