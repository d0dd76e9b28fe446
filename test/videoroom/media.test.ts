/** Publishers and subscribers over the real Janus API, media through the fake seam: event shapes, routing, errors. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { VrClient, publisher, publisherOffer, startBench, subscriber, subscriberAnswer, until, type Bench } from './client.js';

const test = suite<{ b: Bench; admin: VrClient }>('videoroom media');

test.before.each(async (ctx) => {
  ctx.b = await startBench();
  ctx.admin = await VrClient.open(ctx.b);
  await ctx.admin.sync({ request: 'create', room: 100, publishers: 2, audiocodec: 'opus,g722', videocodec: 'vp8,h264' });
});
test.after.each(async ({ b }) => { await b.stop(); });

const err = (data: Record<string, any>): number => {
  assert.is(data['videoroom'], 'event', JSON.stringify(data));
  return data['error_code'];
};

/** Which source currently feeds each output of a peer, by mid. */
function fed(b: Bench, peer: { streams(): { mid: string; output: number | null }[] }): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const s of peer.streams()) out[s.mid] = s.output === null ? null : (b.media.engine.outputs.get(s.output)?.source ?? null);
  return out;
}

test('publisher: joined, configured + answer, publishers event to others on webrtcup', async ({ b }) => {
  const alice = await VrClient.open(b);
  const joined = await alice.call({ request: 'join', ptype: 'publisher', room: 100, display: 'alice' });
  assert.equal(Object.keys(joined.data), ['videoroom', 'room', 'description', 'id', 'private_id', 'publishers']);
  assert.equal(joined.data['publishers'], []);
  assert.is(joined.jsep, undefined);
  const bob = await publisher(b, 100, { display: 'bob', audio: ['g722', 'opus'], video: ['h264', 'vp8'], data: true });
  // Room preference order wins over the offer's: opus and vp8.
  assert.equal(bob.published.data, {
    videoroom: 'event', room: 100, configured: 'ok', audio_codec: 'opus', video_codec: 'vp8',
    streams: [{ type: 'audio', mindex: 0, mid: '0', codec: 'opus' }, { type: 'video', mindex: 1, mid: '1', codec: 'vp8' }, { type: 'data', mindex: 2, mid: '2' }],
  });
  assert.is(bob.published.jsep?.['type'], 'answer');
  const answered = b.media.provider.forHandle(bob.c.handleId);
  assert.ok(answered.remote[0]?.sdp.includes('G722'), 'the core applied the full offer');
  const ev = await alice.event((d) => Array.isArray(d['publishers']));
  assert.equal(ev.data, {
    videoroom: 'event', room: 100,
    publishers: [{ id: bob.id, display: 'bob', streams: [{ type: 'audio', mindex: 0, mid: '0', codec: 'opus' }, { type: 'video', mindex: 1, mid: '1', codec: 'vp8' }, { type: 'data', mindex: 2, mid: '2' }] }],
  });
  const carol = await VrClient.open(b);
  const carolJoined = await carol.call({ request: 'join', ptype: 'publisher', room: 100 });
  assert.equal(carolJoined.data['publishers'].map((p: any) => p.id), [bob.id]);
});

test('an offer with no allowed codec gets its m-line disabled; the narrowed offer reaches createAnswer', async ({ b }) => {
  const p = await publisher(b, 100, { audio: ['pcmu'], video: ['vp9'] });
  assert.equal(p.published.data['streams'], [{ type: 'audio', mindex: 0, mid: '0', disabled: true }, { type: 'video', mindex: 1, mid: '1', disabled: true }]);
  const s = await VrClient.open(b);
  assert.is(err((await s.call({ request: 'join', ptype: 'subscriber', room: 100, streams: [{ feed: p.id }] })).data), 438);
  assert.is(err((await s.call({ request: 'join', ptype: 'subscriber', room: 100, streams: [{ feed: p.id, mid: '0' }] })).data), 428);
});

