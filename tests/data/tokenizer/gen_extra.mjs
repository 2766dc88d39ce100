// gen_extra.mjs — how extra.inp / extra.out and the chat oracle ids in
// tests/test_chat.c were made: npm tiktoken 1.0.22 with llama3.tiktoken and
// Meta's pat_str.  usage: TIKTOKEN_MODULE=/tmp/tt/node_modules/tiktoken
//   node gen_extra.mjs llama3.tiktoken OUT_BASE   (writes OUT_BASE.inp/.out)
import { createRequire } from "node:module";
import { readFileSync, writeFileSync } from "node:fs";
const require = createRequire(process.cwd() + "/noop.js");
const { Tiktoken } = require(process.env.TIKTOKEN_MODULE || "tiktoken");
const pat = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const ranks = readFileSync(process.argv[2], "utf8");
const enc = new Tiktoken(ranks, {"<|begin_of_text|>":128000,"<|end_of_text|>":128001,"<|start_header_id|>":128006,"<|end_header_id|>":128007,"<|eot_id|>":128009}, pat);
let seed = 12345;
const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed; };
const word = (n, alpha) => { let s = ""; for (let i = 0; i < n; i++) s += alpha[rnd() % alpha.length]; return s; };
const strs = [
  "a\u0085b c\u0085\u0085 d\u0085",
  "\uFEFFhello \uFEFF world \u00A0x\u2003y\u3000z",
  "it'ſ ok 'S 'ſ I'LL we'Re",
  word(500, "abcdefghijklmnopqrstuvwxyz"),
  word(2000, "0123456789"),
  " ".repeat(300) + "x\n\n\n  \t\t \r\n x \u2028 y",
  "🦙 Llama 3 の トークナイザー 😀😀 👨‍👩‍👧 ",
  "Hello, WORLD!!! ... ???\r\n\r\nOK",
  "   leading and trailing spaces   ",
  "!".repeat(300) + "@#$%^&*()".repeat(40),
  "مرحبا بالعالم नमस्ते दुनिया 안녕하세요 세계",
  "<|begin_of_text|> special text as plain <|eot_id|>",
  "e\u0301 n\u0303 a\u030A",
  "ab".repeat(500),
  word(1000, "àéîõüçñßøåæœ"),
  word(3000, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?'\"\n\t-"),
];
const SEP = "\n__ggml_vocab_test__\n";
writeFileSync(process.argv[3] + ".inp", strs.join(SEP) + SEP);
writeFileSync(process.argv[3] + ".out", strs.map(s => Array.from(enc.encode_ordinary(s)).map(x => " " + x).join("")).join("\n") + "\n");
// chat oracle: Microsoft's ChatFormat pieces encoded separately
const parts = [];
const E = (s) => Array.from(enc.encode_ordinary(s));
const msgs = [["System: ", "You are a helpful assistant."], ["User: ", "  Hey, what's 2+2?  "], ["Assistant: ", "2+2 = 4.\n"], ["User: ", "And in base 3?"]];
let ids = [128000];
for (const [h, c] of msgs) { ids.push(...E(h)); ids.push(...E(c.trim())); ids.push(128009); }
ids.push(...E("Assistant: "));
console.log("bitnet chat ids:", ids.join(", "));
// whole-string rendering for contrast
console.log("whole string:", Array.from(enc.encode("<|begin_of_text|>System: You are a helpful assistant.<|eot_id|>User: Hey, what's 2+2?<|eot_id|>Assistant: 2+2 = 4.<|eot_id|>User: And in base 3?<|eot_id|>Assistant: ", "all")).join(", "));
const l3 = Array.from(enc.encode("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHey, what's 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", "all"));
console.log("llama3:", l3.join(", "));
