/**
 * Random and mutated requests on both transports (and the Admin API): every
 * one gets a well-formed Janus reply, no 5xx, and the server stays up with a
 * consistent registry. Seeded, so a failure is reproducible.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { JANUS_ERROR_REASONS } from '../../src/core/JanusError.js';
import { JanusWs, startGateway, waitFor, type TestGateway } from '../helpers/http.js';
import { ScriptedPlugin, TEST_PLUGIN } from '../helpers/testPlugins.js';
import { rng } from '../helpers/rng.js';

const ROUNDS = 1200;


const VERBS = ['info', 'ping', 'create', 'attach', 'message', 'trickle', 'keepalive', 'detach', 'hangup', 'destroy', 'claim',
  'list_sessions', 'get_status', 'handle_info', 'destroy_session', 'add_token', 'set_log_level', 'message_plugin', 'ferry_status', 'x', '', 'ATTACH'];
const KEYS = ['janus', 'transaction', 'session_id', 'handle_id', 'body', 'jsep', 'plugin', 'candidate', 'candidates', 'id', 'token',
  'apisecret', 'admin_secret', 'opaque_id', 'request', 'timeout', 'level', 'accept', 'plugins', '__proto__', 'constructor'];

function makeFuzzer(r: () => number, ids: () => { sid: number; hid: number }) {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const value = (depth: number): unknown => {
    const k = Math.floor(r() * 12);
    switch (k) {
      case 0: return null;
      case 1: return r() < 0.5;
      case 2: return Math.floor(r() * 1e6) - 1000;
      case 3: return pick([0, -1, 1.5, 2 ** 53, 1e308, -0]);
      case 4: return pick(['', 'x', 'janus.plugin.echotest', TEST_PLUGIN, 'offer', 'answer', '\u0000\uffff', 'é'.repeat(50)]);
      case 5: return ids().sid;
      case 6: return ids().hid;
      case 7: return depth > 3 ? 1 : Array.from({ length: Math.floor(r() * 4) }, () => value(depth + 1));
      case 8: return { type: pick(['offer', 'answer', 'x', 3]), sdp: pick(['v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\n', 'junk', 5]) };
      case 9: return { candidate: pick(['candidate:1', 5, null]), sdpMid: pick(['0', 1]), completed: r() < 0.2 };
      case 10: return { request: pick(['sync', 'async', 'burst', 'error', 'throw', 'bad-reply', 'offer', 'end-handle', 'close-pc']), count: 2, audio: pick([true, 'x']) };
      default: return depth > 3 ? {} : object(depth + 1);
    }
  };
  const object = (depth: number): Record<string, unknown> => {
    const o: Record<string, unknown> = {};
    const n = Math.floor(r() * 6);
    for (let i = 0; i < n; i++) o[pick(KEYS)] = value(depth);
    return o;
  };
  const valid = (): Record<string, unknown> => {
    const { sid, hid } = ids();
    const verb = pick(VERBS);
    const req: Record<string, unknown> = { janus: verb, transaction: `f${Math.floor(r() * 1e9)}`, admin_secret: 'janusoverlord' };
    if (r() < 0.7) req['session_id'] = sid;
    if (r() < 0.5) req['handle_id'] = hid;
    if (verb === 'attach') req['plugin'] = pick(['janus.plugin.echotest', TEST_PLUGIN, 'nope']);
    if (verb === 'message') req['body'] = value(0);
    return req;
  };
  /** One request text: valid-ish, mutated, random object, or broken bytes. */
  return (): string => {
    const kind = Math.floor(r() * 6);
    if (kind === 0) return JSON.stringify(object(0));
    if (kind === 1) {
      const req = valid();
      const keys = Object.keys(req);
      const key = pick(keys);
      if (r() < 0.5) delete req[key];
      else req[key] = value(0);
      req[pick(KEYS)] = value(0);
      return JSON.stringify(req);
    }
    if (kind === 2) {
      const text = JSON.stringify(valid());
      const cut = Math.floor(r() * text.length);
      return r() < 0.5 ? text.slice(0, cut) : text.slice(0, cut) + String.fromCharCode(Math.floor(r() * 128)) + text.slice(cut + 1);
    }
    if (kind === 3) return Array.from({ length: Math.floor(r() * 40) }, () => String.fromCharCode(Math.floor(r() * 256))).join('');
    if (kind === 4) return `${'['.repeat(Math.floor(r() * 200))}`;
    return JSON.stringify(valid());
  };
}

const KNOWN_CODES = new Set(Object.keys(JANUS_ERROR_REASONS).map(Number));
const REPLY_KINDS = new Set(['success', 'ack', 'error', 'pong', 'server_info']);