test('publisher errors: 431 answer, 429 no jsep, 434 twice, 435 unpublish, 432 room full, 430 codec not in room', async ({ b }) => {
  const a = await VrClient.open(b);
  await a.call({ request: 'join', ptype: 'publisher', room: 100 });
  assert.is(err((await a.call({ request: 'publish' })).data), 429);
  assert.is(err((await a.call({ request: 'unpublish' })).data), 435);
  assert.is(err((await a.call({ request: 'publish', videocodec: 'av1' }, publisherOffer())).data), 430);
  assert.is((await a.call({ request: 'publish' }, publisherOffer())).data['configured'], 'ok');
  b.media.provider.forHandle(a.handleId).up();
  assert.is(err((await a.call({ request: 'publish' }, publisherOffer())).data), 434);
  await publisher(b, 100);
  const third = await VrClient.open(b);
  await third.call({ request: 'join', ptype: 'publisher', room: 100 });
  assert.is(err((await third.call({ request: 'publish' }, publisherOffer())).data), 432);
  // An answer where an offer is due: the core refuses it first (469: nothing was offered).
  const reply = await third.raw({ request: 'publish' }, subscriberAnswer());
  assert.is(reply['error'].code, 469);
});

test('subscriber: attached + offer built from the feed streams; start connects outputs after webrtcup', async ({ b }) => {
  const p = await publisher(b, 100, { display: 'alice' });
  const s = await VrClient.open(b);
  const attached = await s.call({ request: 'join', ptype: 'subscriber', room: 100, streams: [{ feed: p.id }] });
  assert.equal(attached.data, {
    videoroom: 'attached', room: 100,
    streams: [
      { type: 'audio', mindex: 0, mid: '0', active: true, feed_id: p.id, feed_mid: '0', feed_display: 'alice', codec: 'opus', send: true, ready: false },
      { type: 'video', mindex: 1, mid: '1', active: true, feed_id: p.id, feed_mid: '1', feed_display: 'alice', codec: 'vp8', send: true, ready: false },
    ],
  });
  assert.is(attached.jsep?.['type'], 'offer');
  const peer = b.media.provider.forHandle(s.handleId);
  assert.equal(peer.offersMade[0]?.map((x) => [x.mid, x.kind, x.codec.name, x.direction]), [['0', 'audio', 'opus', 'sendonly'], ['1', 'video', 'VP8', 'sendonly']]);
  assert.equal(b.media.services.router.calls, [], 'nothing routed before the answer and webrtcup');
  assert.equal((await s.call({ request: 'start' }, subscriberAnswer())).data, { videoroom: 'event', room: 100, started: 'ok' });
  assert.equal(b.media.services.router.calls, [], 'nothing routed before webrtcup');
  peer.up();
  const pubSources = p.peer.streams().map((x) => x.sources[0]?.source);
  assert.equal(fed(b, peer), { '0': pubSources[0], '1': pubSources[1] });
  assert.ok(b.media.services.router.calls.some((c) => c.op === 'keyframe' && c.source === pubSources[1]), 'keyframe asked for the new video source');
  // pause / start (no jsep)
  assert.equal((await s.call({ request: 'pause' })).data, { videoroom: 'event', room: 100, paused: 'ok' });
  assert.ok([...b.media.engine.outputs.values()].filter((o) => o.owner === peer.name).every((o) => o.paused));
  await s.call({ request: 'start' });
  assert.ok([...b.media.engine.outputs.values()].filter((o) => o.owner === peer.name).every((o) => !o.paused));
  // configure: video off by mid, audio off by the deprecated toggle
  assert.equal((await s.call({ request: 'configure', streams: [{ mid: '1', send: false }] })).data, { videoroom: 'event', room: 100, configured: 'ok' });
  const out1 = peer.streams()[1]!.output!;
  assert.is(b.media.engine.outputs.get(out1)?.paused, true);
  await s.call({ request: 'configure', audio: false });
  assert.is(b.media.engine.outputs.get(peer.streams()[0]!.output!)?.paused, true);
  const described = (await s.call({ request: 'switch', streams: [] })).data;
  assert.equal(described['streams'].map((x: any) => [x.send, x.ready]), [[false, true], [false, true]]);
  // leave
  assert.equal((await s.call({ request: 'leave' })).data, { videoroom: 'event', room: 100, left: 'ok' });
  await s.ws.nextEvent((e) => e['janus'] === 'hangup' && e['sender'] === s.handleId);
  assert.is(b.plugin.stats().subscribers, 0);
  assert.is(peer.listenerCount, 0);
});

