/** Room management over the real Janus API: every request, its errors, sync replies, persistence, notifications. */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { JanusWs } from '../helpers/http.js';
import { VR, VrClient, publisher, startBench, type Bench } from './client.js';

const test = suite<{ b: Bench; c: VrClient; dir: string }>('videoroom rooms');

test.before.each(async (ctx) => {
  ctx.dir = mkdtempSync(join(tmpdir(), 'ferry-vr-'));
  ctx.b = await startBench({ roomsFile: join(ctx.dir, 'rooms.json'), adminKey: 'supersecret' });
  ctx.c = await VrClient.open(ctx.b);
});
test.after.each(async ({ b, c, dir }) => {
  await c.ws.close();
  await b.stop();
  rmSync(dir, { recursive: true, force: true });
});

const err = (data: Record<string, any>): number => {
  assert.is(data['videoroom'], 'event', JSON.stringify(data));
  assert.type(data['error'], 'string');
  return data['error_code'];
};

test('synchronous requests are answered with success + plugindata, not ack', async ({ c }) => {
  const reply = await c.raw({ request: 'exists', room: 1 });
  assert.is(reply['janus'], 'success');
  assert.equal(reply['plugindata'], { plugin: VR, data: { videoroom: 'success', room: 1, exists: false } });
  const unknown = await c.raw({ request: 'frobnicate' });
  assert.is(unknown['janus'], 'success');
  assert.is(unknown['plugindata'].data.error_code, 423);
  assert.is(err((await c.raw({ nothing: true }))['plugindata'].data), 429);
  assert.is(err((await c.raw({ request: 7 }))['plugindata'].data), 430);
});

test('create: admin_key, ids, defaults, codec lists, 427/429/430/433', async ({ c }) => {
  assert.is(err(await c.sync({ request: 'create', room: 10 })), 429, 'admin_key required');
  assert.is(err(await c.sync({ request: 'create', room: 10, admin_key: 'wrong' })), 433);
  assert.is(err(await c.sync({ request: 'create', room: 10, admin_key: 7 })), 430);
  assert.equal(await c.sync({ request: 'create', room: 10, admin_key: 'supersecret' }), { videoroom: 'created', room: 10, permanent: false });
  assert.is(err(await c.sync({ request: 'create', room: 10, admin_key: 'supersecret' })), 427);
  const random = await c.sync({ request: 'create', admin_key: 'supersecret' });
  assert.ok(Number.isSafeInteger(random['room']) && random['room'] > 0);
  assert.is(err(await c.sync({ request: 'create', admin_key: 'supersecret', audiocodec: 'opus,vp8' })), 430);
  assert.is(err(await c.sync({ request: 'create', admin_key: 'supersecret', publishers: 0 })), 430);
  assert.is(err(await c.sync({ request: 'create', admin_key: 'supersecret', bitrate: 'fast' })), 430);
  await c.sync({ request: 'create', room: 11, admin_key: 'supersecret', audiocodec: 'g722, opus', videocodec: 'h264,vp8', publishers: 6, description: 'eleven', bitrate: 256000, fir_freq: 10 });
  const list = await c.sync({ request: 'list' });
  const eleven = list['list'].find((r: any) => r.room === 11);
  assert.equal(eleven, {
    room: 11, description: 'eleven', pin_required: false, is_private: false, max_publishers: 6, bitrate: 256000, fir_freq: 10,
    require_pvtid: false, require_e2ee: false, dummy_publisher: false, notify_joining: false, audiocodec: 'g722,opus', videocodec: 'h264,vp8',
    opus_fec: true, opus_dtx: false, record: false, lock_record: false, num_participants: 0, audiolevel_ext: true, audiolevel_event: false,
    videoorient_ext: true, playoutdelay_ext: true, transport_wide_cc_ext: true,
  });
  const ten = list['list'].find((r: any) => r.room === 10);
  assert.is(ten.description, 'Room 10');
  assert.is(ten.audiocodec, 'opus');
  assert.is(ten.videocodec, 'vp8');
  assert.is(ten.max_publishers, 3);
});

