/** The Janus API over WebSocket: verbs, pushed events, timeout, reclaim/claim, and the media hook. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import WebSocket from 'ws';
import { JanusWs, startGateway, waitFor, settle, OFFER_SDP, type TestGateway } from '../helpers/http.js';
import { FakeMediaProvider, ScriptedPlugin, TEST_PLUGIN } from '../helpers/testPlugins.js';

async function session(ws: JanusWs): Promise<number> {
  const r = await ws.request({ janus: 'create' });
  assert.is(r['janus'], 'success');
  return r['data'].id;
}
async function attach(ws: JanusWs, sid: number, plugin = 'janus.plugin.echotest', extra = {}): Promise<number> {
  const r = await ws.request({ janus: 'attach', session_id: sid, plugin, ...extra });
  assert.is(r['janus'], 'success', JSON.stringify(r));
  return r['data'].id;
}

// ---------------------------------------------------------------------------
const verbs = suite<{ t: TestGateway; ws: JanusWs; plugin: ScriptedPlugin }>('ws verbs');
verbs.before.each(async (ctx) => {
  ctx.plugin = new ScriptedPlugin();
  ctx.t = await startGateway({ limits: { body_bytes: 4096 } }, { plugins: [ctx.plugin] });
  ctx.ws = await JanusWs.connect(ctx.t.wsUrl);
});
verbs.after.each(async ({ t, ws }) => {
  await ws.close();
  await t.stop();
});

verbs('subprotocol: janus-protocol accepted, a foreign one refused', async ({ t }) => {
  const bad = new WebSocket(t.wsUrl, 'other-protocol');
  const outcome = await new Promise<string>((resolve) => {
    bad.once('open', () => resolve('open'));
    bad.once('error', () => resolve('error'));
  });
  assert.is(outcome, 'error');
  const admin = await JanusWs.connect(t.adminWsUrl, 'janus-admin-protocol');
  assert.is((await admin.request({ janus: 'ping' }))['janus'], 'pong');
  await admin.close();
});

verbs('every verb over one socket, with events pushed in order', async ({ ws }) => {
  assert.is((await ws.request({ janus: 'info' }))['janus'], 'server_info');
  assert.is((await ws.request({ janus: 'ping' }))['janus'], 'pong');
  const sid = await session(ws);
  assert.is((await ws.request({ janus: 'keepalive', session_id: sid }))['janus'], 'ack');
  const hid = await attach(ws, sid);
  const ack = await ws.request({ janus: 'message', session_id: sid, handle_id: hid, body: { video: false }, transaction: 'wm' });
  assert.is(ack['janus'], 'ack');
  const ev = await ws.nextEvent((e) => e['janus'] === 'event' && e['transaction'] === 'wm');
  assert.equal(ev['plugindata'], { plugin: 'janus.plugin.echotest', data: { echotest: 'event', result: 'ok' } });
  assert.is((await ws.request({ janus: 'trickle', session_id: sid, handle_id: hid, candidate: { completed: true } }))['janus'], 'ack');
  assert.is((await ws.request({ janus: 'hangup', session_id: sid, handle_id: hid }))['janus'], 'success');
  assert.is((await ws.request({ janus: 'claim', session_id: sid }))['janus'], 'success');
  const detach = await ws.request({ janus: 'detach', session_id: sid, handle_id: hid });
  assert.is(detach['janus'], 'success');
  const detached = await ws.nextEvent((e) => e['janus'] === 'detached');
  assert.equal(detached, { janus: 'detached', session_id: sid, sender: hid });
  assert.is((await ws.request({ janus: 'destroy', session_id: sid }))['janus'], 'success');
  const gone = await ws.request({ janus: 'keepalive', session_id: sid });
  assert.is(gone['error'].code, 458);
});

verbs('async plugin reply: the ack reaches the socket before the event', async ({ ws }) => {
  const sid = await session(ws);
  const hid = await attach(ws, sid, TEST_PLUGIN);
  const order: string[] = [];
  ws.socket.on('message', (d) => {
    const m = JSON.parse(String(d));
    if (m.transaction === 'ord') order.push(m.janus);
  });
  const ack = await ws.request({ janus: 'message', session_id: sid, handle_id: hid, body: { request: 'async' }, transaction: 'ord' });
  assert.is(ack['hint'], 'later');
  await ws.nextEvent((e) => e['transaction'] === 'ord');
  assert.equal(order, ['ack', 'event']);
});

verbs('framing errors: 454, 455, 452, oversized 450; the socket stays usable', async ({ ws }) => {
  assert.is((await ws.sendRaw('{not json'))['error'].code, 454);
  assert.is((await ws.sendRaw('[1,2]'))['error'].code, 455);
  assert.is((await ws.sendRaw('   '))['error'].code, 452);
  assert.is((await ws.sendRaw(JSON.stringify({ janus: 'ping', transaction: 'x', pad: 'y'.repeat(5000) })))['error'].code, 450);
  assert.is((await ws.request({ janus: 'ping' }))['janus'], 'pong');
});

verbs('plugin-initiated endings: close_pc hangs up, end_session detaches', async ({ ws, plugin }) => {
  const sid = await session(ws);
  const hid = await attach(ws, sid, TEST_PLUGIN);
  await ws.request({ janus: 'message', session_id: sid, handle_id: hid, body: { request: 'close-pc' } });
  await waitFor(() => plugin.calls.includes('hangupMedia:plugin closed it'));
  await ws.request({ janus: 'message', session_id: sid, handle_id: hid, body: { request: 'end-handle' } });
  const detached = await ws.nextEvent((e) => e['janus'] === 'detached');
  assert.is(detached['sender'], hid);
  assert.ok(plugin.calls.includes('destroy:plugin ended it'));
});

verbs.run();

// ---------------------------------------------------------------------------
const lifetimes = suite('ws session lifetimes');

lifetimes('timeout: the client hears {"janus":"timeout"} and the session is gone', async () => {
  const plugin = new ScriptedPlugin();
  const t = await startGateway({ general: { session_timeout: 60 } }, { plugins: [plugin] });
  const ws = await JanusWs.connect(t.wsUrl);
  try {
    const sid = await session(ws);
    const keep = await session(ws);
    await attach(ws, sid, TEST_PLUGIN);
    const forever = await session(ws);
    const setTimeoutReply = await t.admin.post(`/${forever}`, { janus: 'set_session_timeout', timeout: 0, admin_secret: 'janusoverlord' });
    assert.is(setTimeoutReply['timeout'], 0);
    t.clock.advance(40_000);
    await ws.request({ janus: 'keepalive', session_id: keep });
    t.clock.advance(20_000);
    const ev = await ws.nextEvent((e) => e['janus'] === 'timeout');
    assert.equal(ev, { janus: 'timeout', session_id: sid });
    assert.is(t.gw.registry.get(sid), undefined);
    assert.ok(t.gw.registry.get(keep), 'kept alive by its keepalive');
    assert.ok(plugin.calls.includes('destroy:session timeout'));
    t.clock.advance(60_000);
    assert.is(t.gw.registry.get(keep), undefined);
    assert.ok(t.gw.registry.get(forever), 'timeout 0 never expires');
    assert.is(t.gw.status().handles, 0);
  } finally {
    await ws.close();
    await t.stop();
  }
});

lifetimes('no reclaim: closing the socket ends its sessions at once', async () => {
  const plugin = new ScriptedPlugin();
  const t = await startGateway({}, { plugins: [plugin] });
  const ws = await JanusWs.connect(t.wsUrl);
  const sid = await session(ws);
  await attach(ws, sid, TEST_PLUGIN);
  await ws.close();
  await waitFor(() => t.gw.registry.sessionCount === 0);
  assert.ok(plugin.calls.includes('destroy:session transport-gone'));
  await t.stop();
});

lifetimes('reclaim: a new connection claims the session and gets the backlog; unclaimed ones expire', async () => {
  const plugin = new ScriptedPlugin();
  const t = await startGateway({ general: { reclaim_session_timeout: 10 } }, { plugins: [plugin] });
  try {
    const ws1 = await JanusWs.connect(t.wsUrl);
    const sid = await session(ws1);
    const hid = await attach(ws1, sid, TEST_PLUGIN);
    const orphan = await session(ws1);
    await attach(ws1, orphan, TEST_PLUGIN);
    await ws1.close();
    await waitFor(() => t.gw.registry.get(sid)?.transportGone === true);
    assert.is(t.gw.registry.sessionCount, 2);
    // Events produced while nobody is connected wait for the claim.
    await t.http.post(`/${sid}/${hid}`, { janus: 'message', body: { request: 'burst', count: 2 } });
    await waitFor(() => (t.gw.registry.get(sid)?.queue.length ?? 0) === 2);
    t.clock.advance(5_000);
    const ws2 = await JanusWs.connect(t.wsUrl);
    const claim = await ws2.request({ janus: 'claim', session_id: sid });
    assert.equal(claim, { janus: 'success', session_id: sid, transaction: claim['transaction'] });
    const b0 = await ws2.nextEvent((e) => e['plugindata']?.data?.i === 0);
    const b1 = await ws2.nextEvent((e) => e['plugindata']?.data?.i === 1);
    assert.ok(b0 && b1);
    await ws2.request({ janus: 'message', session_id: sid, handle_id: hid, body: { request: 'async' }, transaction: 'after-claim' });
    await ws2.nextEvent((e) => e['transaction'] === 'after-claim');
    t.clock.advance(6_000);
    assert.is(t.gw.registry.get(orphan), undefined, 'unclaimed session expired after reclaim_session_timeout');
    assert.ok(t.gw.registry.get(sid), 'claimed session lives');
    await ws2.close();
    await waitFor(() => t.gw.registry.get(sid)?.transportGone === true);
    t.clock.advance(12_000);
    assert.is(t.gw.registry.sessionCount, 0);
    assert.is(plugin.calls.filter((c) => c === 'destroy:session reclaim-expired').length, 2);
  } finally {
    await t.stop();
  }
});

lifetimes.run();

// ---------------------------------------------------------------------------
const media = suite<{ t: TestGateway; ws: JanusWs; plugin: ScriptedPlugin; provider: FakeMediaProvider }>('media hook');
media.before.each(async (ctx) => {
  ctx.plugin = new ScriptedPlugin();
  ctx.provider = new FakeMediaProvider();
  ctx.t = await startGateway({}, { plugins: [ctx.plugin], media: ctx.provider });
  ctx.ws = await JanusWs.connect(ctx.t.wsUrl);
});
media.after.each(async ({ t, ws }) => {
  await ws.close();
  await t.stop();
});

media('client offer reaches the media layer, then the plugin; echotest answers with a merged jsep', async ({ t, ws, provider }) => {
  const sid = await session(ws);
  const hid = await attach(ws, sid);
  await ws.request({ janus: 'trickle', session_id: sid, handle_id: hid, candidate: { candidate: 'candidate:early', sdpMid: '0' } });
  await ws.request({ janus: 'message', session_id: sid, handle_id: hid, body: { audio: true }, jsep: { type: 'offer', sdp: OFFER_SDP }, transaction: 'off' });
  const ev = await ws.nextEvent((e) => e['transaction'] === 'off' && e['janus'] === 'event');
  assert.equal(ev['plugindata'].data, { echotest: 'event', result: 'ok' });
  assert.is(ev['jsep'].type, 'answer');
  assert.match(ev['jsep'].sdp, 'a=setup:passive');
  assert.match(ev['jsep'].sdp, 'a=ice-ufrag:fake', 'the core merged the local description');
  const m = provider.forHandle(hid);
  assert.ok(m);
  assert.equal(m?.candidates, [{ candidate: 'candidate:early', sdpMid: '0' }], 'queued trickle flushed after the SDP');
  assert.is(t.gw.status().peer_connections, 1);
  const bad = await ws.request({ janus: 'message', session_id: sid, handle_id: hid, body: {}, jsep: { type: 'offer', sdp: `${OFFER_SDP}a=reject-me\r\n` } });
  assert.is(bad['error'].code, 465);
});

media('media events become webrtcup / media / slowlink / trickle / hangup; hangup is idempotent', async ({ t, ws, plugin, provider }) => {
  const sid = await session(ws);
  const hid = await attach(ws, sid, TEST_PLUGIN);
  await ws.request({ janus: 'message', session_id: sid, handle_id: hid, body: { request: 'offer' }, transaction: 'po' });
  const offer = await ws.nextEvent((e) => e['transaction'] === 'po');
  assert.is(offer['jsep'].type, 'offer');
  assert.match(offer['jsep'].sdp, 'a=ice-ufrag:fake');
  const answer = await ws.request({ janus: 'message', session_id: sid, handle_id: hid, body: { request: 'sync' }, jsep: { type: 'answer', sdp: OFFER_SDP } });
  assert.is(answer['janus'], 'success', 'answer to our offer is expected');
  const m = provider.forHandle(hid);
  assert.ok(m);
  m?.events.webrtcUp();
  m?.events.webrtcUp();
  assert.equal(await ws.nextEvent((e) => e['janus'] === 'webrtcup'), { janus: 'webrtcup', session_id: sid, sender: hid });
  assert.is(plugin.calls.filter((c) => c === 'setupMedia').length, 1, 'webrtcup once per PeerConnection');
  m?.events.mediaState({ mid: '0', type: 'audio', receiving: true });
  assert.equal(await ws.nextEvent((e) => e['janus'] === 'media'), { janus: 'media', session_id: sid, sender: hid, mid: '0', type: 'audio', receiving: true });
  m?.events.slowLink({ mid: '0', media: 'audio', uplink: true, lost: 12 });
  assert.is((await ws.nextEvent((e) => e['janus'] === 'slowlink'))['lost'], 12);
  m?.events.localCandidate({ candidate: 'candidate:srv', sdpMid: '0', sdpMLineIndex: 0 });
  m?.events.localCandidate(null);
  assert.is((await ws.nextEvent((e) => e['janus'] === 'trickle'))['candidate'].candidate, 'candidate:srv');
  assert.equal((await ws.nextEvent((e) => e['janus'] === 'trickle'))['candidate'], { completed: true });
  assert.is((await ws.request({ janus: 'hangup', session_id: sid, handle_id: hid }))['janus'], 'success');
  assert.equal(await ws.nextEvent((e) => e['janus'] === 'hangup'), { janus: 'hangup', session_id: sid, sender: hid, reason: 'Janus API' });
  assert.is(m?.closedWith, 'Janus API');
  assert.is(t.gw.status().peer_connections, 0);
  m?.events.webrtcUp(); // stale PeerConnection: ignored
  await ws.request({ janus: 'hangup', session_id: sid, handle_id: hid });
  await settle();
  assert.is(ws.events.filter((e) => e['janus'] === 'hangup' || e['janus'] === 'webrtcup').length, 0, 'no second hangup, no stale webrtcup');
  assert.ok(plugin.calls.filter((c) => c === 'hangupMedia:Janus API').length === 2, 'plugin told both times (idempotent on its side)');
});

media('the media layer closing the PeerConnection hangs the handle up; detach closes media', async ({ ws, provider, plugin }) => {
  const sid = await session(ws);
  const hid = await attach(ws, sid, TEST_PLUGIN);
  await ws.request({ janus: 'message', session_id: sid, handle_id: hid, body: { request: 'sync' }, jsep: { type: 'offer', sdp: OFFER_SDP } });
  provider.forHandle(hid)?.events.closed('DTLS alert');
  assert.is((await ws.nextEvent((e) => e['janus'] === 'hangup'))['reason'], 'DTLS alert');
  await ws.request({ janus: 'message', session_id: sid, handle_id: hid, body: { request: 'sync' }, jsep: { type: 'offer', sdp: OFFER_SDP } });
  const second = provider.forHandle(hid);
  assert.is(second?.closedWith, null);
  await ws.request({ janus: 'detach', session_id: sid, handle_id: hid });
  assert.is(second?.closedWith, 'detach');
  assert.ok(plugin.calls.includes('hangupMedia:detach'));
  assert.is(provider.open_count, 0);
});

media.run();
