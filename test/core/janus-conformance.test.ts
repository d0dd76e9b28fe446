/**
 * Answers that must be Janus's exactly (janus.c janus_process_incoming_request,
 * transports/janus_websockets.c), over HTTP and WebSocket:
 * - no session id: only `info`, `ping`, `create`; any other verb, known or
 *   unknown, is 457 "Unhandled request 'x' at this path";
 * - with a session (and handle) id: a verb janus.c does not handle there is
 *   453 "Unknown request 'x'" (`create`, `info` and `ping` included); a
 *   session verb with a handle id or a handle verb without one is 457;
 *   `keepalive` and `claim` work at both levels;
 * - `trickle`: both `candidate` and `candidates` 454, neither 456, a
 *   `candidates` that is not an array 467 (a key present with null counts);
 * - Admin API (janus_process_incoming_admin_request): every verb a level does
 *   not handle is 457, unknown verbs included;
 * - WebSocket binary frames are parsed like text frames (Janus never looks at
 *   the opcode); one that is not UTF-8 text gets the parse error 454.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { JanusWs, startGateway, tx, type Json, type TestGateway } from '../helpers/http.js';

const test = suite<{ t: TestGateway }>('janus conformance');

test.before.each(async (ctx) => {
  ctx.t = await startGateway();
});
test.after.each(async ({ t }) => {
  await t.stop();
});

function errorOf(reply: Json): { code: number; reason: string } {
  assert.is(reply['janus'], 'error', JSON.stringify(reply));
  return reply['error'] as { code: number; reason: string };
}

/** One request at a path level, over HTTP (ids in the path) or WebSocket (ids in the body). */
type Send = (request: Record<string, unknown>, level: { sid?: number; hid?: number }) => Promise<Json>;

function httpSend(t: TestGateway): Send {
  return (request, { sid, hid }) => {
    const path = sid === undefined ? '' : hid === undefined ? `/${sid}` : `/${sid}/${hid}`;
    return t.http.post(path, request);
  };
}

function wsSend(ws: JanusWs): Send {
  return (request, { sid, hid }) => ws.request({ ...request, ...(sid !== undefined ? { session_id: sid } : {}), ...(hid !== undefined ? { handle_id: hid } : {}) });
}

async function checkPaths(send: Send, sid: number, hid: number): Promise<void> {
  // Root: everything but info/ping/create is "at this path", unknown verbs too.
  for (const verb of ['frobnicate', 'keepalive', 'attach', 'destroy', 'claim', 'message', 'trickle', 'detach', 'hangup']) {
    const e = errorOf(await send({ janus: verb }, {}));
    assert.is(e.code, 457, `${verb} at the root`);
    assert.is(e.reason, `Unhandled request '${verb}' at this path`);
  }
  // Session level.
  for (const verb of ['create', 'info', 'ping', 'frobnicate']) {
    const e = errorOf(await send({ janus: verb }, { sid }));
    assert.is(e.code, 453, `${verb} at a session path`);
    assert.is(e.reason, `Unknown request '${verb}'`);
  }
  for (const verb of ['message', 'trickle', 'detach', 'hangup']) {
    assert.is(errorOf(await send({ janus: verb }, { sid })).code, 457, `${verb} at a session path`);
  }
  assert.is((await send({ janus: 'keepalive' }, { sid }))['janus'], 'ack');
  // Handle level.
  for (const verb of ['create', 'info', 'ping', 'frobnicate']) {
    assert.is(errorOf(await send({ janus: verb }, { sid, hid })).code, 453, `${verb} at a handle path`);
  }
  for (const verb of ['attach', 'destroy']) {
    assert.is(errorOf(await send({ janus: verb, plugin: 'janus.plugin.echotest' }, { sid, hid })).code, 457, `${verb} at a handle path`);
  }
  const ack = await send({ janus: 'keepalive', transaction: 'k1' }, { sid, hid });
  assert.equal(ack, { janus: 'ack', session_id: sid, transaction: 'k1' }, 'keepalive at a handle path is a keepalive (no path check in janus.c)');
  // Unknown ids still come first (458/459 before the verb).
  assert.is(errorOf(await send({ janus: 'frobnicate' }, { sid: sid + 1 })).code, 458);
  assert.is(errorOf(await send({ janus: 'frobnicate' }, { sid, hid: hid + 1 })).code, 459);
}

async function checkTrickle(send: Send, sid: number, hid: number): Promise<void> {
  const at = { sid, hid };
  for (const candidates of ['x', 5, true, {}, null]) {
    const e = errorOf(await send({ janus: 'trickle', candidates }, at));
    assert.is(e.code, 467, `candidates ${JSON.stringify(candidates)}`);
  }
  assert.is(errorOf(await send({ janus: 'trickle', candidate: { completed: true }, candidates: 'x' }, at)).code, 454, 'both given: 454 before the type check');
  assert.is(errorOf(await send({ janus: 'trickle', candidate: null, candidates: [] }, at)).code, 454, 'a null candidate is still given');
  assert.is(errorOf(await send({ janus: 'trickle' }, at)).code, 456);
  assert.is((await send({ janus: 'trickle', candidates: [{ completed: true }] }, at))['janus'], 'ack');
}

test('HTTP: path levels and unknown verbs answer 457 / 453 as janus.c does', async ({ t }) => {
  const sid = await t.http.createSession();
  const hid = await t.http.attach(sid);
  await checkPaths(httpSend(t), sid, hid);
  assert.is((await t.http.post(`/${sid}/${hid}`, { janus: 'claim' }))['janus'], 'success', 'claim at a handle path claims the session');
});