test('edit, exists, destroy with secrets; private rooms hidden from list without admin_key', async ({ c }) => {
  await c.sync({ request: 'create', room: 20, admin_key: 'supersecret', secret: 's3', is_private: true });
  assert.is(err(await c.sync({ request: 'edit', room: 20, new_description: 'x' })), 429);
  assert.is(err(await c.sync({ request: 'edit', room: 20, secret: 'no', new_description: 'x' })), 433);
  assert.is(err(await c.sync({ request: 'edit', room: 21, secret: 's3' })), 426);
  assert.equal(await c.sync({ request: 'edit', room: 20, secret: 's3', new_description: 'renamed', new_publishers: 9, new_secret: 's4', new_pin: '1234' }), { videoroom: 'edited', room: 20 });
  assert.not.ok((await c.sync({ request: 'list' }))['list'].some((r: any) => r.room === 20));
  const all = await c.sync({ request: 'list', admin_key: 'supersecret' });
  const r20 = all['list'].find((r: any) => r.room === 20);
  assert.is(r20.description, 'renamed');
  assert.is(r20.max_publishers, 9);
  assert.is(r20.pin_required, true);
  assert.is(err(await c.sync({ request: 'destroy', room: 20, secret: 's3' })), 433, 'old secret no longer valid');
  assert.equal(await c.sync({ request: 'exists', room: 20 }), { videoroom: 'success', room: 20, exists: true });
  assert.equal(await c.sync({ request: 'destroy', room: 20, secret: 's4' }), { videoroom: 'destroyed', room: 20 });
  assert.equal(await c.sync({ request: 'exists', room: 20 }), { videoroom: 'success', room: 20, exists: false });
  assert.is(err(await c.sync({ request: 'destroy', room: 20 })), 426);
  assert.is(err(await c.sync({ request: 'exists' })), 429);
  assert.is(err(await c.sync({ request: 'exists', room: 'x' })), 430);
});

test('permanent rooms survive a plugin restart; the file is replaced atomically', async ({ b, c, dir }) => {
  const file = join(dir, 'rooms.json');
  await c.sync({ request: 'create', room: 30, admin_key: 'supersecret', permanent: true, description: 'kept', secret: 'k', videocodec: 'vp9' });
  await c.sync({ request: 'create', room: 31, admin_key: 'supersecret', permanent: false, description: 'lost' });
  await c.sync({ request: 'create', room: 32, admin_key: 'supersecret', permanent: true, description: 'doomed', secret: 'd' });
  await c.sync({ request: 'edit', room: 30, secret: 'k', new_description: 'kept+edited', permanent: true });
  await c.sync({ request: 'edit', room: 30, secret: 'k', new_publishers: 12 }); // not permanent: not saved
  await c.sync({ request: 'destroy', room: 32, secret: 'd', permanent: true });
  assert.equal(readdirSync(dir), ['rooms.json'], 'no temporary file left behind');
  const stored = JSON.parse(readFileSync(file, 'utf8'));
  assert.equal(stored.rooms.map((r: any) => r.room), [30]);
  await c.ws.close();
  await b.stop();
  // A new gateway and plugin instance on the same file.
  const b2 = await startBench({ roomsFile: file, adminKey: 'supersecret' });
  const c2 = await VrClient.open(b2);
  try {
    const list = (await c2.sync({ request: 'list' }))['list'];
    assert.equal(list.map((r: any) => r.room), [30]);
    assert.is(list[0].description, 'kept+edited');
    assert.is(list[0].max_publishers, 3);
    assert.is(list[0].videocodec, 'vp9');
    assert.is(err(await c2.sync({ request: 'destroy', room: 30 })), 429, 'secret restored too');
  } finally {
    await c2.ws.close();
    await b2.stop();
  }
  // The after-each hook stops these again: make that harmless.
  Object.assign(c, { ws: { close: async () => undefined } });
});

test('permanent without a rooms file is 499', async () => {
  const b = await startBench();
  const c = await VrClient.open(b);
  try {
    assert.is(err(await c.sync({ request: 'create', room: 5, permanent: true })), 499);
    assert.is((await c.sync({ request: 'create', room: 5 }))['videoroom'], 'created', 'no admin_key configured: none needed');
  } finally {
    await c.ws.close();
    await b.stop();
  }
});

test('allowed: enable/add/remove/disable and join with tokens (433)', async ({ b, c }) => {
  await c.sync({ request: 'create', room: 40, admin_key: 'supersecret', allowed: ['tok-a'] });
  assert.equal(await c.sync({ request: 'allowed', room: 40, action: 'add', allowed: ['tok-b'] }), { videoroom: 'success', room: 40, allowed: ['tok-a', 'tok-b'] });
  assert.equal(await c.sync({ request: 'allowed', room: 40, action: 'remove', allowed: ['tok-a'] }), { videoroom: 'success', room: 40, allowed: ['tok-b'] });
  assert.is(err(await c.sync({ request: 'allowed', room: 40, action: 'add' })), 429);
  assert.is(err(await c.sync({ request: 'allowed', room: 40, action: 'juggle' })), 430);
  const p = await VrClient.open(b);
  assert.is(err((await p.call({ request: 'join', ptype: 'publisher', room: 40, token: 'tok-a' })).data), 433);
  assert.is(err((await p.call({ request: 'join', ptype: 'publisher', room: 40 })).data), 433);
  assert.is((await p.call({ request: 'join', ptype: 'publisher', room: 40, token: 'tok-b' })).data['videoroom'], 'joined');
  assert.equal(await c.sync({ request: 'allowed', room: 40, action: 'disable' }), { videoroom: 'success', room: 40 });
  const q = await VrClient.open(b);
  assert.is((await q.call({ request: 'join', ptype: 'publisher', room: 40 })).data['videoroom'], 'joined');
  await p.ws.close();
  await q.ws.close();
});

