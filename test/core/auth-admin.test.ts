/** api_secret, stored and signed tokens, admin_secret, and every Admin API request. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { signToken } from '../../src/core/auth/TokenAuth.js';
import { JanusWs, startGateway, waitFor, type TestGateway } from '../helpers/http.js';
import { ScriptedPlugin, TEST_PLUGIN } from '../helpers/testPlugins.js';

const ADMIN = 'janusoverlord';

/** A long poll on `path` is let in: held until Janus's 30 s pass, then answered with a keepalive. */
async function assertLongPollHeld(t: TestGateway, path: string): Promise<void> {
  const poll = t.http.get(path);
  await waitFor(() => t.gw.registry.longPollWaiterCount === 1);
  t.clock.advance(30_000);
  assert.equal((await poll).body, { janus: 'keepalive' });
}

// ---------------------------------------------------------------------------
const secret = suite('api_secret');
secret('missing or wrong apisecret is 403 on requests and long polls; info/ping stay open', async () => {
  const t = await startGateway({ auth: { api_secret: 's3cret' } });
  try {
    assert.is((await t.http.post('', { janus: 'create' }))['error'].code, 403);
    assert.is((await t.http.post('', { janus: 'create', apisecret: 'nope' }))['error'].code, 403);
    assert.is((await t.http.post('', { janus: 'info' }))['janus'], 'server_info');
    assert.is((await t.http.post('', { janus: 'ping' }))['janus'], 'pong');
    const sid = await t.http.createSession({ apisecret: 's3cret' });
    assert.is((await t.http.post(`/${sid}`, { janus: 'keepalive' }))['error'].code, 403);
    assert.is((await t.http.post(`/${sid}`, { janus: 'keepalive', apisecret: 's3cret' }))['janus'], 'ack');
    const denied = await t.http.get(`/${sid}`);
    assert.is(denied.status, 403);
    assert.is(denied.body.error.code, 403);
    const ws = await JanusWs.connect(t.wsUrl);
    assert.is((await ws.request({ janus: 'keepalive', session_id: sid }))['error'].code, 403);
    assert.is((await ws.request({ janus: 'keepalive', session_id: sid, apisecret: 's3cret' }))['janus'], 'ack');
    await ws.close();
    await assertLongPollHeld(t, `/${sid}?apisecret=s3cret`);
  } finally {
    await t.stop();
  }
});
secret.run();

// ---------------------------------------------------------------------------
const stored = suite<{ t: TestGateway }>('stored tokens');
stored.before.each(async (ctx) => {
  ctx.t = await startGateway({ auth: { token_auth: true } }, { plugins: [new ScriptedPlugin()] });
});
stored.after.each(async ({ t }) => { await t.stop(); });

stored('tokens managed through the Admin API gate requests and plugins', async ({ t }) => {
  const a = (req: Record<string, unknown>) => t.admin.post('', { ...req, admin_secret: ADMIN });
  assert.is((await t.http.post('', { janus: 'create', token: 'tok' }))['error'].code, 403);
  const added = await a({ janus: 'add_token', token: 'tok', plugins: ['janus.plugin.echotest'] });
  assert.equal(added['data'], { plugins: ['janus.plugin.echotest'] });
  const all = await a({ janus: 'add_token', token: 'everything' });
  assert.equal(all['data'].plugins.sort(), ['janus.plugin.echotest', TEST_PLUGIN].sort());
  assert.is((await a({ janus: 'add_token', token: 'x', plugins: ['janus.plugin.none'] }))['error'].code, 460);
  assert.is((await a({ janus: 'add_token', token: 'x', plugins: 'janus.plugin.echotest' }))['error'].code, 467);
  assert.is((await a({ janus: 'add_token' }))['error'].code, 456);
  const list = await a({ janus: 'list_tokens' });
  assert.equal(list['data'].tokens.map((x: any) => x.token).sort(), ['everything', 'tok']);
  const sid = await t.http.createSession({ token: 'tok' });
  assert.ok(await t.http.attach(sid, 'janus.plugin.echotest', { token: 'tok' }));
  const denied = await t.http.post(`/${sid}`, { janus: 'attach', plugin: TEST_PLUGIN, token: 'tok' });
  assert.is(denied['error'].code, 405);
  assert.equal((await a({ janus: 'allow_token', token: 'tok', plugins: [TEST_PLUGIN] }))['data'].plugins.sort(), ['janus.plugin.echotest', TEST_PLUGIN].sort());
  assert.ok(await t.http.attach(sid, TEST_PLUGIN, { token: 'tok' }));
  assert.equal((await a({ janus: 'disallow_token', token: 'tok', plugins: [TEST_PLUGIN] }))['data'].plugins, ['janus.plugin.echotest']);
  assert.is((await t.http.post(`/${sid}`, { janus: 'attach', plugin: TEST_PLUGIN, token: 'tok' }))['error'].code, 405);
  assert.is((await a({ janus: 'allow_token', token: 'tok' }))['error'].code, 456);
  assert.is((await a({ janus: 'allow_token', token: 'missing', plugins: [] }))['error'].code, 470);
  assert.is((await a({ janus: 'remove_token', token: 'missing' }))['error'].code, 470);
  assert.is((await a({ janus: 'remove_token', token: 'tok' }))['janus'], 'success');
  assert.is((await t.http.post(`/${sid}`, { janus: 'keepalive', token: 'tok' }))['error'].code, 403);
});