function assertWellFormed(reply: unknown, context: string): void {
  assert.ok(typeof reply === 'object' && reply !== null && !Array.isArray(reply), `not an object: ${context}`);
  const r = reply as Record<string, any>;
  assert.ok(REPLY_KINDS.has(r['janus']), `unexpected janus ${r['janus']}: ${context}`);
  if (r['janus'] === 'error') {
    assert.ok(KNOWN_CODES.has(r['error']?.code), `unknown code ${JSON.stringify(r['error'])}: ${context}`);
    assert.type(r['error'].reason, 'string');
  }
}

const fuzz = suite<{ t: TestGateway; plugin: ScriptedPlugin }>('fuzz');
fuzz.before.each(async (ctx) => {
  ctx.plugin = new ScriptedPlugin();
  ctx.t = await startGateway({ limits: { body_bytes: 8192, json_depth: 16, max_handles_per_session: 8 } }, { plugins: [ctx.plugin] });
});
fuzz.after.each(async ({ t }) => { await t.stop(); });

async function liveIds(t: TestGateway): Promise<{ sid: number; hid: number }> {
  const sid = await t.http.createSession();
  const hid = await t.http.attach(sid, TEST_PLUGIN);
  return { sid, hid };
}

fuzz('HTTP: random paths, methods and bodies', async ({ t }) => {
  let ids = await liveIds(t);
  const next = makeFuzzer(rng(0xfe77), () => ids);
  const r = rng(7);
  for (let i = 0; i < ROUNDS; i++) {
    if (!t.gw.registry.get(ids.sid)?.handles.has(ids.hid)) ids = await liveIds(t);
    const path = [``, `/${ids.sid}`, `/${ids.sid}/${ids.hid}`, `/${Math.floor(r() * 1e6)}`, '/x/y/z', '/%ff', '/info'][Math.floor(r() * 7)] ?? '';
    const method = r() < 0.9 ? 'POST' : (['GET', 'PUT', 'DELETE', 'PATCH'][Math.floor(r() * 4)] ?? 'GET');
    const text = next();
    let done = false;
    const pending = t.http.raw(path, method === 'GET' ? { method } : { method, body: text, headers: { 'content-type': r() < 0.5 ? 'application/json' : 'text/plain' } })
      .finally(() => { done = true; });
    // A GET on a session path is a long poll: move manual time to its keepalive instead of waiting forever.
    await waitFor(() => done || t.gw.registry.longPollWaiterCount > 0);
    if (!done) t.clock.advance(30_000);
    const res = await pending;
    assert.ok(res.status < 500, `HTTP ${res.status} for ${method} ${path} ${text.slice(0, 200)}`);
    if (method === 'GET' && res.status === 200 && path === `/${ids.sid}`) continue; // a long poll delivering events
    if (res.status === 302) continue;
    assertWellFormed(res.body, `${method} ${path} ${text.slice(0, 200)} → ${res.text.slice(0, 200)}`);
  }
  assert.is((await t.http.post('', { janus: 'ping' }))['janus'], 'pong');
});

fuzz('WebSocket (API and Admin): every message answered, socket and server survive', async ({ t }) => {
  let ids = await liveIds(t);
  for (const [url, proto] of [[t.wsUrl, 'janus-protocol'], [t.adminWsUrl, 'janus-admin-protocol']] as const) {
    const ws = await JanusWs.connect(url, proto);
    const next = makeFuzzer(rng(proto.length * 31), () => ids);
    for (let i = 0; i < ROUNDS; i++) {
      if (!t.gw.registry.get(ids.sid)?.handles.has(ids.hid)) ids = await liveIds(t);
      const text = next();
      // Transactions in fuzzed text may collide with nothing pending: every reply comes back in order on the raw path.
      const reply = await ws.sendRaw(text);
      assertWellFormed(reply, `${proto} ${text.slice(0, 200)}`);
    }
    assert.is((await ws.request({ janus: 'ping' }))['janus'], 'pong');
    await ws.close();
  }
  // The registry is still self-consistent: every handle belongs to a live session.
  for (const s of t.gw.registry.all()) {
    assert.ok(s.live);
    for (const h of s.handles.values()) assert.is(h.sessionId, s.id);
  }
  const m = await (await fetch(`${t.adminBase}/metrics`)).text();
  assert.match(m, /ferry_requests_total\{api="janus",verb="unknown",code="454"\} \d+/);
  // Label cardinality stays bounded whatever verbs were thrown at us.
  const labels = new Set([...m.matchAll(/verb="([^"]*)"/g)].map((x) => x[1]));
  assert.ok(labels.size <= 40, `too many verb labels: ${[...labels].join(',')}`);
});

fuzz.run();
