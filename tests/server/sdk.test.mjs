// Drives a running `bitnet serve` with the official OpenAI Node SDK, plus raw
// HTTP cases the SDK cannot send. Started by tests/cli/server.sh:
//   node sdk.test.mjs MODE   (MODE: main | auth | load | leak | drain)
// Environment: BN_URL (http://127.0.0.1:PORT), BN_MODEL (model id),
// BN_KEY / BN_KEY2 / BN_KEY_LIMITED (auth), BN_BITNET + BN_KEYS_DB (revoke),
// BN_OUT (load: file that gets one line per finished request), BN_N (leak).
import OpenAI from 'openai';
import assert from 'node:assert/strict';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';

const URL_ = process.env.BN_URL;
const MODEL = process.env.BN_MODEL;
const mode = process.argv[2] || 'main';
const port = Number(new URL(URL_).port);
const client = (apiKey = 'none', extra = {}) =>
  new OpenAI({ baseURL: `${URL_}/v1`, apiKey, maxRetries: 0, timeout: 60000, ...extra });

let failed = 0, passed = 0;
async function test(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok - ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}: ${e && e.stack ? e.stack : e}`);
  }
}

// One raw HTTP exchange: send `data` (string or Buffer), collect everything
// until the server closes or `ms` passes. Returns {status, headers, body, closed, ms}.
function raw(data, { ms = 5000, keepOpen = false } = {}) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks = [];
    const t0 = Date.now();
    let done = false;
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const m = text.match(/^HTTP\/1\.[01] (\d+)/);
      const sep = text.indexOf('\r\n\r\n');
      resolve({ status: m ? Number(m[1]) : 0, head: sep >= 0 ? text.slice(0, sep) : text,
                body: sep >= 0 ? text.slice(sep + 4) : '', closed, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => finish(false), ms);
    s.on('data', (d) => {
      chunks.push(d);
      // answers without a body to wait for
      const t = Buffer.concat(chunks).toString('latin1');
      const cl = t.match(/content-length: *(\d+)/i), sep = t.indexOf('\r\n\r\n');
      if (!keepOpen && cl && sep >= 0 && t.length - sep - 4 >= Number(cl[1])) finish(false);
    });
    s.on('close', () => finish(true));
    s.on('error', () => finish(true));
    s.on('connect', () => { if (data) s.write(data); });
  });
}
const post = (path, body, extra = '') => {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  return Buffer.concat([Buffer.from(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${b.length}\r\nConnection: close\r\n${extra}\r\n`), b]);
};
const jsonBody = (r) => JSON.parse(r.body);