test('subscriber errors: 428 feed/mid, 433 pvtid, 429 streams, 431 offer on start, 423 unknown', async ({ b }) => {
  await VrClient.open(b).then((c) => c.sync({ request: 'create', room: 101, require_pvtid: true }));
  const p = await publisher(b, 100);
  const s = await VrClient.open(b);
  assert.is(err((await s.call({ request: 'join', ptype: 'subscriber', room: 100 })).data), 429);
  assert.is(err((await s.call({ request: 'join', ptype: 'subscriber', room: 100, streams: [{ feed: 4242 }] })).data), 428);
  assert.is(err((await s.call({ request: 'join', ptype: 'subscriber', room: 100, streams: [{ feed: p.id, mid: '7' }] })).data), 428);
  assert.is(err((await s.call({ request: 'join', ptype: 'subscriber', room: 100, streams: [{ mid: '0' }] })).data), 429);
  const q = await publisher(b, 101);
  assert.is(err((await s.call({ request: 'join', ptype: 'subscriber', room: 101, streams: [{ feed: q.id }] })).data), 433);
  assert.is(err((await s.call({ request: 'join', ptype: 'subscriber', room: 101, private_id: 1, streams: [{ feed: q.id }] })).data), 433);
  assert.is((await s.call({ request: 'join', ptype: 'subscriber', room: 101, private_id: q.privateId, streams: [{ feed: q.id }] })).data['videoroom'], 'attached');
  assert.is(err((await s.call({ request: 'publish' }, undefined)).data), 423);
  const reply = await s.raw({ request: 'start' }, publisherOffer());
  assert.is(reply['janus'], 'ack');
  assert.is(err((await s.event((d) => d['error_code'] !== undefined)).data), 431);
});

test('unpublish: others get unpublished, subscribers get updated with a new offer; leave sends leaving', async ({ b }) => {
  const alice = await publisher(b, 100, { display: 'alice' });
  const bob = await publisher(b, 100, { display: 'bob' });
  const s = await subscriber(b, 100, [{ feed: alice.id }, { feed: bob.id, mid: '1' }]);
  assert.equal(Object.values(fed(b, s.peer)).filter((x) => x !== null).length, 3);
  assert.equal((await bob.c.call({ request: 'unpublish' })).data, { videoroom: 'event', room: 100, unpublished: 'ok' });
  assert.equal((await alice.c.event((d) => d['unpublished'] === bob.id)).data, { videoroom: 'event', room: 100, unpublished: bob.id, display: 'bob' });
  const updated = await s.c.event((d) => d['videoroom'] === 'updated');
  assert.is(updated.jsep?.['type'], 'offer');
  assert.equal(updated.data['streams'].map((x: any) => [x.mid, x.active]), [['0', true], ['1', true], ['2', false]]);
  assert.is(fed(b, s.peer)['2'], null, 'output of the gone feed disconnected');
  assert.is(s.peer.offersMade.at(-1)?.[2]?.direction, 'inactive');
  await bob.c.ws.nextEvent((e) => e['janus'] === 'hangup' && e['sender'] === bob.c.handleId);
  // bob can publish again on a new PeerConnection
  assert.is((await bob.c.call({ request: 'publish' }, publisherOffer())).data['configured'], 'ok');
  b.media.provider.forHandle(bob.c.handleId).up();
  await alice.c.event((d) => Array.isArray(d['publishers']) && d['publishers'][0]?.id === bob.id);
  // answer the pending update, then re-subscribe: the inactive m-line is recycled
  await s.c.call({ request: 'start' }, subscriberAnswer());
  const sub = await s.c.call({ request: 'subscribe', streams: [{ feed: bob.id, mid: '1' }] });
  assert.equal(sub.data['streams'].map((x: any) => [x.mid, x.active, x.feed_id ?? null]), [['0', true, alice.id], ['1', true, alice.id], ['2', true, bob.id]]);
  assert.is(sub.data['videoroom'], 'updated');
  assert.is(sub.jsep?.['type'], 'offer');
  await s.c.call({ request: 'start' }, subscriberAnswer());
  const bobVideo = b.media.provider.forHandle(bob.c.handleId).streams()[1]!.sources[0]!.source;
  assert.is(fed(b, s.peer)['2'], bobVideo);
  // leave: leaving + unpublished to others
  assert.equal((await alice.c.call({ request: 'leave' })).data, { videoroom: 'event', room: 100, leaving: 'ok' });
  assert.equal((await bob.c.event((d) => d['unpublished'] === alice.id)).data, { videoroom: 'event', room: 100, unpublished: alice.id, display: 'alice' });
  assert.equal((await bob.c.event((d) => d['leaving'] === alice.id)).data, { videoroom: 'event', room: 100, leaving: alice.id, display: 'alice' });
  await s.c.event((d) => d['videoroom'] === 'updated');
  assert.equal(fed(b, s.peer), { '0': null, '1': null, '2': bobVideo });
});