stored.run();

const storedPoll = suite('stored tokens on long polls');
storedPoll('valid token long-polls; invalid token 403', async () => {
  const t = await startGateway({ auth: { token_auth: true } });
  try {
    await t.admin.post('', { janus: 'add_token', token: 'tok', admin_secret: ADMIN });
    const sid = await t.http.createSession({ token: 'tok' });
    assert.is((await t.http.get(`/${sid}?token=bad`)).status, 403);
    await assertLongPollHeld(t, `/${sid}?token=tok`);
  } finally {
    await t.stop();
  }
});
storedPoll.run();

// ---------------------------------------------------------------------------
const signed = suite('signed tokens');
signed('valid, expired, forged, wrong realm and wrong plugin', async () => {
  let now = 1_700_000_000;
  const t = await startGateway({ auth: { token_auth: true, token_auth_secret: 'hmac-key' } }, { plugins: [new ScriptedPlugin()], nowSeconds: () => now });
  try {
    const good = signToken('hmac-key', now + 60, ['janus.plugin.echotest']);
    const sid = await t.http.createSession({ token: good });
    assert.ok(await t.http.attach(sid, 'janus.plugin.echotest', { token: good }));
    assert.is((await t.http.post(`/${sid}`, { janus: 'attach', plugin: TEST_PLUGIN, token: good }))['error'].code, 405);
    const forged = good.replace(/:.*/, ':AAAAAAAAAAAAAAAAAAAAAAAAAAA=');
    assert.is((await t.http.post('', { janus: 'create', token: forged }))['error'].code, 403);
    const otherKey = signToken('other-key', now + 60, ['janus.plugin.echotest']);
    assert.is((await t.http.post('', { janus: 'create', token: otherKey }))['error'].code, 403);
    assert.is((await t.http.post('', { janus: 'create', token: 'garbage' }))['error'].code, 403);
    const realm = `${now + 60},notjanus:` + signToken('hmac-key', now + 60, []).split(':')[1];
    assert.is((await t.http.post('', { janus: 'create', token: realm }))['error'].code, 403);
    now += 61;
    assert.is((await t.http.post(`/${sid}`, { janus: 'keepalive', token: good }))['error'].code, 403, 'expired');
    // Signed mode has no stored tokens to manage: 490 as in Janus.
    assert.is((await t.admin.post('', { janus: 'list_tokens', admin_secret: ADMIN }))['error'].code, 490);
  } finally {
    await t.stop();
  }
});
signed.run();

// ---------------------------------------------------------------------------
const admin = suite<{ t: TestGateway; plugin: ScriptedPlugin }>('admin api');
admin.before.each(async (ctx) => {
  ctx.plugin = new ScriptedPlugin();
  ctx.t = await startGateway({}, { plugins: [ctx.plugin] });
});
admin.after.each(async ({ t }) => { await t.stop(); });

admin('admin_secret required except for info and ping', async ({ t }) => {
  assert.is((await t.admin.post('', { janus: 'info' }))['janus'], 'server_info');
  assert.is((await t.admin.post('', { janus: 'ping' }))['janus'], 'pong');
  assert.is((await t.admin.post('', { janus: 'list_sessions' }))['error'].code, 403);
  assert.is((await t.admin.post('', { janus: 'list_sessions', admin_secret: 'wrong' }))['error'].code, 403);
  assert.is((await t.admin.post('', { janus: 'get_status', admin_secret: ADMIN }))['janus'], 'success');
  // janus.c's Admin API answers 457 for every verb it does not handle at a level, unknown ones included.
  assert.is((await t.admin.post('', { janus: 'what', admin_secret: ADMIN }))['error'].code, 457);
  assert.is((await t.admin.post('', { janus: 'list_handles', admin_secret: ADMIN }))['error'].code, 457);
});

