/** Every Janus verb, envelope and error the core returns, over real HTTP; long-poll semantics. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startGateway, tx, waitFor, OFFER_SDP, type TestGateway } from '../helpers/http.js';
import { ScriptedPlugin, TEST_PLUGIN } from '../helpers/testPlugins.js';

const test = suite<{ t: TestGateway; plugin: ScriptedPlugin }>('http api');

test.before.each(async (ctx) => {
  ctx.plugin = new ScriptedPlugin();
  ctx.t = await startGateway({ limits: { body_bytes: 4096, json_depth: 8, max_sessions: 50, max_handles_per_session: 3, max_queued_events: 5 } }, { plugins: [ctx.plugin] });
});
test.after.each(async ({ t }) => { await t.stop(); });

function errorCode(reply: Record<string, any>): number {
  assert.is(reply['janus'], 'error', JSON.stringify(reply));
  return reply['error'].code;
}

test('info and ping, by POST and by GET', async ({ t }) => {
  const info = await t.http.post('', { janus: 'info', transaction: 'i1' });
  assert.is(info['janus'], 'server_info');
  assert.is(info['transaction'], 'i1');
  assert.ok(info['plugins']['janus.plugin.echotest']);
  assert.is(info['session-timeout'], 60);
  assert.is(info['api_secret'], false);
  const getInfo = await t.http.get('/info');
  assert.is(getInfo.status, 200);
  assert.is(getInfo.body.janus, 'server_info');
  assert.is((await t.http.post('', { janus: 'ping', transaction: 'p1' }))['janus'], 'pong');
  assert.is((await t.http.get('/ping')).body.janus, 'pong');
});

test('create: random id, chosen id, 468 conflict, 467 wrong id type', async ({ t }) => {
  const id = await t.http.createSession();
  assert.ok(Number.isSafeInteger(id) && id > 0);
  const chosen = await t.http.post('', { janus: 'create', id: 4242 });
  assert.is(chosen['data'].id, 4242);
  assert.is(chosen['session_id'], undefined, 'create reply has no session_id');
  assert.is(errorCode(await t.http.post('', { janus: 'create', id: 4242 })), 468);
  assert.is(errorCode(await t.http.post('', { janus: 'create', id: 'x' })), 467);
  assert.is(errorCode(await t.http.post('', { janus: 'create', id: -3 })), 467);
  assert.is(t.gw.registry.sessionCount, 2);
});

test('attach, keepalive, claim, destroy; 458 after destroy', async ({ t }) => {
  const sid = await t.http.createSession();
  const keep = await t.http.post(`/${sid}`, { janus: 'keepalive', transaction: 'k' });
  assert.equal(keep, { janus: 'ack', session_id: sid, transaction: 'k' });
  const hid = await t.http.attach(sid, 'janus.plugin.echotest', { opaque_id: 'o-1' });
  assert.ok(hid > 0);
  assert.is(errorCode(await t.http.post(`/${sid}`, { janus: 'attach', plugin: 'janus.plugin.nope' })), 460);
  assert.is(errorCode(await t.http.post(`/${sid}`, { janus: 'attach' })), 456);
  assert.is(errorCode(await t.http.post(`/${sid}`, { janus: 'attach', plugin: 7 })), 467);
  assert.is(errorCode(await t.http.post(`/${sid}`, { janus: 'attach', plugin: 'janus.plugin.echotest', opaque_id: 7 })), 467);
  assert.is((await t.http.post(`/${sid}`, { janus: 'claim' }))['janus'], 'success');
  const destroyed = await t.http.post(`/${sid}`, { janus: 'destroy', transaction: 'd' });
  assert.equal(destroyed, { janus: 'success', session_id: sid, transaction: 'd' });
  const after = await t.http.post(`/${sid}`, { janus: 'keepalive' });
  assert.is(errorCode(after), 458);
  assert.match(after['error'].reason, `No such session ${sid}`);
  assert.is(t.gw.registry.sessionCount, 0);
});

test('echotest message: ack with hint, then the event through a long poll', async ({ t }) => {
  const sid = await t.http.createSession();
  const hid = await t.http.attach(sid);
  const ack = await t.http.post(`/${sid}/${hid}`, { janus: 'message', body: { audio: true, video: false, bitrate: 128000 }, transaction: 'm1' });
  assert.equal(ack, { janus: 'ack', session_id: sid, transaction: 'm1', hint: "I'm taking my time!" });
  const poll = await t.http.get(`/${sid}`);
  assert.is(poll.status, 200);
  assert.equal(poll.body, { janus: 'event', session_id: sid, sender: hid, transaction: 'm1', plugindata: { plugin: 'janus.plugin.echotest', data: { echotest: 'event', result: 'ok' } } });
  // Invalid element → plugin error inside plugindata, not a core error.
  await t.http.post(`/${sid}/${hid}`, { janus: 'message', body: { audio: 'yes' }, transaction: 'm2' });
  const bad = (await t.http.get(`/${sid}`)).body;
  assert.is(bad.plugindata.data.error_code, 413);
  assert.is(bad.transaction, 'm2');
  // An offer with no WebRTC layer wired: the marked 499 plugin error (see EchoTestPlugin header).
  await t.http.post(`/${sid}/${hid}`, { janus: 'message', body: { audio: true }, jsep: { type: 'offer', sdp: OFFER_SDP }, transaction: 'm3' });
  const offerReply = (await t.http.get(`/${sid}`)).body;
  assert.is(offerReply.plugindata.data.error_code, 499);
  assert.match(offerReply.plugindata.data.error, 'not available');
});

test('message validation: 456 / 467 / 464 / 465 and plugin 462', async ({ t }) => {
  const sid = await t.http.createSession();
  const hid = await t.http.attach(sid);
  const p = `/${sid}/${hid}`;
  assert.is(errorCode(await t.http.post(p, { janus: 'message' })), 456);
  assert.is(errorCode(await t.http.post(p, { janus: 'message', body: [] })), 467);
  assert.is(errorCode(await t.http.post(p, { janus: 'message', body: {}, jsep: 'x' })), 467);
  assert.is(errorCode(await t.http.post(p, { janus: 'message', body: {}, jsep: { sdp: OFFER_SDP } })), 456);
  assert.is(errorCode(await t.http.post(p, { janus: 'message', body: {}, jsep: { type: 5, sdp: OFFER_SDP } })), 467);
  assert.is(errorCode(await t.http.post(p, { janus: 'message', body: {}, jsep: { type: 'pranswer', sdp: OFFER_SDP } })), 464);
  assert.is(errorCode(await t.http.post(p, { janus: 'message', body: {}, jsep: { type: 'offer' } })), 456);
  assert.is(errorCode(await t.http.post(p, { janus: 'message', body: {}, jsep: { type: 'offer', sdp: 'hello' } })), 465);
  assert.is(errorCode(await t.http.post(p, { janus: 'message', body: {}, jsep: { type: 'offer', sdp: OFFER_SDP, trickle: 'no' } })), 467);
  // An answer nobody asked for.
  assert.is(errorCode(await t.http.post(p, { janus: 'message', body: {}, jsep: { type: 'answer', sdp: OFFER_SDP } })), 469);
  const shid = await t.http.attach(sid, TEST_PLUGIN);
  const sp = `/${sid}/${shid}`;
  const sync = await t.http.post(sp, { janus: 'message', body: { request: 'sync' }, transaction: 's' });
  assert.equal(sync, { janus: 'success', session_id: sid, transaction: 's', sender: shid, plugindata: { plugin: TEST_PLUGIN, data: { scripted: 'ok', echo: { request: 'sync' } } } });
  const syncErr = await t.http.post(sp, { janus: 'message', body: { request: 'sync-error' } });
  assert.is(syncErr['janus'], 'success', 'plugin errors travel inside plugindata');
  assert.is(syncErr['plugindata'].data.error_code, 499);
  assert.is(errorCode(await t.http.post(sp, { janus: 'message', body: { request: 'error' } })), 462);
  assert.is(errorCode(await t.http.post(sp, { janus: 'message', body: { request: 'throw' } })), 462);
  assert.is(errorCode(await t.http.post(sp, { janus: 'message', body: { request: 'bad-reply' } })), 462);
});

test('trickle: candidate, candidates, completed; 454 both, 456 neither, 467 wrong types', async ({ t }) => {
  const sid = await t.http.createSession();
  const hid = await t.http.attach(sid);
  const p = `/${sid}/${hid}`;
  const one = await t.http.post(p, { janus: 'trickle', candidate: { candidate: 'candidate:1 1 udp 1 127.0.0.1 5000 typ host', sdpMid: '0', sdpMLineIndex: 0 }, transaction: 'c1' });
  assert.equal(one, { janus: 'ack', session_id: sid, transaction: 'c1' });
  assert.is((await t.http.post(p, { janus: 'trickle', candidates: [{ candidate: 'candidate:2 1 udp 1 127.0.0.1 5001 typ host', sdpMid: '0' }, { completed: true }] }))['janus'], 'ack');
  assert.is((await t.http.post(p, { janus: 'trickle', candidate: { completed: true } }))['janus'], 'ack');
  assert.is(errorCode(await t.http.post(p, { janus: 'trickle', candidate: { completed: true }, candidates: [] })), 454);
  assert.is(errorCode(await t.http.post(p, { janus: 'trickle' })), 456);
  assert.is(errorCode(await t.http.post(p, { janus: 'trickle', candidate: 'x' })), 467);
  assert.is(errorCode(await t.http.post(p, { janus: 'trickle', candidates: {} })), 467);
  assert.is(errorCode(await t.http.post(p, { janus: 'trickle', candidate: { sdpMid: '0' } })), 456);
  assert.is(errorCode(await t.http.post(p, { janus: 'trickle', candidate: { candidate: 'c', sdpMLineIndex: -1 } })), 467);
  const info = await t.admin.post(p, { janus: 'handle_info', admin_secret: 'janusoverlord' });
  assert.is(info['info']['pending-trickles'], 4, 'candidates before any SDP are queued');
});

test('hangup and detach; detached event; 459 after; 463 when the plugin fails to detach', async ({ t, plugin }) => {
  const sid = await t.http.createSession();
  const hid = await t.http.attach(sid);
  assert.equal(await t.http.post(`/${sid}/${hid}`, { janus: 'hangup', transaction: 'h' }), { janus: 'success', session_id: sid, transaction: 'h' });
  assert.equal(await t.http.post(`/${sid}/${hid}`, { janus: 'detach', transaction: 'x' }), { janus: 'success', session_id: sid, transaction: 'x' });
  const ev = await t.http.get(`/${sid}`);
  assert.equal(ev.body, { janus: 'detached', session_id: sid, sender: hid });
  assert.is(errorCode(await t.http.post(`/${sid}/${hid}`, { janus: 'detach' })), 459);
  const bad = await t.http.attach(sid, TEST_PLUGIN, { opaque_id: 'fail-detach' });
  assert.is(errorCode(await t.http.post(`/${sid}/${bad}`, { janus: 'detach' })), 463);
  assert.is(t.gw.registry.get(sid)?.handles.size, 0, 'handle is gone even when the plugin failed');
  assert.is(errorCode(await t.http.post(`/${sid}`, { janus: 'attach', plugin: TEST_PLUGIN, opaque_id: 'fail-attach' })), 461);
  assert.ok(plugin.calls.includes('destroy:detach'));
});

test('paths: 457 wrong level or any verb but info/ping/create at the root, 453 unknown verb below it, 457 id conflict, 458/459 bad ids', async ({ t }) => {
  const sid = await t.http.createSession();
  const hid = await t.http.attach(sid);
  assert.is(errorCode(await t.http.post('', { janus: 'attach', plugin: 'janus.plugin.echotest' })), 457);
  assert.is(errorCode(await t.http.post('', { janus: 'frobnicate' })), 457);
  assert.is(errorCode(await t.http.post(`/${sid}`, { janus: 'message', body: {} })), 457);
  assert.is(errorCode(await t.http.post(`/${sid}`, { janus: 'create' })), 453);
  assert.is(errorCode(await t.http.post(`/${sid}`, { janus: 'frobnicate' })), 453);
  assert.is(errorCode(await t.http.post(`/${sid}/${hid}`, { janus: 'attach', plugin: 'x' })), 457);
  assert.is(errorCode(await t.http.post(`/${sid}/${hid}`, { janus: 'frobnicate' })), 453);
  const conflict = await t.http.post(`/${sid}`, { janus: 'keepalive', session_id: sid + 1 });
  assert.is(errorCode(conflict), 457);
  assert.match(conflict['error'].reason, 'Conflicting session ID');
  assert.is(errorCode(await t.http.post(`/${sid}/${hid}`, { janus: 'hangup', handle_id: hid + 1 })), 457);
  // Ids in the body only (the WebSocket way) work over HTTP too.
  assert.is((await t.http.post('', { janus: 'keepalive', session_id: sid }))['janus'], 'ack');
  assert.is((await t.http.post('', { janus: 'hangup', session_id: sid, handle_id: hid }))['janus'], 'success');
  assert.is(errorCode(await t.http.post('', { janus: 'hangup', handle_id: hid })), 458);
  assert.is(errorCode(await t.http.post('/123456', { janus: 'keepalive' })), 458);
  assert.is(errorCode(await t.http.post('/abc', { janus: 'keepalive' })), 458);
  assert.is(errorCode(await t.http.post(`/${sid}/999`, { janus: 'hangup' })), 459);
  assert.is(errorCode(await t.http.post(`/${sid}/x`, { janus: 'hangup' })), 459);
  assert.is(errorCode(await t.http.post('', { janus: 'keepalive', session_id: 'x' })), 467);
});

test('envelope and body errors: 456, 467, 452, 454, 455, depth 454, size 450', async ({ t }) => {
  const raw = (body: string) => t.http.raw('', { method: 'POST', body, headers: { 'content-type': 'text/plain' } });
  assert.is(errorCode(await t.http.post('', { janus: 'info', transaction: undefined as unknown as string })), 456);
  const noTx = (await raw('{"janus":"info"}')).body;
  assert.is(errorCode(noTx), 456);
  assert.is(noTx.transaction, undefined);
  assert.is(errorCode((await raw('{"janus":"info","transaction":5}')).body), 467);
  assert.is(errorCode((await raw('{"transaction":"t"}')).body), 456);
  assert.is(errorCode((await raw('{"transaction":"t","janus":[]}')).body), 467);
  assert.is(errorCode((await raw('')).body), 452);
  assert.is(errorCode((await raw('{nope')).body), 454);
  assert.is(errorCode((await raw('"str"')).body), 455);
  assert.is(errorCode((await raw('[[[[[[[[[[[]]]]]]]]]]]')).body), 454);
  const deep = `{"janus":"info","transaction":"t","x":${'['.repeat(20)}${']'.repeat(20)}}`;
  assert.is(errorCode((await raw(deep)).body), 454);
  const big = await raw(JSON.stringify({ janus: 'info', transaction: 't', pad: 'x'.repeat(8000) }));
  assert.is(big.status, 413);
  assert.is(errorCode(big.body), 450);
  // No content type at all is still read as JSON (janus.js may send none).
  const none = await t.http.raw('', { method: 'POST', body: Buffer.from('{"janus":"ping","transaction":"n"}') });
  assert.is(none.body.janus, 'pong');
  const put = await t.http.raw('', { method: 'PUT', body: '{}' });
  assert.is(errorCode(put.body), 450);
  const elsewhere = await fetch(`${t.httpBase}/elsewhere`);
  assert.is(elsewhere.status, 404);
  assert.is(errorCode((await elsewhere.json()) as Record<string, any>), 457);
});

test('CORS: preflight and replies carry Janus headers', async ({ t }) => {
  const pre = await t.http.raw('', { method: 'OPTIONS', headers: { origin: 'http://a.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } });
  assert.is(pre.status, 200);
  assert.is(pre.headers.get('access-control-allow-origin'), '*');
  assert.is(pre.headers.get('access-control-allow-methods'), 'POST');
  assert.is(pre.headers.get('access-control-allow-headers'), 'content-type');
  assert.is(pre.headers.get('access-control-max-age'), '86400');
  const reply = await t.http.raw('/info');
  assert.is(reply.headers.get('access-control-allow-origin'), '*');
});

test('CORS with a configured allow_origin adds credentials and Vary', async () => {
  const t = await startGateway({ http: { allow_origin: 'https://app.example' } });
  try {
    const r = await t.http.raw('/ping');
    assert.is(r.headers.get('access-control-allow-origin'), 'https://app.example');
    assert.is(r.headers.get('access-control-allow-credentials'), 'true');
    assert.is(r.headers.get('vary'), 'Origin');
  } finally {
    await t.stop();
  }
});

test('long poll: maxev=1 object, maxev>1 array, no event lost across polls, queue bound', async ({ t }) => {
  const sid = await t.http.createSession();
  const hid = await t.http.attach(sid, TEST_PLUGIN);
  await t.http.post(`/${sid}/${hid}`, { janus: 'message', body: { request: 'burst', count: 4 } });
  await waitFor(() => (t.gw.registry.get(sid)?.queue.length ?? 0) === 4);
  const first = await t.http.get(`/${sid}`);
  assert.is(first.body.plugindata.data.i, 0, 'maxev default 1 returns one object');
  const two = await t.http.get(`/${sid}?maxev=2`);
  assert.ok(Array.isArray(two.body));
  assert.equal(two.body.map((e: any) => e.plugindata.data.i), [1, 2]);
  const rest = await t.http.get(`/${sid}?maxev=10`);
  assert.equal(rest.body.map((e: any) => e.plugindata.data.i), [3]);
  const zero = t.http.get(`/${sid}?maxev=0`); // below 1 becomes 1
  await waitFor(() => t.gw.registry.longPollWaiterCount === 1);
  await t.http.post(`/${sid}/${hid}`, { janus: 'message', body: { request: 'burst', count: 1 } });
  assert.is((await zero).body.plugindata.data.i, 0);
  // max_queued_events = 5: the oldest are dropped and counted.
  await t.http.post(`/${sid}/${hid}`, { janus: 'message', body: { request: 'burst', count: 8 } });
  await waitFor(() => (t.gw.registry.get(sid)?.queue.length ?? 0) === 5);
  const kept = await t.http.get(`/${sid}?maxev=10`);
  assert.equal(kept.body.map((e: any) => e.plugindata.data.i), [3, 4, 5, 6, 7]);
  const metrics = await (await fetch(`${t.adminBase}/metrics`)).text();
  assert.match(metrics, 'ferry_events_dropped_total 3');
});

test('long poll: keepalive after 30 s, in both forms; waiting poll gets a later event', async ({ t }) => {
  const sid = await t.http.createSession();
  const single = t.http.get(`/${sid}`);
  const multi = t.http.get(`/${sid}?maxev=5`);
  await waitFor(() => t.gw.registry.longPollWaiterCount === 2);
  t.clock.advance(29_999);
  assert.is(t.gw.registry.longPollWaiterCount, 2);
  t.clock.advance(1);
  assert.equal((await single).body, { janus: 'keepalive' });
  assert.equal((await multi).body, [{ janus: 'keepalive' }]);
  const hid = await t.http.attach(sid, TEST_PLUGIN);
  const waiting = t.http.get(`/${sid}`);
  await waitFor(() => t.gw.registry.longPollWaiterCount === 1);
  await t.http.post(`/${sid}/${hid}`, { janus: 'message', body: { request: 'async' }, transaction: 'late' });
  const got = (await waiting).body;
  assert.is(got.transaction, 'late');
  assert.is(got.plugindata.data.scripted, 'event');
});

test('long poll: handle path redirects, unknown session 404, destroy releases the poll', async ({ t }) => {
  const sid = await t.http.createSession();
  const hid = await t.http.attach(sid);
  const redirect = await t.http.get(`/${sid}/${hid}?maxev=3`);
  assert.is(redirect.status, 302);
  assert.is(redirect.headers.get('location'), `/janus/${sid}?maxev=3`);
  const missing = await t.http.get('/98765');
  assert.is(missing.status, 404);
  assert.is(missing.body.error.code, 458);
  assert.is((await t.http.get('/not-a-number')).status, 404);
  assert.is((await t.http.get('')).status, 404);
  const pending = t.http.get(`/${sid}`);
  await waitFor(() => t.gw.registry.longPollWaiterCount === 1);
  await t.http.post(`/${sid}`, { janus: 'destroy' });
  assert.equal((await pending).body, { janus: 'keepalive' });
  assert.is(t.gw.registry.longPollWaiterCount, 0);
});

test('a long poll keeps the session alive; an idle session times out', async ({ t }) => {
  const sid = await t.http.createSession();
  const idle = await t.http.createSession();
  for (let i = 0; i < 4; i++) {
    t.clock.advance(20_000);
    const poll = t.http.get(`/${sid}`);
    await waitFor(() => t.gw.registry.longPollWaiterCount === 1);
    t.clock.advance(30_000);
    await poll;
  }
  assert.ok(t.gw.registry.get(sid), 'polled session lives');
  assert.is(t.gw.registry.get(idle), undefined, 'idle session expired');
});

test('limits: 472 when not accepting or full, 461 when a session has too many handles', async ({ t }) => {
  const sid = await t.http.createSession();
  for (let i = 0; i < 3; i++) await t.http.attach(sid);
  const tooMany = await t.http.post(`/${sid}`, { janus: 'attach', plugin: 'janus.plugin.echotest' });
  assert.is(errorCode(tooMany), 461);
  for (let i = 1; i < 50; i++) await t.http.createSession();
  assert.is(errorCode(await t.http.post('', { janus: 'create' })), 472);
  await t.gw.registry.get(sid)?.end('destroy');
  t.gw.registry.acceptingNewSessions = false;
  const closed = await t.http.post('', { janus: 'create', transaction: tx() });
  assert.is(errorCode(closed), 472);
});

test.run();