test('update while an offer is outstanding replies updating, then offers again after the answer', async ({ b }) => {
  const alice = await publisher(b, 100);
  const bob = await publisher(b, 100);
  const s = await VrClient.open(b);
  await s.call({ request: 'join', ptype: 'subscriber', room: 100, streams: [{ feed: alice.id, mid: '0' }] });
  const updating = await s.call({ request: 'update', subscribe: [{ feed: bob.id, mid: '0' }] });
  assert.equal(updating.data, { videoroom: 'updating', room: 100 });
  assert.is(updating.jsep, undefined);
  await s.call({ request: 'start' }, subscriberAnswer());
  const after = await s.event((d) => d['videoroom'] === 'updated');
  assert.is(after.jsep?.['type'], 'offer');
  assert.equal(after.data['streams'].map((x: any) => x.feed_id), [alice.id, bob.id]);
  assert.is(err((await s.call({ request: 'update' })).data), 429);
  await s.call({ request: 'start' }, subscriberAnswer());
  const un = await s.call({ request: 'unsubscribe', streams: [{ feed: alice.id }] });
  assert.equal(un.data['streams'].map((x: any) => x.active), [false, true]);
});

test('simulcast: substream picks the layer, configure switches it with a keyframe request and a substream event', async ({ b }) => {
  const p = await publisher(b, 100, { rids: ['h', 'm', 'l'] });
  const video = p.peer.streams()[1]!;
  const byRid = Object.fromEntries(video.sources.map((x) => [x.rid, x.source]));
  assert.equal(p.published.data['streams'][1], { type: 'video', mindex: 1, mid: '1', codec: 'vp8', simulcast: true });
  const s = await subscriber(b, 100, [{ feed: p.id, mid: '1', substream: 0 }]);
  assert.equal(s.attached.data['streams'][0].simulcast, { substream: 0, temporal: 2 });
  assert.is(fed(b, s.peer)['0'], byRid['l'], 'substream 0 is the lowest layer (rid order h,m,l)');
  b.media.services.router.calls.length = 0;
  await s.c.call({ request: 'configure', streams: [{ mid: '0', substream: 2 }] });
  assert.is(fed(b, s.peer)['0'], byRid['h']);
  assert.equal(b.media.services.router.calls, [{ op: 'switch', output: s.peer.streams()[0]!.output!, source: byRid['h']! }, { op: 'keyframe', source: byRid['h']! }]);
  // The substream event waits for the new layer's keyframe (Janus sends it when the switch happens).
  await new Promise((r) => setTimeout(r, 50));
  assert.not.ok(s.c.pending().some((e) => e['plugindata']?.data?.substream !== undefined), 'no substream event before the keyframe');
  b.media.services.router.completeSwitch(s.peer.streams()[0]!.output!, byRid['m']!);
  await new Promise((r) => setTimeout(r, 20));
  assert.not.ok(s.c.pending().some((e) => e['plugindata']?.data?.substream !== undefined), 'nor for another layer\'s keyframe');
  b.media.services.router.completeSwitch(s.peer.streams()[0]!.output!, byRid['h']!);
  assert.equal((await s.c.event((d) => d['substream'] !== undefined)).data, { videoroom: 'event', room: 100, mid: '0', substream: 2 });
  await s.c.call({ request: 'configure', substream: 1 });
  assert.is(fed(b, s.peer)['0'], byRid['m']);
  // The keyframe-switch listener has one owner: the subscriber, until it leaves.
  assert.is(b.media.services.router.switchListeners.size, 1);
  await s.c.call({ request: 'leave' });
  assert.is(b.media.services.router.switchListeners.size, 0, 'teardown removes it');
  const refused = await VrClient.open(b);
  assert.is((await refused.call({ request: 'join', ptype: 'subscriber', room: 100, streams: [{ feed: 424242 }] })).data['error_code'], 428);
  assert.is(b.media.services.router.switchListeners.size, 0, 'a refused join registers nothing');
});

