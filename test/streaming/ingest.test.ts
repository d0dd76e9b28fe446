// The ingest side of a mountpoint with a scripted RTP sender that answers PLIs: a viewer's first
// frame is the keyframe ferry asked for; garbage on an ingest port is a counted drop; a stray
// SSRC cannot take a live stream over but an encoder restarting with a new one is followed; a
// viewer switches mountpoints and simulcast layers, pauses, and hears `stopped` when the
// mountpoint is destroyed.
import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { JanusClient, withStreamingTest, ScriptedSender, pause, tagOf, until, vp8Frames, watch, type StreamingFerry } from './harness.js';
import { countDecryptFailures } from '../videoroom-e2e/harness.js';

async function videoMountpoint(client: JanusClient, extra: Record<string, unknown> = {}, simulcast = false): Promise<{ id: number; ports: number[] }> {
  const created = await client.sync({
    request: 'create',
    type: 'rtp',
    collision: 300,
    media: [{ type: 'video', mid: 'v', codec: 'vp8', pt: 100, port: 0, ...(simulcast ? { simulcast: true } : {}) }],
    ...extra,
  });
  assert.is(created['streaming'], 'created', JSON.stringify(created));
  const p = created['stream'].ports[0];
  return { id: created['stream'].id, ports: [p.port, p.port_2, p.port_3].filter((x) => x !== undefined) };
}

function endpointOf(st: StreamingFerry, port: number) {
  const e = st.f.ferry.engine.stats().endpoints.find((x) => x.port === port);
  if (!e) throw new Error(`no endpoint on port ${port}`);
  return e;
}

test('a sender with RTCP: the late viewer gets the keyframe its PLI asked for, at most a delta or two before it', async () => {
  await withStreamingTest(async ({ st, admin, peers, senders }) => {
    const mp = await videoMountpoint(admin);
    const sender = await ScriptedSender.open(mp.ports[0]!, { ssrc: 0xabc, tag: 'cam' });
    senders.push(sender);
    sender.start();
    // Well into the stream: only delta frames flow now.
    await pause(1500);
    const plisBefore = sender.plis.length;
    const v = await watch(st.f, mp.id, peers);
    const upAt = performance.now();
    assert.ok(await until(() => vp8Frames(v.received.get('v')!).keyframes >= 1, 5000), 'a keyframe arrives');
    const video = v.received.get('v')!;
    const firstKey = video.findIndex((p) => vp8Frames([p]).keyframes === 1);
    const before = firstKey;
    assert.ok(sender.plis.length > plisBefore, 'ferry sent the sender a PLI when the viewer started');
    assert.ok(before <= 2, `${before} delta frames before the keyframe`);
    console.log(`  PLI path: webrtcup→keyframe ${Math.round(video[firstKey]!.at - upAt)} ms, ${before} delta frame(s) before it`);
    assert.ok(video.every((p) => tagOf(p.rtp.payload) === 'cam'));
    await v.client.close();
  });
});

