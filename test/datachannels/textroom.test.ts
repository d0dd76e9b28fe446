// janus.plugin.textroom end to end: werift clients set up their data channel
// with setup/ack, then join, talk in public and in whispers, hear
// announcements, leave and get kicked, all over the data channel in Janus's
// shapes; room management over the Janus API and Admin; permanent rooms kept
// in a file; a client that hangs up leaves its rooms.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RTCDataChannel } from 'werift';

import { TextRoomPlugin } from '../../src/plugins/textroom/TextRoomPlugin.js';
import { startFerry, waitUntilIdle, type TestFerry } from '../helpers/ferry.js';
import type { Json } from '../helpers/http.js';
import { closePeer } from '../helpers/werift.js';
import { answerAndConnect, attach, channelOpen, until, type DataPeer } from './helpers.js';

let f: TestFerry;
const dir = mkdtempSync(join(tmpdir(), 'ferry-textroom-'));

test.before(async () => {
  f = await startFerry({ textroom: { rooms_file: join(dir, 'rooms.json') } });
});

test.after(async () => {
  await f.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Chatter {
  peer: DataPeer;
  dc: RTCDataChannel;
  /** Everything that came over the data channel, parsed. */
  heard: Json[];
  /** A Text Room request over the data channel; resolves with the reply carrying its transaction. */
  ask(body: Record<string, unknown>): Promise<Json>;
  /** The next unsolicited event matching (bounded wait). */
  hear(match: (e: Json) => boolean): Promise<Json>;
}

let counter = 0;

async function chatter(): Promise<Chatter> {
  const peer = await attach(f, 'janus.plugin.textroom');
  const setup = await peer.message({ request: 'setup' });
  assert.is(setup['janus'], 'ack');
  const offer = await peer.ws.nextEvent((e) => e['janus'] === 'event' && e['jsep'] !== undefined, 10_000);
  assert.equal(offer['plugindata'].data, { textroom: 'event', result: 'ok' });
  assert.match(offer['jsep'].sdp, /m=application \d+ UDP\/DTLS\/SCTP webrtc-datachannel/);
  // janus.js opens its default channel when it answers with data: the same here.
  const dc = peer.pc.createDataChannel('JanusDataChannel');
  const heard: Json[] = [];
  dc.onMessage.subscribe((m) => heard.push(JSON.parse(String(m)) as Json));
  await answerAndConnect(peer, offer, { request: 'ack' });
  await peer.ws.nextEvent((e) => e['janus'] === 'event' && e['plugindata']?.data?.result === 'ok', 5000);
  await channelOpen(dc);
  const take = async (match: (e: Json) => boolean): Promise<Json> => {
    await until(() => heard.some(match), 5000, () => `nothing matching in ${JSON.stringify(heard).slice(0, 300)}`);
    return heard.splice(heard.findIndex(match), 1)[0]!;
  };
  return {
    peer,
    dc,
    heard,
    async ask(body) {
      const transaction = `t${++counter}`;
      dc.send(JSON.stringify({ ...body, transaction }));
      return take((e) => e['transaction'] === transaction);
    },
    hear: (match) => take((e) => e['transaction'] === undefined && match(e)),
  };
}

async function api(c: Chatter, body: Record<string, unknown>): Promise<Json> {
  const reply = await c.peer.message(body);
  assert.is(reply['janus'], 'success', JSON.stringify(reply));
  return reply['plugindata'].data as Json;
}

const cleanup: Chatter[] = [];

test('join, message to all, whisper, announcement, leave — with Janus\'s events', async () => {
  const alice = await chatter();
  const bob = await chatter();
  cleanup.push(alice, bob);
  const room = 1234;
  assert.equal(await alice.ask({ textroom: 'join', room, username: 'alice', display: 'Alice' }), { textroom: 'success', participants: [], transaction: 't1' });
  assert.equal(await alice.hear((e) => e['textroom'] === 'join'), { textroom: 'join', room, username: 'alice', display: 'Alice' });
  const bobJoined = await bob.ask({ textroom: 'join', room, username: 'bob' });
  assert.equal(bobJoined['participants'], [{ username: 'alice', display: 'Alice' }]);
  assert.equal(await alice.hear((e) => e['textroom'] === 'join'), { textroom: 'join', room, username: 'bob' });
  await bob.hear((e) => e['textroom'] === 'join' && e['username'] === 'bob');

  // Public: everyone hears it, the sender too; the sender gets a success (ack defaults to true).
  assert.equal(await alice.ask({ textroom: 'message', room, text: 'hello room' }), { textroom: 'success', transaction: `t${counter}` });
  for (const who of [alice, bob]) {
    const m = await who.hear((e) => e['textroom'] === 'message');
    assert.is(m['from'], 'alice');
    assert.is(m['text'], 'hello room');
    assert.is(m['whisper'], undefined);
    assert.match(String(m['date']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}$/);
  }
  // A whisper to one, then to several (one of whom is not there).
  const sent = await alice.ask({ textroom: 'message', room, to: 'bob', text: 'psst' });
  assert.equal(sent['sent'], { bob: true });
  const whisper = await bob.hear((e) => e['textroom'] === 'message');
  assert.is(whisper['whisper'], true);
  assert.is(whisper['text'], 'psst');
  const several = await alice.ask({ textroom: 'message', room, tos: ['bob', 'carol'], text: 'psst again' });
  assert.equal(several['sent'], { bob: true, carol: false });
  await bob.hear((e) => e['text'] === 'psst again');
  await new Promise((r) => setTimeout(r, 100));
  assert.not.ok(alice.heard.some((e) => e['textroom'] === 'message'), 'whispers do not come back to the sender');
  // ack: false spares the reply.
  bob.dc.send(JSON.stringify({ textroom: 'message', transaction: 'quiet', room, text: 'no ack', ack: false }));
  await alice.hear((e) => e['text'] === 'no ack');
  await bob.hear((e) => e['text'] === 'no ack');
  assert.not.ok(bob.heard.some((e) => e['transaction'] === 'quiet'));

  // Announcements come from the room (Janus API, with the room's secret).
  assert.equal(await api(alice, { request: 'announcement', room, secret: 'adminpwd', text: 'from the room' }), { textroom: 'success' });
  for (const who of [alice, bob]) {
    const a = await who.hear((e) => e['textroom'] === 'announcement');
    assert.is(a['text'], 'from the room');
    assert.is(a['from'], undefined);
  }
  // The Janus API's message: as over the data channel, from this handle's participant.
  assert.is((await api(bob, { request: 'message', room, text: 'over the API' }))['textroom'], 'success');
  await alice.hear((e) => e['text'] === 'over the API' && e['from'] === 'bob');
  await bob.hear((e) => e['text'] === 'over the API');

  assert.equal(await api(alice, { request: 'listparticipants', room }), { textroom: 'success', room, participants: [{ username: 'alice', display: 'Alice' }, { username: 'bob' }] });
  // Leave: the leaver and the others hear it.
  assert.is((await bob.ask({ textroom: 'leave', room }))['textroom'], 'success');
  assert.equal(await alice.hear((e) => e['textroom'] === 'leave'), { textroom: 'leave', room, username: 'bob' });
  await bob.hear((e) => e['textroom'] === 'leave');
});

test('errors in Janus\'s codes, over the data channel and the Janus API', async () => {
  const [alice, bob] = cleanup as [Chatter, Chatter];
  const room = 1234;
  const err = async (body: Record<string, unknown>) => {
    const r = await bob.ask(body);
    assert.is(r['textroom'], 'error', JSON.stringify(r));
    return r['error_code'] as number;
  };
  assert.is(await err({ textroom: 'join', room, username: 'alice' }), 420); // username taken
  assert.is(await err({ textroom: 'join', room: 999, username: 'x' }), 417);
  assert.is(await err({ textroom: 'join', room }), 413);
  assert.is(await err({ textroom: 'join', room, username: 7 }), 414);
  assert.is(await err({ textroom: 'message', room, text: 'x' }), 422); // not in room
  assert.is(await err({ textroom: 'fly', room }), 415);
  assert.is(await err({ textroom: 'announcement', room, text: 'x', secret: 'wrong' }), 419);
  assert.is((await alice.ask({ textroom: 'join', room, username: 'again' }))['error_code'], 421);
  assert.is((await alice.ask({ textroom: 'message', room, to: 'bob', tos: ['bob'], text: 'x' }))['error_code'], 414);
  // Not JSON, binary, no transaction: dropped or answered without one, never a crash.
  bob.dc.send('not json');
  bob.dc.send(Buffer.from([1, 2, 3]));
  bob.dc.send(JSON.stringify({ textroom: 'list' }));
  await bob.hear((e) => e['textroom'] === 'error' && e['error_code'] === 413);
  // The Janus API: join is data-channel only; an unknown request is 415.
  assert.is((await api(bob, { request: 'join', room, username: 'x' }))['error_code'], 415);
  assert.is((await api(bob, { request: 'nope' }))['error_code'], 415);
  assert.is((await api(bob, { request: 'kick', room, username: 'nobody', secret: 'adminpwd' }))['error_code'], 423);
});

test('room management: create, exists, list, edit, allowed, kick, destroy (API and data channel); permanent rooms in the file', async () => {
  const [alice, bob] = cleanup as [Chatter, Chatter];
  const created = await api(alice, { request: 'create', room: 777, description: 'Private', secret: 's', pin: 'p', is_private: true, history: 2, permanent: true });
  assert.equal(created, { textroom: 'created', room: 777, permanent: true });
  assert.equal(JSON.parse(readFileSync(join(dir, 'rooms.json'), 'utf8')).rooms.map((r: Json) => r['room']), [777]);
  assert.is((await api(alice, { request: 'create', room: 777 }))['error_code'], 418);
  assert.equal(await api(alice, { request: 'exists', room: 777 }), { textroom: 'success', room: 777, exists: true });
  const listed = (await api(alice, { request: 'list' }))['list'] as Json[];
  assert.ok(listed.some((r) => r['room'] === 1234) && !listed.some((r) => r['room'] === 777), 'private rooms are not listed');
  // Over the data channel create answers success, not created.
  const viaDc = await bob.ask({ textroom: 'create', description: 'Temp' });
  assert.is(viaDc['textroom'], 'success');
  assert.is(viaDc['permanent'], false);
  assert.equal(await api(alice, { request: 'edit', room: 777, secret: 's', new_description: 'Renamed', new_pin: 'q' }), { textroom: 'edited', room: 777, permanent: false });
  // History: the last two public messages reach who joins later.
  assert.is((await alice.ask({ textroom: 'join', room: 777, username: 'alice', pin: 'q' }))['textroom'], 'success');
  for (const text of ['one', 'two', 'three']) await alice.ask({ textroom: 'message', room: 777, text });
  // allowed: a token list, then only holders may join.
  assert.equal(await api(alice, { request: 'allowed', room: 777, secret: 's', action: 'add', allowed: ['t1'] }), { textroom: 'success', room: 777, allowed: ['t1'] });
  await api(alice, { request: 'allowed', room: 777, secret: 's', action: 'enable' });
  assert.is((await bob.ask({ textroom: 'join', room: 777, username: 'bob', pin: 'q' }))['error_code'], 419);
  assert.is((await bob.ask({ textroom: 'join', room: 777, username: 'bob', pin: 'q', token: 't1' }))['textroom'], 'success');
  const history = [await bob.hear((e) => e['textroom'] === 'message'), await bob.hear((e) => e['textroom'] === 'message')];
  assert.equal(history.map((m) => m['text']), ['two', 'three']);
  // kick: everyone hears it, the kicked one is out.
  assert.equal(await api(alice, { request: 'kick', room: 777, secret: 's', username: 'bob' }), { textroom: 'success' });
  await bob.hear((e) => e['textroom'] === 'kicked' && e['username'] === 'bob');
  await alice.hear((e) => e['textroom'] === 'kicked');
  assert.is((await bob.ask({ textroom: 'message', room: 777, text: 'x' }))['error_code'], 422);
  // destroy: participants hear it; the file no longer has the room.
  assert.equal(await api(bob, { request: 'destroy', room: 777, secret: 's', permanent: true }), { textroom: 'destroyed', room: 777, permanent: true });
  await alice.hear((e) => e['textroom'] === 'destroyed' && e['room'] === 777);
  assert.equal(JSON.parse(readFileSync(join(dir, 'rooms.json'), 'utf8')).rooms, []);
  assert.is((await alice.ask({ textroom: 'message', room: 777, text: 'x' }))['error_code'], 417);
  // Admin message_plugin takes the management requests too.
  const admin = (await f.admin.post('', { janus: 'message_plugin', plugin: 'janus.plugin.textroom', request: { request: 'exists', room: 1234 }, admin_secret: f.config.auth.admin_secret })) as Json;
  assert.equal(admin['response'], { textroom: 'success', room: 1234, exists: true });
});

test('restart: a new offer, answered with ack, and the data channel goes on; setup twice is 416', async () => {
  const [alice] = cleanup as [Chatter];
  await alice.peer.message({ request: 'setup' });
  const twice = await alice.peer.ws.nextEvent((e) => e['janus'] === 'event' && e['plugindata']?.data?.error_code !== undefined, 5000);
  assert.is(twice['plugindata'].data['error_code'], 416);
  await alice.peer.message({ request: 'restart' });
  const offer = await alice.peer.ws.nextEvent((e) => e['janus'] === 'event' && e['jsep'] !== undefined, 5000);
  assert.match(offer['jsep'].sdp, /m=application/);
  await alice.peer.pc.setRemoteDescription(offer['jsep']);
  await alice.peer.pc.setLocalDescription(await alice.peer.pc.createAnswer());
  await alice.peer.message({ request: 'ack' }, { type: 'answer', sdp: alice.peer.pc.localDescription!.sdp });
  await alice.peer.ws.nextEvent((e) => e['janus'] === 'event' && e['plugindata']?.data?.result === 'ok', 5000);
  assert.equal(await alice.ask({ textroom: 'exists', room: 1234 }), { textroom: 'success', room: 1234, exists: true, transaction: `t${counter}` });
});

test('a client that hangs up leaves its rooms: the others hear it; rooms and associations are released', async () => {
  const [alice, bob] = cleanup as [Chatter, Chatter];
  await bob.ask({ textroom: 'join', room: 1234, username: 'bob' });
  await bob.hear((e) => e['textroom'] === 'join');
  await alice.hear((e) => e['textroom'] === 'join' && e['username'] === 'bob');
  await bob.peer.ws.request({ janus: 'hangup', session_id: bob.peer.session, handle_id: bob.peer.handle });
  assert.equal(await alice.hear((e) => e['textroom'] === 'leave'), { textroom: 'leave', room: 1234, username: 'bob' });
  const plugin = f.ferry.gateway.plugins.get('janus.plugin.textroom') as TextRoomPlugin;
  assert.equal([...plugin.rooms.get(1234)!.participants.keys()], ['alice']);
  for (const c of cleanup) {
    await c.peer.close();
    await closePeer(c.peer.pc);
  }
  assert.is(plugin.rooms.get(1234)!.participants.size, 0, 'detach leaves too');
  const idle = await waitUntilIdle(f);
  assert.is(idle['data_channels'].associations, 0);
});

test.run();