test('order of checks as in janus.c: id type (467) before the path, not accepting (472) before the secret (403)', async () => {
  const t = await startGateway({ auth: { api_secret: 's3cret' } });
  try {
    assert.is(errorOf(await t.http.post('', { janus: 'info', id: 'x' })).code, 467, 'id is an envelope field');
    assert.is(errorOf(await t.http.post('', { janus: 'frobnicate', id: -1 })).code, 467);
    assert.is(errorOf(await t.http.post('', { janus: 'create' })).code, 403);
    t.gw.registry.acceptingNewSessions = false;
    assert.is(errorOf(await t.http.post('', { janus: 'create' })).code, 472, 'not accepting comes before the secret check');
    assert.is(errorOf(await t.http.post('', { janus: 'frobnicate' })).code, 457, 'the verb comes before both');
    assert.is(errorOf(await t.http.post('', { janus: 'create', id: 'x' })).code, 467);
  } finally {
    await t.stop();
  }
});

test('HTTP: trickle 467 for a candidates that is not an array, 454 both, 456 neither', async ({ t }) => {
  const sid = await t.http.createSession();
  const hid = await t.http.attach(sid);
  await checkTrickle(httpSend(t), sid, hid);
});

test('WebSocket: the same codes with ids in the body', async ({ t }) => {
  const ws = await JanusWs.connect(t.wsUrl);
  try {
    const created = await ws.request({ janus: 'create' });
    const sid = created['data'].id as number;
    const attached = await ws.request({ janus: 'attach', session_id: sid, plugin: 'janus.plugin.echotest' });
    const hid = attached['data'].id as number;
    await checkPaths(wsSend(ws), sid, hid);
    await checkTrickle(wsSend(ws), sid, hid);
    assert.is((await ws.request({ janus: 'claim', session_id: sid, handle_id: hid }))['janus'], 'success');
  } finally {
    await ws.close();
  }
});

test('Admin API: every verb not handled at a level is 457, unknown verbs included (no 453), over HTTP and WebSocket', async ({ t }) => {
  const secret = t.config.auth.admin_secret;
  const sid = await t.http.createSession();
  const hid = await t.http.attach(sid);
  const cases: Array<[string, number | undefined, number | undefined]> = [
    ['frobnicate', undefined, undefined], ['list_handles', undefined, undefined], ['handle_info', undefined, undefined],
    ['frobnicate', sid, undefined], ['list_sessions', sid, undefined], ['handle_info', sid, undefined],
    ['frobnicate', sid, hid], ['list_handles', sid, hid], ['get_status', sid, hid],
  ];
  const ws = await JanusWs.connect(t.adminWsUrl, 'janus-admin-protocol');
  try {
    for (const [verb, s, h] of cases) {
      const path = s === undefined ? '' : h === undefined ? `/${s}` : `/${s}/${h}`;
      const overHttp = errorOf(await t.admin.post(path, { janus: verb, admin_secret: secret }));
      assert.is(overHttp.code, 457, `${verb} at ${path || '/'}`);
      assert.is(overHttp.reason, `Unhandled request '${verb}' at this path`);
      const ids = { ...(s !== undefined ? { session_id: s } : {}), ...(h !== undefined ? { handle_id: h } : {}) };
      assert.is(errorOf(await ws.request({ janus: verb, admin_secret: secret, ...ids })).code, 457, `${verb} over WebSocket`);
    }
  } finally {
    await ws.close();
  }
});

test('WebSocket: a binary frame is parsed like a text frame (janus_websockets.c ignores the opcode)', async ({ t }) => {
  const ws = await JanusWs.connect(t.wsUrl);
  try {
    const bin = (request: Record<string, unknown>) => ws.sendRaw(Buffer.from(JSON.stringify(request), 'utf8'));
    assert.equal(await bin({ janus: 'ping', transaction: 'b1' }), { janus: 'pong', transaction: 'b1' });
    const created = await bin({ janus: 'create', transaction: 'b2' });
    assert.is(created['janus'], 'success');
    const sid = created['data'].id as number;
    assert.is(t.gw.registry.get(sid)?.live, true, 'a session created by a binary frame is a session like any other');
    // Binary and text frames agree on errors too.
    const binErr = await bin({ janus: 'frobnicate', transaction: 'b3', session_id: sid });
    const textErr = await ws.request({ janus: 'frobnicate', transaction: 'b4', session_id: sid });
    assert.is(errorOf(binErr).code, 453);
    assert.is(errorOf(textErr).code, 453);
  } finally {
    await ws.close();
  }
});

test('WebSocket: a binary frame that is not UTF-8 text gets 454 and the socket stays usable', async ({ t }) => {
  const ws = await JanusWs.connect(t.wsUrl);
  try {
    // Valid JSON around an invalid UTF-8 byte: lossy decoding would have run it as a ping.
    const invalid = Buffer.concat([Buffer.from('{"janus":"ping","transaction":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
    const e = await ws.sendRaw(invalid);
    assert.is(errorOf(e).code, 454);
    assert.is(e['transaction'], undefined, 'nothing was parsed, so no transaction is echoed');
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"janus":"ping","transaction":"bom"}')]);
    assert.is(errorOf(await ws.sendRaw(bom)).code, 454, 'a byte-order mark is not JSON (jansson refuses it too)');
    assert.is(errorOf(await ws.sendRaw(Buffer.from([0x00, 0x01, 0x02, 0x03]))).code, 454);
    assert.is((await ws.request({ janus: 'ping', transaction: tx() }))['janus'], 'pong');
    assert.is(ws.closed, false);
  } finally {
    await ws.close();
  }
});

test.run();
