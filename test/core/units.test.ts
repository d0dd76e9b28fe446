/** Unit tests: handle state table, event queue, manual clock, config validation, tokens. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ManualClock } from '../../src/time/Clock.js';
import { EventQueue } from '../../src/core/EventQueue.js';
import { HANDLE_TRANSITIONS, type HandleInput, type HandleState } from '../../src/core/Handle.js';
import { jsonNestingDepth, parseRequestText } from '../../src/core/Json.js';
import { JanusError } from '../../src/core/JanusError.js';
import { TokenAuth, signToken } from '../../src/core/auth/TokenAuth.js';
import { ConfigError, applyEnv, loadConfig, makeConfig, DEFAULT_CONFIG } from '../../src/config/Config.js';

const table = suite('handle state table');
table('every state answers every input explicitly; detached is terminal; hangup always returns to idle', () => {
  const states: HandleState[] = ['idle', 'negotiating', 'connected', 'detached'];
  const inputs: HandleInput[] = ['remoteJsep', 'localJsep', 'webrtcUp', 'hangup', 'detach'];
  for (const s of states) {
    for (const i of inputs) {
      const next = HANDLE_TRANSITIONS[s][i];
      if (s === 'detached') assert.is(next, undefined, `detached ignores ${i}`);
      else if (i === 'detach') assert.is(next, 'detached');
      else if (i === 'hangup') assert.is(next, 'idle', `${s} hangup → idle (no SDP needed)`);
    }
  }
  assert.is(HANDLE_TRANSITIONS.idle.webrtcUp, undefined, 'no webrtcup without negotiation');
  assert.is(HANDLE_TRANSITIONS.negotiating.webrtcUp, 'connected');
  assert.is(HANDLE_TRANSITIONS.connected.webrtcUp, undefined, 'webrtcup once');
});
table.run();

const queue = suite('event queue');
queue('poll semantics, batching, bound, close', async () => {
  const clock = new ManualClock();
  let dropped = 0;
  const q = new EventQueue(clock, 3, () => dropped++);
  const got: unknown[][] = [];
  q.poll(2, 30_000, (e) => got.push(e));
  q.push({ n: 1 });
  q.push({ n: 2 });
  q.push({ n: 3 });
  await Promise.resolve();
  assert.equal(got, [[{ n: 1 }, { n: 2 }]], 'a synchronous burst reaches one poll together');
  assert.is(q.length, 1);
  q.push({ n: 4 });
  q.push({ n: 5 });
  q.push({ n: 6 });
  assert.is(dropped, 1);
  const now: unknown[][] = [];
  q.poll(10, 30_000, (e) => now.push(e));
  assert.equal(now, [[{ n: 4 }, { n: 5 }, { n: 6 }]]);
  const idle: unknown[][] = [];
  const cancel = q.poll(1, 30_000, (e) => idle.push(e));
  cancel();
  q.poll(1, 30_000, (e) => idle.push(e));
  clock.advance(30_000);
  assert.equal(idle, [[]], 'cancelled poll never answered; the other gets its keepalive');
  assert.is(clock.pendingTimers, 0);
  q.poll(1, 30_000, (e) => idle.push(e));
  q.close({ janus: 'timeout' });
  assert.equal(idle[1], [{ janus: 'timeout' }]);
  assert.is(q.waiterCount, 0);
  assert.is(clock.pendingTimers, 0);
});
queue.run();

const clock = suite('manual clock');
clock('fires in due order, intervals repeat, cancel works', () => {
  const c = new ManualClock(0);
  const log: string[] = [];
  c.setTimeout(() => log.push('b'), 20);
  c.setTimeout(() => log.push('a'), 10);
  const iv = c.setInterval(() => log.push(`i${c.now()}`), 15);
  c.advance(31);
  assert.equal(log, ['a', 'i15', 'b', 'i30']);
  iv.cancel();
  c.advance(100);
  assert.is(log.length, 4);
  assert.is(c.now(), 131);
});
clock.run();

const json = suite('json parsing');
json('depth counted outside strings; errors are Janus errors', () => {
  assert.is(jsonNestingDepth('{"a":"[[[[["}'), 1);
  assert.is(jsonNestingDepth('{"a":"\\"[[["}'), 1);
  assert.is(jsonNestingDepth('[[{}]]'), 3);
  for (const [text, code] of [['', 452], ['x', 454], ['1', 455], ['null', 455], ['[[[[[[', 454]] as const) {
    try {
      parseRequestText(text, 4);
      assert.unreachable(text);
    } catch (err) {
      assert.instance(err, JanusError);
      assert.is((err as JanusError).code, code, text);
    }
  }
});
json.run();

const config = suite('config');
config('defaults are Janus defaults; overrides validated with the key named', () => {
  assert.is(DEFAULT_CONFIG.http.port, 8088);
  assert.is(DEFAULT_CONFIG.websocket.port, 8188);
  assert.is(DEFAULT_CONFIG.admin_http.port, 7088);
  assert.is(DEFAULT_CONFIG.admin_websocket.port, 7188);
  assert.is(DEFAULT_CONFIG.general.session_timeout, 60);
  assert.is(DEFAULT_CONFIG.general.reclaim_session_timeout, 0);
  assert.is(makeConfig({ general: { session_timeout: 0 } }).general.session_timeout, 0);
  const bad = (fn: () => unknown, key: string) => {
    try {
      fn();
      assert.unreachable(key);
    } catch (err) {
      assert.instance(err, ConfigError);
      assert.match((err as Error).message, key);
    }
  };
  bad(() => makeConfig({ general: { session_timeout: -1 } }), 'general.session_timeout');
  bad(() => makeConfig({ http: { port: 70000 } }), 'http.port');
  bad(() => makeConfig({ http: { nope: 1 } as never }), 'http.nope');
  bad(() => makeConfig({ bogus: {} } as never), 'bogus');
  bad(() => makeConfig({ log: { level: 'loud' as never } }), 'log.level');
  bad(() => applyEnv(DEFAULT_CONFIG, { FERRY_GENERAL_SESSION_TIMEOUT: 'abc' }), 'general.session_timeout');
  bad(() => applyEnv(DEFAULT_CONFIG, { FERRY_HTTP_PORTT: '1' }), 'http.portt');
  const env = applyEnv(DEFAULT_CONFIG, { FERRY_GENERAL_SESSION_TIMEOUT: '30', FERRY_ADMIN_HTTP_PORT: '7089', FERRY_AUTH_API_SECRET: 's', FERRY_HTTP_ENABLED: 'false', FERRY_TEST_UNRELATED: 'x' });
  assert.is(env.general.session_timeout, 30);
  assert.is(env.admin_http.port, 7089);
  assert.is(env.auth.api_secret, 's');
  assert.is(env.http.enabled, false);
  bad(() => loadConfig({ file: '/nonexistent/ferry.yaml' }), '/nonexistent/ferry.yaml');
});
config.run();

const tokens = suite('token auth');
tokens('signed tokens: realm, expiry, signature, plugins', () => {
  let now = 1000;
  const auth = new TokenAuth({ enabled: true, secret: 'k', nowSeconds: () => now });
  const t = signToken('k', 1010, ['janus.plugin.echotest', 'janus.plugin.videoroom']);
  assert.ok(auth.isValid(t));
  assert.ok(auth.allowsPlugin(t, 'janus.plugin.videoroom'));
  assert.not.ok(auth.allowsPlugin(t, 'janus.plugin.sip'));
  assert.not.ok(auth.isValid(`${t}x`));
  assert.not.ok(auth.isValid(t.replace('1010', '9999')), 'expiry is signed');
  assert.not.ok(auth.isValid(':'));
  now = 1011;
  assert.not.ok(auth.isValid(t));
  assert.not.ok(auth.storedMode);
});
tokens.run();
