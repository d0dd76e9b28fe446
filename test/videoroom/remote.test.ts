/** Remote publishers (cascading), publish_remotely, rtp_forward: legs, SSRC offsets, one owner per port lease, churn. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { VrClient, publisher, startBench, subscriber, until, type Bench } from './client.js';

const test = suite<{ b: Bench; c: VrClient }>('videoroom remote');

test.before.each(async (ctx) => {
  ctx.b = await startBench({}, 20);
  ctx.c = await VrClient.open(ctx.b);
  await ctx.c.sync({ request: 'create', room: 200, publishers: 50, secret: 'r' });
});
test.after.each(async ({ b }) => { await b.stop(); });

const err = (data: Record<string, any>): number => {
  assert.is(data['videoroom'], 'event', JSON.stringify(data));
  return data['error_code'];
};

const AV = [{ type: 'audio', mindex: 0, mid: '0', codec: 'opus' }, { type: 'video', mindex: 1, mid: '1', codec: 'vp8', simulcast: true }];
const CRYPTO = Buffer.alloc(30, 7).toString('base64');

test('add_remote_publisher: one leg, latched, random SSRC offset, Janus SSRC scheme, announced to the room', async ({ b, c }) => {
  const watcher = await VrClient.open(b);
  await watcher.call({ request: 'join', ptype: 'publisher', room: 200 });
  assert.is(err(await c.sync({ request: 'add_remote_publisher', room: 200, streams: AV })), 429, 'secret');
  assert.is(err(await c.sync({ request: 'add_remote_publisher', room: 200, secret: 'r' })), 429, 'streams');
  assert.is(err(await c.sync({ request: 'add_remote_publisher', room: 200, secret: 'r', streams: [{ type: 'text', mindex: 0, mid: '0' }] })), 430);
  assert.is(err(await c.sync({ request: 'add_remote_publisher', room: 200, secret: 'r', streams: [{ type: 'audio', mindex: 0, mid: '0', codec: 'vp8' }] })), 430);
  assert.is(err(await c.sync({ request: 'add_remote_publisher', room: 200, secret: 'r', streams: AV, srtp_suite: 80 })), 429);
  assert.is(err(await c.sync({ request: 'add_remote_publisher', room: 200, secret: 'r', streams: AV, srtp_suite: 81, srtp_crypto: CRYPTO })), 430);
  assert.is(b.media.pool.leased, 0, 'no failed request kept a port');
  const r = await c.sync({ request: 'add_remote_publisher', room: 200, secret: 'r', id: 77, display: 'far', streams: AV, srtp_suite: 80, srtp_crypto: CRYPTO });
  const leg = b.media.services.openLegs[0]!;
  assert.equal(r, { videoroom: 'success', room: 200, id: 77, port: leg.port, rtcp_port: leg.port });
  assert.is(leg.options.owner, 'videoroom:200:remote:77');
  assert.is(leg.options.latch, true);
  assert.is(leg.options.pool, 'rtp');
  assert.is(leg.srtp?.profile, 'AES_CM_128_HMAC_SHA1_80');
  const sources = [...leg.sourceIds].map((id) => b.media.engine.sources.get(id)!);
  assert.equal(sources.map((s) => s.ssrc), [1000, 1010, 1011, 1012]);
  const offset = sources[0]!.ssrcOffset;
  assert.ok(sources.every((s) => s.ssrcOffset === offset));
  const ev = await watcher.event((d) => Array.isArray(d['publishers']));
  assert.equal(ev.data['publishers'], [{ id: 77, display: 'far', streams: [{ type: 'audio', mindex: 0, mid: '0', codec: 'opus' }, { type: 'video', mindex: 1, mid: '1', codec: 'vp8', simulcast: true }] }]);
  assert.is(err(await c.sync({ request: 'add_remote_publisher', room: 200, secret: 'r', id: 77, streams: AV })), 436);
  // a second remote publisher has its own offset (lessons §4)
  await c.sync({ request: 'add_remote_publisher', room: 200, secret: 'r', id: 78, streams: AV });
  const leg2 = b.media.services.openLegs[1]!;
  const offset2 = b.media.engine.sources.get([...leg2.sourceIds][0]!)!.ssrcOffset;
  assert.is.not(offset2, offset);
  // iface/mcast given → ip returned
  const withIp = await c.sync({ request: 'add_remote_publisher', room: 200, secret: 'r', iface: '127.0.0.1', streams: AV });
  assert.is(withIp['ip'], '127.0.0.1');
  // a chosen port that cannot be had is 499, and nothing stays leased
  const before = b.media.pool.leased;
  assert.equal(await c.sync({ request: 'add_remote_publisher', room: 200, secret: 'r', port: leg.port, streams: AV }), { videoroom: 'event', error_code: 499, error: 'Could not open UDP socket for RTP stream' });
  assert.is(b.media.pool.leased, before);
});

test('subscribers get remote publishers like any feed; update and remove notify and re-point', async ({ b, c }) => {
  const watcher = await VrClient.open(b);
  await watcher.call({ request: 'join', ptype: 'publisher', room: 200 });
  await c.sync({ request: 'add_remote_publisher', room: 200, secret: 'r', id: 90, streams: AV });
  const leg = b.media.services.openLegs[0]!;
  const s = await subscriber(b, 200, [{ feed: 90 }]);
  const out = s.peer.streams().map((x) => x.output!);
  const src = [...leg.sourceIds];
  assert.is(b.media.engine.outputs.get(out[0]!)?.source, src[0]);
  assert.is(b.media.engine.outputs.get(out[1]!)?.source, src[3], 'default substream 2 = +2 layer');
  // update: video disabled → subscriber's video m-line goes inactive (autoupdate)
  assert.equal(await c.sync({ request: 'update_remote_publisher', room: 200, secret: 'r', id: 90, display: 'renamed', streams: [{ type: 'video', mindex: 1, mid: '1', codec: 'vp8', disabled: true }] }), { videoroom: 'success' });
  const upd = await s.c.event((d) => d['videoroom'] === 'updated');
  assert.equal(upd.data['streams'].map((x: any) => x.active), [true, false]);
  assert.is(b.media.engine.outputs.get(out[1]!)?.source, null);
  assert.is(leg.sourceIds.size, 1, 'disabled stream sources removed from the leg');
  await watcher.event((d) => Array.isArray(d['publishers']) && d['publishers'][0]?.display === 'renamed');
  assert.is(err(await c.sync({ request: 'update_remote_publisher', room: 200, secret: 'r', id: 91, streams: [] })), 428);
  const local = await publisher(b, 200);
  assert.is(err(await c.sync({ request: 'update_remote_publisher', room: 200, secret: 'r', id: local.id, streams: [] })), 430);
  // remove: unpublished + leaving, leg closed, port back
  assert.equal(await c.sync({ request: 'remove_remote_publisher', room: 200, secret: 'r', id: 90 }), { videoroom: 'success' });
  assert.equal((await watcher.event((d) => d['unpublished'] === 90)).data, { videoroom: 'event', room: 200, unpublished: 90, display: 'renamed' });
  assert.equal((await watcher.event((d) => d['leaving'] === 90)).data, { videoroom: 'event', room: 200, leaving: 90, display: 'renamed' });
  assert.ok(leg.closed);
  assert.is(b.media.pool.leased, 0);
  assert.is(err(await c.sync({ request: 'remove_remote_publisher', room: 200, secret: 'r', id: 90 })), 428);
});

test('publish_remotely / listremotes (and list_remotes) / unpublish_remotely with the cascading SSRCs', async ({ b, c }) => {
  const p = await publisher(b, 200, { rids: ['h', 'm', 'l'] });
  assert.is(err(await c.sync({ request: 'publish_remotely', room: 200, secret: 'r', publisher_id: p.id, host: '127.0.0.1', port: 30000 })), 429);
  const r = await c.sync({ request: 'publish_remotely', room: 200, secret: 'r', publisher_id: p.id, remote_id: 'B', host: '127.0.0.1', port: 30000, rtcp_port: 30001 });
  assert.equal(r, { videoroom: 'success', room: 200, id: p.id, remote_id: 'B' });
  assert.is(err(await c.sync({ request: 'publish_remotely', room: 200, secret: 'r', publisher_id: p.id, remote_id: 'B', host: '127.0.0.1', port: 30002 })), 436);
  const leg = b.media.services.openLegs[0]!;
  assert.equal(leg.remote, { address: '127.0.0.1', port: 30000 });
  assert.is(leg.options.owner, `videoroom:200:remotize:${p.id}:B`);
  const feeds = [...leg.outputIds].map((o) => b.media.engine.outputs.get(o)!.source);
  const [audio, video] = p.peer.streams();
  const layersLowFirst = [...video!.sources].reverse().map((x) => x.source);
  assert.equal(feeds, [audio!.sources[0]!.source, ...layersLowFirst], 'audio +0; video layers 0..2 low→high');
  const list = await c.sync({ request: 'listremotes', room: 200, secret: 'r', publisher_id: p.id });
  assert.equal(list, { videoroom: 'success', room: 200, id: p.id, list: [{ remote_id: 'B', host: '127.0.0.1', port: 30000, rtcp_port: 30001 }] });
  assert.equal(await c.sync({ request: 'list_remotes', room: 200, secret: 'r', publisher_id: p.id }), list);
  await c.sync({ request: 'add_remote_publisher', room: 200, secret: 'r', id: 5, streams: AV });
  assert.is(err(await c.sync({ request: 'publish_remotely', room: 200, secret: 'r', publisher_id: 5, remote_id: 'X', host: '127.0.0.1', port: 30004 })), 430);
  assert.equal(await c.sync({ request: 'unpublish_remotely', room: 200, secret: 'r', publisher_id: p.id, remote_id: 'B' }), { videoroom: 'success', room: 200, id: p.id });
  assert.ok(leg.closed);
  assert.is(err(await c.sync({ request: 'unpublish_remotely', room: 200, secret: 'r', publisher_id: p.id, remote_id: 'B' })), 428);
});

test('rtp_forward / listforwarders / stop_rtp_forward; forwarders end with the publisher', async ({ b, c }) => {
  const p = await publisher(b, 200, { display: 'fw' });
  assert.is(err(await c.sync({ request: 'rtp_forward', room: 200, secret: 'r', publisher_id: 12345, host: '127.0.0.1', streams: [{ mid: '0', port: 40000 }] })), 428);
  assert.is(err(await c.sync({ request: 'rtp_forward', room: 200, secret: 'r', publisher_id: p.id, streams: [{ mid: '0', port: 40000 }] })), 429);
  assert.is(err(await c.sync({ request: 'rtp_forward', room: 200, secret: 'r', publisher_id: p.id, host: '127.0.0.1', streams: [{ mid: '5', port: 40000 }] })), 428);
  const r = await c.sync({ request: 'rtp_forward', room: 200, secret: 'r', publisher_id: p.id, host: '127.0.0.1', streams: [{ mid: '0', port: 40000, ssrc: 1234, pt: 111 }, { mid: '1', port: 40002, rtcp_port: 40003 }] });
  assert.is(r['videoroom'], 'rtp_forward');
  assert.is(r['publisher_id'], p.id);
  const [fa, fv] = r['forwarders'];
  assert.equal(fa, { stream_id: fa.stream_id, type: 'audio', host: '127.0.0.1', port: 40000, ssrc: 1234, pt: 111, srtp: false });
  const legs = b.media.services.openLegs;
  assert.equal(fv, { stream_id: fv.stream_id, type: 'video', host: '127.0.0.1', port: 40002, local_rtcp_port: legs[1]!.port, remote_rtcp_port: 40003, ssrc: fv.ssrc, srtp: false });
  assert.is(b.media.engine.outputs.get([...legs[0]!.outputIds][0]!)?.source, p.peer.streams()[0]!.sources[0]!.source);
  // deprecated flat fields
  const flat = await c.sync({ request: 'rtp_forward', room: 200, secret: 'r', publisher_id: p.id, host: '127.0.0.1', audio_port: 41000 });
  assert.is(flat['forwarders'][0].type, 'audio');
  const listed = await c.sync({ request: 'listforwarders', room: 200, secret: 'r' });
  assert.equal(listed, { videoroom: 'forwarders', room: 200, publishers: [{ publisher_id: p.id, display: 'fw', forwarders: [fa, fv, flat['forwarders'][0]] }] });
  assert.equal(await c.sync({ request: 'stop_rtp_forward', room: 200, secret: 'r', publisher_id: p.id, stream_id: fa.stream_id }), { videoroom: 'stop_rtp_forward', room: 200, publisher_id: p.id, stream_id: fa.stream_id });
  assert.is(err(await c.sync({ request: 'stop_rtp_forward', room: 200, secret: 'r', publisher_id: p.id, stream_id: fa.stream_id })), 428);
  assert.is(b.media.pool.leased, 2);
  await p.c.call({ request: 'unpublish' });
  assert.is(b.media.pool.leased, 0, 'unpublishing closes the remaining forwarders');
});

test('lock_rtp_forward requires admin_key for forwarding and remote publishers', async () => {
  const b = await startBench({ adminKey: 'ak', lockRtpForward: true });
  try {
    const c = await VrClient.open(b);
    await c.sync({ request: 'create', room: 1, admin_key: 'ak' });
    assert.is(err(await c.sync({ request: 'add_remote_publisher', room: 1, streams: AV })), 429);
    assert.is(err(await c.sync({ request: 'add_remote_publisher', room: 1, streams: AV, admin_key: 'no' })), 433);
    assert.is((await c.sync({ request: 'add_remote_publisher', room: 1, streams: AV, admin_key: 'ak' }))['videoroom'], 'success');
  } finally {
    await b.stop();
  }
});

test('the session that added a remote publisher ending closes its leg', async ({ b }) => {
  const owner = await VrClient.open(b);
  await owner.sync({ request: 'add_remote_publisher', room: 200, secret: 'r', id: 1, streams: AV });
  await owner.sync({ request: 'add_remote_publisher', room: 200, secret: 'r', id: 2, streams: AV });
  assert.is(b.media.pool.leased, 2);
  await owner.destroySession();
  await until(() => b.media.pool.leased === 0);
  assert.is(b.plugin.stats().participants, 0);
});

test('plugin shutdown closes every leg', async ({ b, c }) => {
  await c.sync({ request: 'add_remote_publisher', room: 200, secret: 'r', streams: AV });
  const p = await publisher(b, 200);
  await c.sync({ request: 'rtp_forward', room: 200, secret: 'r', publisher_id: p.id, host: '127.0.0.1', streams: [{ mid: '0', port: 40000 }] });
  await c.sync({ request: 'create', room: 201 });
  const admin = await VrClient.open(b);
  await admin.sync({ request: 'add_remote_publisher', room: 201, streams: AV });
  assert.is(b.media.pool.leased, 3);
  await b.stop();
  assert.is(b.media.pool.leased, 0);
  assert.is(b.media.engine.sources.size, 0);
  assert.is(b.media.engine.outputs.size, 0);
});

test('churn: 10^3 add/remove cycles and 10^2 room destroys with live remote publishers on 20 ports', async ({ b, c }) => {
  const pool = b.media.pool;
  const admin = b.plugin;
  // Requests through the plugin's synchronous entry (the same one Admin message_plugin and handles use),
  // so the churn measures the plugin, not the transport.
  const sync = (body: Record<string, unknown>) => admin.handleSync(body as never, null) as Record<string, any>;
  for (let i = 0; i < 1000; i++) {
    const added = sync({ request: 'add_remote_publisher', room: 200, secret: 'r', id: 1 + (i % 7), streams: AV });
    assert.is(added['videoroom'], 'success', JSON.stringify(added));
    const removed = sync({ request: 'remove_remote_publisher', room: 200, secret: 'r', id: 1 + (i % 7) });
    assert.is(removed['videoroom'], 'success');
  }
  assert.is(pool.leased, 0);
  assert.is(pool.maxLeased, 1);
  for (let i = 0; i < 100; i++) {
    const room = 1000 + i;
    sync({ request: 'create', room, publishers: 10 });
    for (let k = 0; k < 5; k++) assert.is(sync({ request: 'add_remote_publisher', room, streams: AV })['videoroom'], 'success');
    const p = sync({ request: 'add_remote_publisher', room, streams: AV });
    sync({ request: 'rtp_forward', room, publisher_id: p['id'], host: '127.0.0.1', streams: [{ mid: '0', port: 40000 }] });
    assert.is(pool.leased, 7);
    assert.is(sync({ request: 'destroy', room })['videoroom'], 'destroyed');
    assert.is(pool.leased, 0, `room ${room} destroy released every port`);
    b.media.services.pruneClosed();
  }
  assert.is(pool.leasesMade, 1000 + 100 * 7);
  assert.ok(pool.maxLeased <= 20);
  assert.is(b.media.services.openLegs.length, 0);
  assert.is(b.media.engine.sources.size, 0);
  assert.is(b.media.engine.outputs.size, 0);
  assert.is(admin.stats().legs, 0);
  // Over the API as well, a shorter run: adds beyond the range fail cleanly with 499 and leave nothing behind.
  for (let k = 0; k < 20; k++) assert.is((await c.sync({ request: 'add_remote_publisher', room: 200, secret: 'r', streams: AV }))['videoroom'], 'success');
  assert.equal(await c.sync({ request: 'add_remote_publisher', room: 200, secret: 'r', streams: AV }), { videoroom: 'event', error_code: 499, error: 'Could not open UDP socket for RTP stream' });
  await c.sync({ request: 'destroy', room: 200, secret: 'r' });
  assert.is(pool.leased, 0);
});

test.run();