test('publisher configure: keyframe, send:false stops relaying, display change re-announced', async ({ b }) => {
  const alice = await publisher(b, 100, { display: 'alice' });
  const watcher = await VrClient.open(b);
  await watcher.call({ request: 'join', ptype: 'publisher', room: 100 });
  const s = await subscriber(b, 100, [{ feed: alice.id }]);
  const [audioSrc, videoSrc] = alice.peer.streams().map((x) => x.sources[0]!.source);
  b.media.services.router.calls.length = 0;
  await alice.c.call({ request: 'configure', keyframe: true });
  assert.equal(b.media.services.router.calls, [{ op: 'keyframe', source: videoSrc! }]);
  await alice.c.call({ request: 'configure', streams: [{ mid: '1', send: false }], display: 'Alice' });
  assert.equal(fed(b, s.peer), { '0': audioSrc, '1': null });
  const ann = await watcher.event((d) => Array.isArray(d['publishers']) && d['publishers'][0]?.display === 'Alice');
  assert.is(ann.data['publishers'][0].id, alice.id);
  await alice.c.call({ request: 'configure', streams: [{ mid: '1', send: true }] });
  assert.equal(fed(b, s.peer), { '0': audioSrc, '1': videoSrc });
});

test('publisher renegotiation (configure + offer) re-points subscribers to the new sources', async ({ b }) => {
  const alice = await publisher(b, 100);
  const s = await subscriber(b, 100, [{ feed: alice.id }]);
  const again = await alice.c.call({ request: 'configure' }, publisherOffer({ ssrcBase: 90000 }));
  assert.is(again.jsep?.['type'], 'answer');
  const now = alice.peer.streams().map((x) => x.sources[0]!.source);
  assert.equal(fed(b, s.peer), { '0': now[0], '1': now[1] });
});

test('every ending path of a participant cleans up: hangup, detach, session destroy', async ({ b }) => {
  for (const ending of ['hangup', 'detach', 'destroy'] as const) {
    const alice = await publisher(b, 100, { display: `alice-${ending}` });
    const observer = await VrClient.open(b);
    await observer.call({ request: 'join', ptype: 'publisher', room: 100 });
    const s = await subscriber(b, 100, [{ feed: alice.id }]);
    if (ending === 'hangup') await alice.c.hangup();
    else if (ending === 'detach') await alice.c.detach();
    else await alice.c.destroySession();
    assert.equal((await observer.event((d) => d['unpublished'] === alice.id)).data['display'], `alice-${ending}`);
    if (ending !== 'hangup') await observer.event((d) => d['leaving'] === alice.id);
    await s.c.event((d) => d['videoroom'] === 'updated');
    assert.equal(fed(b, s.peer), { '0': null, '1': null });
    await s.c.detach();
    await observer.detach();
    if (ending === 'hangup') await alice.c.detach();
    await until(() => b.plugin.stats().participants === 0 && b.plugin.stats().subscribers === 0).catch((e) => { throw new Error(ending + ' ' + JSON.stringify(b.plugin.stats()) + e); });
    await until(() => b.media.provider.openCount === 0).catch((e) => { throw new Error(`${ending} open ${JSON.stringify(b.media.provider.peers.filter((x) => x.closedWith === null).map((x) => x.owner))} alice ${alice.c.handleId} s ${s.c.handleId} obs ${observer.handleId} ${e}`); });
    assert.is(b.media.engine.outputs.size, 0);
    assert.is(b.media.engine.sources.size, 0);
  }
});

test.run();