test('garbage into an ingest port is counted and dropped; a stray SSRC does not take a live stream over; a restarted encoder with a new SSRC is followed', async () => {
  await withStreamingTest(async ({ st, admin, peers, senders }) => {
    const mp = await videoMountpoint(admin);
    const port = mp.ports[0]!;
    const cam = await ScriptedSender.open(port, { ssrc: 1111, tag: 'cam' });
    senders.push(cam);
    cam.start(30);
    const v = await watch(st.f, mp.id, peers);
    const failures = countDecryptFailures(v.pc);
    assert.ok(await until(() => v.received.get('v')!.length >= 10), 'media flows');
    const before = endpointOf(st, port);
    // Garbage: random bytes of every size, RTP-looking packets with a wrong version or truncated
    // headers, RTCP-looking junk, and a valid RTP packet with another payload type.
    const garbage = await ScriptedSender.open(port, { ssrc: 9999, tag: 'junk' });
    senders.push(garbage);
    const junk: Buffer[] = [Buffer.alloc(0), Buffer.from([0x80]), Buffer.from([0x80, 0x64, 0, 1]), Buffer.alloc(12, 0xff)];
    for (let i = 0; i < 200; i++) junk.push(randomBytes(1 + (i * 37) % 1400));
    for (let i = 0; i < 50; i++) junk.push(Buffer.concat([Buffer.from([0x81, 200 + (i % 5)]), randomBytes(2 + i)]));
    const wrongPt = Buffer.alloc(40);
    wrongPt[0] = 0x80;
    wrongPt[1] = 33;
    wrongPt.writeUInt32BE(4242, 8);
    junk.push(wrongPt);
    for (const b of junk) garbage.socket.send(b, port, '127.0.0.1');
    // A stray sender with the right payload type and another SSRC while the camera is live.
    const stray = await ScriptedSender.open(port, { ssrc: 2222, tag: 'stray' });
    senders.push(stray);
    for (let i = 0; i < 20; i++) stray.send(i === 0);
    await pause(800);
    const after = endpointOf(st, port);
    // Every datagram is counted by what it looked like: not RTP/RTCP/STUN/DTLS at all, malformed
    // RTP or RTCP, an SSRC no source has, STUN on a port without ICE, or DTLS-looking (which a
    // plain RTP port hands to nobody). A random datagram may happen to be valid RTCP: a few spare.
    const ignored = (e: typeof after) => e.demuxUnknown + e.rtpMalformed + e.rtcpMalformed + e.unknownSsrc + e.stunDropped + e.dtlsIn;
    assert.ok(ignored(after) - ignored(before) >= junk.length + 20 - 10, `garbage counted: ${JSON.stringify({ before, after })}`);
    assert.is(after.unknownSsrc - before.unknownSsrc >= 21, true, 'the stray and wrong-payload-type packets counted as unknown SSRC');
    const count = v.received.get('v')!.length;
    assert.ok(await until(() => v.received.get('v')!.length >= count + 10), 'media keeps flowing');
    assert.ok(v.received.get('v')!.every((p) => tagOf(p.rtp.payload) === 'cam'), 'nothing but the camera reached the viewer');
    assert.is(st.plugin.mountpoints.get(mp.id)!.media[0]!.layers[0]!.ssrc, 1111, 'still the camera');
    // The camera restarts with a new SSRC: after `collision` (300 ms) of silence ferry follows it.
    cam.stop();
    const restarted = await ScriptedSender.open(port, { ssrc: 3333, tag: 'restarted' });
    senders.push(restarted);
    restarted.start(30);
    assert.ok(await until(() => v.received.get('v')!.some((p) => tagOf(p.rtp.payload) === 'restarted'), 5000), 'the restarted encoder reaches the viewer');
    assert.is(st.plugin.mountpoints.get(mp.id)!.media[0]!.layers[0]!.ssrc, 3333);
    const got = v.received.get('v')!;
    assert.is(new Set(got.map((p) => p.rtp.header.ssrc)).size, 1, 'the viewer sees one SSRC throughout');
    for (let i = 1; i < got.length; i++) assert.is(got[i]!.rtp.header.sequenceNumber, (got[i - 1]!.rtp.header.sequenceNumber + 1) & 0xffff, 'continuous sequence numbers across the restart');
    assert.ok(await until(() => restarted.plis.length >= 1, 3000), 'the new sender (from another port) was asked for a keyframe');
    assert.is(failures(), 0);
    assert.is(st.f.ferry.engine.stats().workers.reduce((n, w) => n + w.panics, 0), 0, 'no media-thread panic');
    await v.client.close();
  });
});