async function chatText(c, messages, opts = {}) {
  const r = await c.chat.completions.create({ model: MODEL, messages, temperature: 0, max_tokens: 24, ...opts });
  return r;
}
async function streamText(stream) {
  let text = '', finish = null, usage = null, chunks = 0;
  for await (const ch of stream) {
    chunks++;
    if (ch.usage) usage = ch.usage;
    for (const c of ch.choices) {
      text += c.delta ? (c.delta.content || '') : (c.text || '');
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  return { text, finish, usage, chunks };
}
async function metric(name) {
  const t = await (await fetch(`${URL_}/metrics`)).text();
  const m = t.match(new RegExp(`^${name.replace(/[{}"=/,.]/g, (x) => '\\' + x)} (\\S+)$`, 'm'));
  return m ? Number(m[1]) : 0;
}

// Bias that bans the end-of-generation tokens (so a request runs to max_tokens).
let NO_EOG = {};
async function loadEog(apiKey) {
  const m = await (await fetch(`${URL_}/v1/models`, { headers: { Authorization: `Bearer ${apiKey}` } })).json();
  NO_EOG = Object.fromEntries(m.data[0].end_token_ids.map((id) => [id, -100]));
}
async function tokenIds(text) {
  return (await (await fetch(`${URL_}/tokenize`, { method: 'POST', body: JSON.stringify({ content: text }) })).json()).tokens;
}

// ------------------------------------------------------------------ main
async function main() {
  const c = client();
  await loadEog('none');
  const msgs = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Speak, speak, I pray you.' }];

  await test('GET /v1/models lists the served model', async () => {
    const list = await c.models.list();
    assert.deepEqual(list.data.map((m) => m.id), [MODEL]);
  });

  let chatRef;
  await test('chat completion: shape and usage', async () => {
    const r = await chatText(c, msgs);
    chatRef = r;
    assert.equal(r.object, 'chat.completion');
    assert.match(r.id, /^chatcmpl-/);
    assert.equal(r.model, MODEL);
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(typeof r.choices[0].message.content, 'string');
    assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
    const u = r.usage;
    assert.ok(u.prompt_tokens > 10, `prompt_tokens ${u.prompt_tokens}`);
    assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
    if (r.choices[0].finish_reason === 'length') assert.equal(u.completion_tokens, 24);
    assert.ok(u.completion_tokens >= 1 && u.completion_tokens <= 24);
  });

  await test('chat streaming equals non-streaming (temperature 0), include_usage', async () => {
    const s = await c.chat.completions.create({ model: MODEL, messages: msgs, temperature: 0, max_tokens: 24,
      stream: true, stream_options: { include_usage: true } });
    const got = await streamText(s);
    assert.equal(got.text, chatRef.choices[0].message.content);
    assert.equal(got.finish, chatRef.choices[0].finish_reason);
    assert.deepEqual({ ...got.usage, prompt_tokens_details: undefined },
      { ...chatRef.usage, prompt_tokens_details: undefined });
  });

  await test('completions: prompt_tokens = /tokenize count; stream equals non-stream', async () => {
    const prompt = 'To be, or not to be, that is the question:';
    const tk = await (await fetch(`${URL_}/tokenize`, { method: 'POST',
      body: JSON.stringify({ content: prompt, add_special: true }) })).json();
    const r = await c.completions.create({ model: MODEL, prompt, max_tokens: 12, temperature: 0 });
    assert.equal(r.object, 'text_completion');
    assert.equal(r.usage.prompt_tokens, tk.tokens.length);
    assert.equal(r.usage.completion_tokens + r.usage.prompt_tokens, r.usage.total_tokens);
    const s = await streamText(await c.completions.create({ model: MODEL, prompt, max_tokens: 12, temperature: 0,
      stream: true }));
    assert.equal(s.text, r.choices[0].text);
    assert.equal(s.usage, null); // not asked for
    // the same prompt as token ids gives the same text
    const r2 = await c.completions.create({ model: MODEL, prompt: tk.tokens, max_tokens: 12, temperature: 0 });
    assert.equal(r2.choices[0].text, r.choices[0].text);
  });

  await test('default max_tokens of completions is 16', async () => {
    const r = await c.completions.create({ model: MODEL, prompt: 'Now', temperature: 0, logit_bias: NO_EOG });
    assert.equal(r.usage.completion_tokens, 16);
    assert.equal(r.choices[0].finish_reason, 'length');
  });

  await test('tokenize / detokenize round trip', async () => {
    const text = 'Hello, world — ünïcödé ✓';
    const tk = await (await fetch(`${URL_}/tokenize`, { method: 'POST', body: JSON.stringify({ content: text }) })).json();
    assert.ok(tk.tokens.length > 5);
    const dt = await (await fetch(`${URL_}/detokenize`, { method: 'POST', body: JSON.stringify({ tokens: tk.tokens }) })).json();
    assert.equal(dt.content, text);
  });

  await test('logprobs: chat top_logprobs are sorted and greedy picks the top one', async () => {
    const r = await chatText(c, msgs, { logprobs: true, top_logprobs: 3, max_tokens: 8 });
    const lp = r.choices[0].logprobs.content;
    assert.equal(lp.length, r.usage.completion_tokens);
    for (const t of lp) {
      assert.equal(t.top_logprobs.length, 3);
      assert.ok(t.logprob <= 0);
      for (let i = 1; i < 3; i++) assert.ok(t.top_logprobs[i - 1].logprob >= t.top_logprobs[i].logprob);
      assert.ok(Math.abs(t.logprob - t.top_logprobs[0].logprob) < 1e-6);
      assert.ok(Array.isArray(t.bytes));
    }
    const joined = lp.map((t) => Buffer.from(t.bytes)).reduce((a, b) => Buffer.concat([a, b]), Buffer.alloc(0));
    if (r.choices[0].finish_reason === 'length') assert.equal(joined.toString('utf8'), r.choices[0].message.content);
  });

  await test('logprobs: completions format', async () => {
    const r = await c.completions.create({ model: MODEL, prompt: 'Once', max_tokens: 5, temperature: 0, logprobs: 2 });
    const lp = r.choices[0].logprobs;
    assert.equal(lp.tokens.length, r.usage.completion_tokens);
    assert.equal(lp.token_logprobs.length, lp.tokens.length);
    assert.equal(lp.text_offset[0], 0);
    assert.ok(Object.keys(lp.top_logprobs[0]).length >= 1);
  });

  await test('stop strings end the text before the stop', async () => {
    const full = (await c.completions.create({ model: MODEL, prompt: 'The king', max_tokens: 24, temperature: 0,
      logit_bias: NO_EOG })).choices[0].text;
    assert.ok(full.length >= 6, `text too short to test: ${JSON.stringify(full)}`);
    const cut = [...full].slice(3, 5).join('');
    const idx = full.indexOf(cut);
    const r = await c.completions.create({ model: MODEL, prompt: 'The king', max_tokens: 24, temperature: 0,
      stop: [cut, 'zzzzqqq'], logit_bias: NO_EOG });
    assert.equal(r.choices[0].text, full.slice(0, idx));
    assert.equal(r.choices[0].finish_reason, 'stop');
    const s = await streamText(await c.completions.create({ model: MODEL, prompt: 'The king', max_tokens: 24,
      temperature: 0, stop: cut, stream: true, logit_bias: NO_EOG }));
    assert.equal(s.text, full.slice(0, idx));
  });

  await test('logit_bias +100 forces a token, -100 bans it', async () => {
    const h = await tokenIds('H');
    assert.equal(h.length, 1);
    const r = await c.completions.create({ model: MODEL, prompt: 'x', max_tokens: 6, temperature: 0, logit_bias: { [h[0]]: 100 } });
    assert.equal(r.choices[0].text, 'HHHHHH');
    const base = await c.completions.create({ model: MODEL, prompt: 'x', max_tokens: 1, temperature: 0, logprobs: 1 });
    const first = base.choices[0].logprobs.tokens[0];
    const id = await tokenIds(first);
    if (id.length === 1) {
      const r2 = await c.completions.create({ model: MODEL, prompt: 'x', max_tokens: 1, temperature: 0, logprobs: 1,
        logit_bias: { [id[0]]: -100 } });
      assert.notEqual(r2.choices[0].logprobs.tokens[0], first);
    }
  });

  await test('seed makes sampling (temperature 1) reproducible', async () => {
    const ask = (seed) => c.completions.create({ model: MODEL, prompt: 'Hark', max_tokens: 16, temperature: 1, seed,
      logit_bias: NO_EOG });
    const [a, b, d] = await Promise.all([ask(42), ask(42), ask(43)]);
    assert.equal(a.choices[0].text, b.choices[0].text);
    assert.notEqual(a.choices[0].text, d.choices[0].text);
  });

  await test('penalties and top_p are accepted and change greedy output', async () => {
    const p = { model: MODEL, prompt: 'x', max_tokens: 12, temperature: 0 };
    const base = (await c.completions.create(p)).choices[0].text;
    const pen = (await c.completions.create({ ...p, frequency_penalty: 2, presence_penalty: 2 })).choices[0].text;
    assert.notEqual(pen, base);
    await c.completions.create({ ...p, top_p: 0.5, user: 'someone' });
  });

  await test('a growing chat reuses the cached prefix', async () => {
    const before = await metric('bitnet_prompt_tokens_cached_total');
    const m1 = [{ role: 'user', content: 'Tell me of the sea and the ships upon it.' }];
    const r1 = await chatText(c, m1, { max_tokens: 8 });
    const m2 = [...m1, { role: 'assistant', content: r1.choices[0].message.content },
      { role: 'user', content: 'And then?' }];
    const r2 = await chatText(c, m2, { max_tokens: 8 });
    assert.ok(r2.usage.prompt_tokens > r1.usage.prompt_tokens);
    assert.ok(r2.usage.prompt_tokens_details.cached_tokens >= r1.usage.prompt_tokens - 1,
      `cached ${r2.usage.prompt_tokens_details.cached_tokens} of ${r1.usage.prompt_tokens}`);
    assert.ok(await metric('bitnet_prompt_tokens_cached_total') > before);
  });

  await test('SDK error cases: unknown model, missing and mistyped fields, too long prompt', async () => {
    const expectErr = async (p, status, code) => {
      try {
        await p;
      } catch (e) {
        assert.equal(e.status, status, `${e.message}`);
        if (code) assert.equal(e.code, code, `${e.message}`);
        assert.equal(typeof e.error.message, 'string');
        assert.equal(typeof e.error.type, 'string');
        return;
      }
      assert.fail('no error');
    };
    await expectErr(c.chat.completions.create({ model: 'gpt-4o', messages: msgs }), 404, 'model_not_found');
    await expectErr(c.chat.completions.create({ model: MODEL }), 400, 'missing_required_parameter');
    await expectErr(c.completions.create({ model: MODEL }), 400, 'missing_required_parameter');
    await expectErr(c.chat.completions.create({ model: MODEL, messages: msgs, temperature: 'hot' }), 400, 'invalid_type');
    await expectErr(c.chat.completions.create({ model: MODEL, messages: 'hi' }), 400, 'invalid_type');
    await expectErr(c.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 5 }] }), 400, 'invalid_type');
    await expectErr(c.chat.completions.create({ model: MODEL, messages: msgs, max_tokens: -3 }), 400, 'invalid_value');
    await expectErr(c.chat.completions.create({ model: MODEL, messages: msgs, temperature: 7 }), 400, 'invalid_value');
    await expectErr(c.chat.completions.create({ model: MODEL, messages: msgs, n: 2 }), 400, 'invalid_value');
    await expectErr(c.completions.create({ model: MODEL, prompt: 'x', logit_bias: { 99999: 1 } }), 400, 'invalid_value');
    await expectErr(c.completions.create({ model: MODEL, prompt: 'word '.repeat(400) }), 400, 'context_length_exceeded');
    await expectErr(c.chat.completions.create({ model: MODEL, messages: msgs, stop: [1, 2] }), 400, 'invalid_type');
  });

  await test('16 concurrent streams complete and each equals the same request alone', async () => {
    const prompts = Array.from({ length: 16 }, (_, i) => `Request number ${i}: ${'once more '.repeat(i % 5)}tell me`);
    const ask = (p, i) => c.completions.create({ model: MODEL, prompt: p, max_tokens: 20 + (i % 4) * 4,
      temperature: 0, seed: 7, stream: true, stream_options: { include_usage: true }, logit_bias: NO_EOG });
    const alone = [];
    for (let i = 0; i < 16; i++) alone.push(await streamText(await ask(prompts[i], i)));
    const together = await Promise.all(prompts.map(async (p, i) => streamText(await ask(p, i))));
    for (let i = 0; i < 16; i++) {
      assert.equal(together[i].text, alone[i].text, `stream ${i} differs`);
      assert.equal(together[i].usage.completion_tokens, 20 + (i % 4) * 4);
      assert.equal(together[i].finish, 'length');
    }
    const distinct = new Set(alone.map((a) => a.text)).size;
    assert.ok(distinct > 8, `only ${distinct} distinct outputs`);
  });

  await test('a client that disconnects frees its slot; the others finish', async () => {
    const gen0 = await metric('bitnet_generated_tokens_total');
    const ac = new AbortController();
    const long = c.completions.create({ model: MODEL, prompt: 'Go on', max_tokens: 200, temperature: 0, stream: true,
      logit_bias: NO_EOG }, { signal: ac.signal });
    const other = c.completions.create({ model: MODEL, prompt: 'Other', max_tokens: 30, temperature: 0,
      logit_bias: NO_EOG });
    try {
      let n = 0;
      for await (const _ of await long) { if (++n >= 2) { ac.abort(); } }
    } catch (e) { /* aborted */ }
    const o = await other;
    assert.equal(o.usage.completion_tokens, 30);
    for (let i = 0; i < 100 && (await metric('bitnet_active_slots')) > 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(await metric('bitnet_active_slots'), 0);
    const gen = (await metric('bitnet_generated_tokens_total')) - gen0;
    assert.ok(gen < 200 + 30, `generated ${gen}: the cancelled request ran to the end`);
  });

  await test('raw HTTP: malformed JSON, invalid UTF-8, not an object -> 400', async () => {
    let r = await raw(post('/v1/chat/completions', '{"model": "x", "messages": ['));
    assert.equal(r.status, 400);
    assert.equal(jsonBody(r).error.code, 'invalid_json');
    assert.equal(jsonBody(r).error.type, 'invalid_request_error');
    r = await raw(post('/v1/completions', Buffer.concat([Buffer.from(`{"model": "${MODEL}", "prompt": "a`),
      Buffer.from([0xff, 0xfe]), Buffer.from('"}')])));
    assert.equal(r.status, 400);
    assert.equal(jsonBody(r).error.code, 'invalid_encoding');
    r = await raw(post('/v1/completions', '[1,2]'));
    assert.equal(r.status, 400);
    r = await raw(post('/v1/completions', ''));
    assert.equal(r.status, 400);
  });

  await test('raw HTTP: body over the limit -> 413 (Content-Length and chunked)', async () => {
    const big = Buffer.alloc(3 << 20, 0x61);
    let r = await raw(post('/v1/completions', big));
    assert.equal(r.status, 413);
    assert.equal(jsonBody(r).error.code, 'request_too_large');
    // chunked: no Content-Length up front
    const chunk = Buffer.alloc(256 << 10, 0x61);
    let req = 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n';
    const parts = [Buffer.from(req)];
    for (let i = 0; i < 12; i++) parts.push(Buffer.from(chunk.length.toString(16) + '\r\n'), chunk, Buffer.from('\r\n'));
    parts.push(Buffer.from('0\r\n\r\n'));
    r = await raw(Buffer.concat(parts));
    assert.equal(r.status, 413);
  });

  await test('raw HTTP: half-sent request is dropped after the timeout', async () => {
    const head = `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"model":`;
    const r = await raw(head, { ms: 15000, keepOpen: true });
    assert.ok(r.closed, 'connection still open');
    assert.ok(r.ms < 10000, `closed after ${r.ms} ms`);
    // and a slowloris that never finishes its headers
    const r2 = await raw('POST /v1/completions HTTP/1.1\r\nHost: x\r\n', { ms: 15000, keepOpen: true });
    assert.ok(r2.closed && r2.ms < 10000);
  });

  await test('raw HTTP: unknown path 404, wrong method 405, health 200', async () => {
    let r = await raw('GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(r.status, 404);
    r = await raw('GET /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(r.status, 405);
    r = await raw('GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(r.status, 200);
    assert.deepEqual(jsonBody(r), { status: 'ok' });
    // the idle timeout is announced, so pooled client sockets retire before we close them
    assert.match(r.head, /^keep-alive: timeout=\d+\r?$/im);
  });

  await test('/metrics exports requests, tokens, latency histograms and gauges', async () => {
    const t = await (await fetch(`${URL_}/metrics`)).text();
    for (const k of ['bitnet_requests_total{endpoint="/v1/chat/completions",status="200"}',
      'bitnet_requests_total{endpoint="/v1/completions",status="400"}',
      'bitnet_requests_total{endpoint="/v1/completions",status="413"}',
      'bitnet_requests_total{endpoint="/v1/chat/completions",status="404"}',
      'bitnet_time_to_first_token_seconds_bucket{le="+Inf"}', 'bitnet_token_latency_seconds_count',
      'bitnet_prompt_tokens_total', 'bitnet_generated_tokens_total', 'bitnet_queue_depth', 'bitnet_active_slots',
      'bitnet_kv_cache_used_positions', 'bitnet_kv_cache_capacity_positions'])
      assert.ok(t.includes(k), `missing ${k}`);
    assert.ok(await metric('bitnet_generated_tokens_total') > 100);
    assert.ok(await metric('bitnet_kv_cache_used_positions') > 0);
  });
}

// ------------------------------------------------------------------ auth
async function auth() {
  const msgs = [{ role: 'user', content: 'hi' }];
  const expectStatus = async (p, status) => {
    try { await p; } catch (e) { assert.equal(e.status, status, e.message); return e; }
    assert.fail(`expected ${status}`);
  };
  await test('auth: no key and a wrong key -> 401', async () => {
    const r = await raw(`GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.equal(r.status, 401);
    assert.equal(jsonBody(r).error.code, 'missing_api_key');
    const e = await expectStatus(client('bn-' + '0'.repeat(64)).chat.completions.create({ model: MODEL, messages: msgs }), 401);
    assert.equal(e.code, 'invalid_api_key');
  });
  await test('auth: a valid key works; /health and /metrics stay open', async () => {
    const r = await client(process.env.BN_KEY).chat.completions.create({ model: MODEL, messages: msgs, max_tokens: 3 });
    assert.equal(r.usage.completion_tokens <= 3, true);
    assert.equal((await fetch(`${URL_}/health`)).status, 200);
    assert.equal((await fetch(`${URL_}/metrics`)).status, 200);
  });
  await test('rate limit: rpm 2 -> third request 429 with Retry-After', async () => {
    const c = client(process.env.BN_KEY_LIMITED);
    await c.completions.create({ model: MODEL, prompt: 'a', max_tokens: 1 });
    await c.completions.create({ model: MODEL, prompt: 'a', max_tokens: 1 });
    const e = await expectStatus(c.completions.create({ model: MODEL, prompt: 'a', max_tokens: 1 }), 429);
    const ra = Number(e.headers.get ? e.headers.get('retry-after') : e.headers['retry-after']);
    assert.ok(ra >= 1 && ra <= 61, `Retry-After ${ra}`);
    assert.equal(e.code, 'rate_limit_exceeded');
  });
  await test('revoking a key takes effect at once', async () => {
    const c = client(process.env.BN_KEY2);
    await c.models.list();
    execFileSync(process.env.BN_BITNET, ['keys', 'revoke', 'second', '--keys-db', process.env.BN_KEYS_DB]);
    await expectStatus(c.models.list(), 401);
  });
}

// ------------------------------------------------------------------ load (kill -9)
async function load() {
  // 4 workers send requests until the server dies; each finished one is logged.
  const c = client(process.env.BN_KEY);
  let stop = false;
  const worker = async (w) => {
    for (let i = 0; !stop; i++) {
      try {
        const r = await c.completions.create({ model: MODEL, prompt: `worker ${w} request ${i}`, max_tokens: 8,
          temperature: 0 });
        appendFileSync(process.env.BN_OUT, `${r.usage.prompt_tokens} ${r.usage.completion_tokens}\n`);
      } catch (e) { stop = true; }
    }
  };
  await Promise.all([0, 1, 2, 3].map(worker));
  console.log('ok - load ended (server gone)');
}

// ------------------------------------------------------------------ leak
async function leak() {
  const N = Number(process.env.BN_N || 200);
  const c = client();
  let done = 0;
  const worker = async (w) => {
    while (done < N) {
      done++;
      const k = done % 4;
      if (k === 0) await c.completions.create({ model: MODEL, prompt: `leak ${done}`, max_tokens: 3 });
      else if (k === 1) await streamText(await c.chat.completions.create({ model: MODEL, stream: true, max_tokens: 3,
        messages: [{ role: 'user', content: `leak ${done}` }], stream_options: { include_usage: true } }));
      else if (k === 2) await raw(post('/v1/completions', '{"bad json'));
      else await c.completions.create({ model: MODEL, prompt: 'x', max_tokens: 2, logprobs: 3, stop: ['a'] });
    }
  };
  await test(`leak: ${N} mixed requests`, async () => { await Promise.all([0, 1, 2, 3].map(worker)); });
}

// ------------------------------------------------------------------ drain (SIGTERM)
async function drain() {
  await loadEog('none');
  await test('SIGTERM: the stream in flight finishes with [DONE]', async () => {
    const s = await client().completions.create({ model: MODEL, prompt: 'Drain', max_tokens: 60, temperature: 0,
      stream: true, logit_bias: NO_EOG });
    let n = 0, text = '', finish = null;
    for await (const ch of s) {
      if (++n === 2) process.kill(Number(process.env.BN_PID), 'SIGTERM');
      text += ch.choices[0].text;
      if (ch.choices[0].finish_reason) finish = ch.choices[0].finish_reason;
    }
    assert.equal(finish, 'length');
  });
}

// ------------------------------------------------------------------ busy (bounded queue)
async function busy() {
  await loadEog('none');
  await test('a full queue answers 503 server_busy; admitted requests finish', async () => {
    // 1 slot + a queue of 2: of 8 simultaneous requests at least 5 must be refused
    const c = client();
    const rs = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => c.completions.create({ model: MODEL,
      prompt: `busy ${i}`, max_tokens: 200, temperature: 0, logit_bias: NO_EOG })));
    const ok = rs.filter((r) => r.status === 'fulfilled'), bad = rs.filter((r) => r.status === 'rejected');
    for (const r of bad) {
      assert.equal(r.reason.status, 503, String(r.reason));
      assert.equal(r.reason.code, 'server_busy');
    }
    assert.ok(ok.length >= 1 && ok.length <= 3, `${ok.length} admitted`);
    for (const r of ok) assert.equal(r.value.usage.completion_tokens, 200);
    assert.ok((await metric('bitnet_requests_total{endpoint="/v1/completions",status="503"}')) >= 5);
  });
}

const modes = { main, auth, load, leak, drain, busy };
if (!modes[mode]) { console.error(`unknown mode ${mode}`); process.exit(2); }
await modes[mode]();
console.log(`# ${mode}: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
