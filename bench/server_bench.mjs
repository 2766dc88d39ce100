// Bounded load generator for `bitnet serve` (no dependencies: fetch + SSE).
//   node bench/server_bench.mjs URL MODEL [conc,...] [max_tokens] [prompt_tokens] [vocab]
// For each concurrency C: C streams run at once, each a /v1/completions
// request whose prompt is prompt_tokens random ids (distinct per request, so
// no prefix is shared), temperature 0, end-of-generation tokens banned so
// every request makes exactly max_tokens. Prints one JSON line per C:
// tokens_per_s: all generated tokens / wall time of the round (prefill of
// every prompt included); decode_tokens_per_s: tokens that arrived after the
// last stream's first token / (last end - that moment), the rate while all
// C streams decode together (one forward per step for all of them); time to first
// token (request sent -> first text event) p50/p99.
const [url, model, concArg = '1,4,8,16', maxArg = '32', promptArg = '128', vocabArg = '128000'] = process.argv.slice(2);
const conc = concArg.split(',').map(Number), maxTokens = Number(maxArg), nPrompt = Number(promptArg);
const vocab = Number(vocabArg);
let seed = 12345;
const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed; };
const banned = { 128001: -100, 128008: -100, 128009: -100 };

async function one() {
  const prompt = Array.from({ length: nPrompt }, () => rnd() % vocab);
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model, prompt, max_tokens: maxTokens, temperature: 0, stream: true,
      stream_options: { include_usage: true }, logit_bias: banned, logprobs: 0 }) });
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let ttft = null, tokens = 0, buf = '', tFirst = 0;
  const stamps = []; // arrival time of every token (logprobs name them)
  const dec = new TextDecoder();
  for await (const chunk of res.body) {
    buf += dec.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, i); buf = buf.slice(i + 2);
      if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
      const j = JSON.parse(ev.slice(6));
      if (ttft === null && j.choices.length) { ttft = performance.now() - t0; tFirst = performance.now(); }
      if (j.usage) tokens = j.usage.completion_tokens;
      for (const c of j.choices) if (c.logprobs) for (const _ of c.logprobs.tokens) stamps.push(performance.now());
    }
  }
  return { ttft, tokens, tFirst, stamps, tEnd: performance.now() };
}

const pct = (v, p) => { const s = [...v].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
for (const c of conc) {
  const t0 = performance.now();
  const rs = await Promise.all(Array.from({ length: c }, one));
  const wall = (performance.now() - t0) / 1000;
  const toks = rs.reduce((a, r) => a + r.tokens, 0);
  const tt = rs.map((r) => r.ttft);
  const firstMax = Math.max(...rs.map((r) => r.tFirst)), endMax = Math.max(...rs.map((r) => r.tEnd));
  // tokens that arrived while every stream was decoding
  const dec = rs.reduce((a, r) => a + r.stamps.filter((t) => t > firstMax).length, 0) / ((endMax - firstMax) / 1000);
  console.log(JSON.stringify({ streams: c, generated_tokens: toks, wall_s: +wall.toFixed(2),
    tokens_per_s: +(toks / wall).toFixed(2), decode_tokens_per_s: +dec.toFixed(2), ttft_p50_ms: Math.round(pct(tt, 0.5)), ttft_p99_ms: Math.round(pct(tt, 0.99)) }));
}