test('switch between mountpoints, simulcast substreams, pause/start, disable/enable, destroy tells the viewer', async () => {
  await withStreamingTest(async ({ st, admin, peers, senders }) => {
    const one = await videoMountpoint(admin, { secret: 's1' });
    const two = await videoMountpoint(admin, {}, true);
    assert.is(two.ports.length, 3, 'simulcast: three ports');
    const a = await ScriptedSender.open(one.ports[0]!, { ssrc: 10, tag: 'one' });
    senders.push(a);
    a.start(30);
    for (const [i, p] of two.ports.entries()) {
      const s = await ScriptedSender.open(p, { ssrc: 20 + i, tag: `two-l${i}` });
      senders.push(s);
      s.start(30);
    }
    const v = await watch(st.f, one.id, peers);
    const video = () => v.received.get('v')!;
    assert.ok(await until(() => video().length >= 5), 'first mountpoint plays');
    // switch: the same PeerConnection, the other mountpoint, at its keyframe.
    const switched = await v.client.call({ request: 'switch', id: two.id });
    assert.equal(switched.data, { streaming: 'event', result: { switched: 'ok', id: two.id } });
    assert.ok(await until(() => video().some((p) => tagOf(p.rtp.payload) === 'two-l2')), 'the best layer of the second mountpoint plays');
    assert.is(st.plugin.mountpoints.get(one.id)!.viewers.size, 0);
    assert.is(st.plugin.mountpoints.get(two.id)!.viewers.size, 1);
    // configure substream 0: the lowest layer from its next keyframe, announced when it happens.
    const announced = v.client.next((e) => e['plugindata']?.data?.result?.substream === 0);
    const configured = await v.client.call({ request: 'configure', substream: 0 });
    assert.equal(configured.data, { streaming: 'event', result: { event: 'configured' } });
    await announced;
    const mark = video().length;
    assert.ok(await until(() => video().slice(mark).filter((p) => tagOf(p.rtp.payload) === 'two-l0').length >= 5), 'layer 0 plays');
    assert.ok(video().slice(mark + 2).every((p) => tagOf(p.rtp.payload) === 'two-l0'), 'and only layer 0 after the switch');
    // pause / start
    assert.equal((await v.client.call({ request: 'pause' })).data, { streaming: 'event', result: { status: 'pausing' } });
    await pause(200);
    const paused = video().length;
    await pause(400);
    assert.is(video().length, paused, 'nothing while paused');
    assert.equal((await v.client.call({ request: 'start' })).data, { streaming: 'event', result: { status: 'started' } });
    assert.ok(await until(() => video().length > paused + 5), 'media again after start');
    // disable / enable (secret-less mountpoint two)
    assert.equal(await admin.sync({ request: 'disable', id: two.id }), { streaming: 'ok' });
    await pause(200);
    const disabled = video().length;
    await pause(400);
    assert.is(video().length, disabled, 'nothing while disabled');
    const watchDisabled = await (await JanusClient.open(st.f)).send({ request: 'watch', id: two.id });
    assert.is(watchDisabled.data['error_code'], 455, 'a disabled mountpoint takes no new viewers');
    assert.equal(await admin.sync({ request: 'enable', id: two.id }), { streaming: 'ok' });
    assert.ok(await until(() => video().length > disabled + 5), 'media again after enable');
    // destroy with a viewer: `stopped`, then the PeerConnection closes; every port comes back.
    const stopped = v.client.next((e) => e['plugindata']?.data?.result?.status === 'stopped');
    assert.equal(await admin.sync({ request: 'destroy', id: two.id }), { streaming: 'destroyed', id: two.id });
    await stopped;
    await v.client.core('hangup');
    assert.is((await admin.sync({ request: 'destroy', id: one.id }))['error_code'], 453, 'the secret is required');
    assert.equal(await admin.sync({ request: 'destroy', id: one.id, secret: 's1' }), { streaming: 'destroyed', id: one.id });
    assert.ok(await until(() => st.f.ferry.webrtc.count === 0), 'no PeerConnection left');
    assert.is(st.f.ferry.ports.leased, 0, 'no port left');
    await v.client.close();
  });
});

test.run();