admin('global, session and handle requests, over HTTP and the admin WebSocket', async ({ t, plugin }) => {
  const a = (path: string, req: Record<string, unknown>) => t.admin.post(path, { ...req, admin_secret: ADMIN });
  const sid = await t.http.createSession();
  const hid = await t.http.attach(sid, TEST_PLUGIN, { opaque_id: 'op' });
  const status = await a('', { janus: 'get_status' });
  assert.is(status['status'].session_timeout, 60);
  assert.is(status['status'].log_level, 0, 'tests run silent');
  assert.equal((await a('', { janus: 'list_sessions' }))['sessions'], [sid]);
  assert.equal((await a(`/${sid}`, { janus: 'list_handles' }))['handles'], [hid]);
  const info = await a(`/${sid}/${hid}`, { janus: 'handle_info' });
  assert.is(info['handle_id'], hid);
  assert.is(info['info'].plugin, TEST_PLUGIN);
  assert.is(info['info'].opaque_id, 'op');
  assert.equal(info['info'].plugin_specific, { scripted: true });
  assert.is(info['info'].session_transport, 'janus.transport.http');
  assert.equal((await a(`/${sid}/${hid}`, { janus: 'handle_info', plugin_only: true }))['info'], { plugin: TEST_PLUGIN, plugin_specific: { scripted: true } });
  assert.is((await a(`/${sid}/${hid}`, { janus: 'hangup_webrtc' }))['janus'], 'success');
  assert.ok(plugin.calls.includes('hangupMedia:Admin API'));
  assert.is((await a(`/${sid}/${hid}`, { janus: 'detach_handle' }))['janus'], 'success');
  assert.is((await a(`/${sid}/${hid}`, { janus: 'handle_info' }))['error'].code, 459);
  assert.is((await a('', { janus: 'set_session_timeout', timeout: 120 }))['timeout'], 120);
  assert.is(t.gw.registry.sessionTimeout, 120);
  assert.is((await a('', { janus: 'set_session_timeout', timeout: -5 }))['error'].code, 467);
  assert.is((await a('', { janus: 'set_session_timeout' }))['error'].code, 456);
  assert.is((await a(`/${sid}`, { janus: 'set_session_timeout', timeout: -1 }))['timeout'], -1);
  assert.is((await a('', { janus: 'set_log_level', level: 9 }))['error'].code, 467);
  assert.is((await a('', { janus: 'set_log_level', level: 3 }))['level'], 3);
  assert.is(t.gw.logger.level, 'warn');
  assert.is((await a('', { janus: 'get_status' }))['status'].log_level, 3);
  await a('', { janus: 'set_log_level', level: 0 });
  assert.is((await a('', { janus: 'accept_new_sessions', accept: 'no' }))['error'].code, 467);
  assert.is((await a('', { janus: 'accept_new_sessions', accept: false }))['accept'], false);
  assert.is((await t.http.post('', { janus: 'create' }))['error'].code, 472);
  await a('', { janus: 'accept_new_sessions', accept: true });
  const mp = await a('', { janus: 'message_plugin', plugin: TEST_PLUGIN, request: { hello: 1 } });
  assert.equal(mp['response'], { scripted: 'admin', got: { hello: 1 } });
  assert.is((await a('', { janus: 'message_plugin', plugin: TEST_PLUGIN, request: { fail: true } }))['error'].code, 462);
  assert.is((await a('', { janus: 'message_plugin', plugin: 'janus.plugin.echotest', request: {} }))['error'].code, 462);
  assert.is((await a('', { janus: 'message_plugin', plugin: 'nope', request: {} }))['error'].code, 460);
  assert.is((await a('', { janus: 'message_plugin', plugin: TEST_PLUGIN }))['error'].code, 456);
  assert.is((await a('', { janus: 'add_token', token: 'x' }))['error'].code, 490, 'token auth is off');
  const ws = await JanusWs.connect(t.adminWsUrl, 'janus-admin-protocol');
  const ferry = await ws.request({ janus: 'ferry_status', admin_secret: ADMIN });
  assert.equal(ferry['status'], { sessions: 1, handles: 0, peer_connections: 0, native_endpoints: null, port_leases: null, port_pools: [], engine: null, media_threads: [], long_poll_waiters: 0, queued_events: 1,
    quotas: { clients: 1, sessions: 1, peer_connections: 0, rooms: 0, rate_buckets: 0 } });
  const destroyed = await ws.request({ janus: 'destroy_session', session_id: sid, admin_secret: ADMIN });
  assert.is(destroyed['janus'], 'success');
  assert.is((await ws.request({ janus: 'list_handles', session_id: sid, admin_secret: ADMIN }))['error'].code, 458);
  assert.is((await ws.request({ janus: 'ferry_status', admin_secret: ADMIN }))['status'].sessions, 0);
  await ws.close();
});

admin('resource counts come from the providers the media side wires in', async ({ t }) => {
  let endpoints = 3;
  t.gw.setResourceCounts({ nativeEndpoints: () => endpoints, portLeases: () => 2 * endpoints });
  const s = await t.admin.post('', { janus: 'ferry_status', admin_secret: ADMIN });
  assert.is(s['status'].native_endpoints, 3);
  assert.is(s['status'].port_leases, 6);
  endpoints = 0;
  const m = await (await fetch(`${t.adminBase}/metrics`)).text();
  assert.match(m, /ferry_native_endpoints 0/);
  assert.match(m, /ferry_port_leases 0/);
});

admin.run();