test('pin protects join (429 missing, 433 wrong)', async ({ b, c }) => {
  await c.sync({ request: 'create', room: 41, admin_key: 'supersecret', pin: 'p1n' });
  const p = await VrClient.open(b);
  assert.is(err((await p.call({ request: 'join', ptype: 'publisher', room: 41 })).data), 429);
  assert.is(err((await p.call({ request: 'join', ptype: 'publisher', room: 41, pin: 'nope' })).data), 433);
  assert.is((await p.call({ request: 'join', ptype: 'publisher', room: 41, pin: 'p1n' })).data['videoroom'], 'joined');
  await p.ws.close();
});

test('listparticipants, kick (kicked/leaving events), moderate', async ({ b, c }) => {
  await c.sync({ request: 'create', room: 50, admin_key: 'supersecret', secret: 'mod' });
  const alice = await publisher(b, 50, { display: 'alice' });
  const bob = await publisher(b, 50, { display: 'bob' });
  const carol = await VrClient.open(b);
  const carolJoin = await carol.call({ request: 'join', ptype: 'publisher', room: 50, display: 'carol', metadata: { role: 'viewer' } });
  const carolId = carolJoin.data['id'];
  assert.equal(carolJoin.data['publishers'].map((p: any) => p.display).sort(), ['alice', 'bob']);
  const parts = await c.sync({ request: 'listparticipants', room: 50 });
  assert.is(parts['videoroom'], 'participants');
  assert.is(parts['room'], 50);
  const byName = Object.fromEntries(parts['participants'].map((p: any) => [p.display, p]));
  assert.equal(byName['alice'], { id: alice.id, display: 'alice', publisher: true });
  assert.equal(byName['carol'], { id: carolId, display: 'carol', metadata: { role: 'viewer' }, publisher: false });
  assert.is(err(await c.sync({ request: 'listparticipants', room: 51 })), 426);

  // moderate: bob's video muted → others see it in a publishers event
  assert.is(err(await c.sync({ request: 'moderate', room: 50, secret: 'mod', id: bob.id, mid: '9', mute: true })), 428);
  assert.is(err(await c.sync({ request: 'moderate', room: 50, secret: 'mod', id: bob.id, mid: '1' })), 429);
  assert.equal(await c.sync({ request: 'moderate', room: 50, secret: 'mod', id: bob.id, mid: '1', mute: true }), { videoroom: 'success' });
  const moderated = await alice.c.event((d) => Array.isArray(d['publishers']) && d['publishers'][0]?.id === bob.id && d['publishers'][0].streams[1]?.moderated === true);
  assert.is(moderated.data['room'], 50);

  // kick bob
  assert.is(err(await c.sync({ request: 'kick', room: 50, id: bob.id })), 429);
  assert.is(err(await c.sync({ request: 'kick', room: 50, secret: 'mod', id: 999 })), 428);
  assert.equal(await c.sync({ request: 'kick', room: 50, secret: 'mod', id: bob.id }), { videoroom: 'success' });
  const toBob = await bob.c.event((d) => d['leaving'] === 'ok');
  assert.equal(toBob.data, { videoroom: 'event', room: 50, leaving: 'ok', reason: 'kicked' });
  const unpub = await alice.c.event((d) => d['unpublished'] === bob.id);
  assert.equal(unpub.data, { videoroom: 'event', room: 50, unpublished: bob.id, display: 'bob' });
  const kicked = await alice.c.event((d) => d['kicked'] === bob.id);
  assert.equal(kicked.data, { videoroom: 'event', room: 50, kicked: bob.id, display: 'bob' });
  await bob.c.ws.nextEvent((e) => e['janus'] === 'hangup' && e['sender'] === bob.c.handleId);
  assert.equal((await c.sync({ request: 'listparticipants', room: 50 }))['participants'].length, 2);
  // bob's handle is back to unconfigured
  assert.is(err((await bob.c.call({ request: 'configure', bitrate: 1 })).data), 424);
  for (const x of [alice.c, bob.c, carol]) await x.ws.close();
});

test('destroy notifies participants and subscribers, closes their PeerConnections', async ({ b, c }) => {
  await c.sync({ request: 'create', room: 60, admin_key: 'supersecret' });
  const alice = await publisher(b, 60, { display: 'alice' });
  const { subscriber } = await import('./client.js');
  const s = await subscriber(b, 60, [{ feed: alice.id }]);
  await c.sync({ request: 'destroy', room: 60 });
  assert.equal((await alice.c.event((d) => d['videoroom'] === 'destroyed')).data, { videoroom: 'destroyed', room: 60 });
  assert.equal((await s.c.event((d) => d['videoroom'] === 'destroyed')).data, { videoroom: 'destroyed', room: 60 });
  await alice.c.ws.nextEvent((e) => e['janus'] === 'hangup' && e['sender'] === alice.c.handleId);
  await s.c.ws.nextEvent((e) => e['janus'] === 'hangup' && e['sender'] === s.c.handleId);
  assert.is(b.media.provider.openCount, 0);
  assert.is(b.media.engine.outputs.size, 0);
  assert.is(b.plugin.stats().participants, 0);
  await alice.c.ws.close();
  await s.c.ws.close();
});

test('Admin API message_plugin runs synchronous requests', async ({ b }) => {
  const r = await b.t.admin.post('', { janus: 'message_plugin', admin_secret: b.t.config.auth.admin_secret, plugin: VR, request: { request: 'create', room: 70, admin_key: 'supersecret' } });
  assert.is(r['janus'], 'success');
  assert.equal(r['response'], { videoroom: 'created', room: 70, permanent: false });
  const e = await b.t.admin.post('', { janus: 'message_plugin', admin_secret: b.t.config.auth.admin_secret, plugin: VR, request: { request: 'exists', room: 70 } });
  assert.equal(e['response'], { videoroom: 'success', room: 70, exists: true });
});

test('async requests before join are 424; joining twice is 425; unknown ptype 430; no room 426', async ({ b, c }) => {
  await c.sync({ request: 'create', room: 80, admin_key: 'supersecret' });
  const h = await VrClient.open(b);
  const ack = await h.ws.request({ janus: 'message', session_id: h.sessionId, handle_id: h.handleId, body: { request: 'publish' }, transaction: 'p-1' });
  assert.equal(ack, { janus: 'ack', session_id: h.sessionId, transaction: 'p-1' });
  assert.is(err((await h.call({ request: 'configure' })).data), 424);
  assert.is(err((await h.call({ request: 'start' })).data), 424);
  assert.is(err((await h.call({ request: 'join', ptype: 'watcher', room: 80 })).data), 430);
  assert.is(err((await h.call({ request: 'join', ptype: 'publisher', room: 81 })).data), 426);
  assert.is(err((await h.call({ request: 'join', room: 80 })).data), 429);
  await h.call({ request: 'join', ptype: 'publisher', room: 80, id: 555 });
  assert.is(err((await h.call({ request: 'join', ptype: 'publisher', room: 80 })).data), 425);
  const h2 = await VrClient.open(b);
  assert.is(err((await h2.call({ request: 'join', ptype: 'publisher', room: 80, id: 555 })).data), 436);
  await h.ws.close();
  await h2.ws.close();
});

test('without a media engine recording is refused, not silently skipped: create, enable_recording, configure record:true get 499', async ({ b, c }) => {
  assert.is(err(await c.sync({ request: 'create', room: 31, admin_key: 'supersecret', record: true })), 499);
  assert.is((await c.sync({ request: 'exists', room: 31 }))['exists'], false);
  assert.is((await c.sync({ request: 'create', room: 32, admin_key: 'supersecret', record: false }))['videoroom'], 'created');
  const refused = await c.sync({ request: 'enable_recording', room: 32, record: true });
  assert.is(err(refused), 499);
  assert.match(refused['error'], /not available/);
  assert.equal(await c.sync({ request: 'enable_recording', room: 32, record: false }), { videoroom: 'success', record: false, recordings: [] });
  const p = await VrClient.open(b);
  await p.call({ request: 'join', ptype: 'publisher', room: 32 });
  assert.is(err((await p.call({ request: 'configure', record: true })).data), 499);
  assert.is((await p.call({ request: 'configure', record: false })).data['configured'], 'ok');
});

test('lock_record: a publisher starts or stops its own recording only with the room secret', async ({ b, c }) => {
  await c.sync({ request: 'create', room: 33, admin_key: 'supersecret', secret: 'roomsecret', lock_record: true });
  const p = await VrClient.open(b);
  await p.call({ request: 'join', ptype: 'publisher', room: 33 });
  assert.is(err((await p.call({ request: 'configure', record: false })).data), 429);
  assert.is(err((await p.call({ request: 'configure', record: false, secret: 'wrong' })).data), 433);
  assert.is((await p.call({ request: 'configure', record: false, secret: 'roomsecret' })).data['configured'], 'ok');
  assert.is((await p.call({ request: 'configure', bitrate: 1000 })).data['configured'], 'ok', 'other settings need no secret');
});

void JanusWs;
test.run();
