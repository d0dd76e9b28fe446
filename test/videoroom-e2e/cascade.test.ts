// Cascading on loopback (Janus PR #3014 APIs) between two ferries that share
// nothing: A runs in this test process, B is a separate ferry process
// (`node dist/src/main.js`, issue 5). Publishers on A are sent to B with
// `publish_remotely` towards ports B gave out with `add_remote_publisher`;
// werift subscribers on B receive them. Both remote publishers use the Janus
// SSRC scheme (1000 + 10 × mindex), so switching between them is lessons §4 /
// Janus #3444. B's internals live in another process: its port leases are
// read through its Admin API (`ferry_status`).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RTCPeerConnection } from 'werift';

import { mediaRange } from '../helpers/ferry.js';
import { startFerryProcess, type FerryProcess } from '../helpers/ferryProcess.js';
import type { Json } from '../helpers/http.js';
import { assertReceivedAsSent } from './checks.js';
import { VrClient, closeAll, payload, publish, receivedAll, sendAudioVideo, sendRtp, startVrFerry, subscribe, until, type SentMedia, type VrFerry, type WeriftPublisher } from './harness.js';

const SWITCHES = 100;
const PER_PHASE = 10;
const STREAMS = [
  { type: 'audio', mindex: 0, mid: '0', codec: 'opus' },
  { type: 'video', mindex: 1, mid: '1', codec: 'vp8' },
];

// B runs on its embedded defaults apart from loopback, so its Admin secret is Janus's sample one.
const ADMIN_SECRET_B = 'janusoverlord';

/** A in this process, B as a child process, on disjoint 25-port halves of this process's range, given explicitly. */
async function twoFerries(): Promise<[VrFerry, FerryProcess]> {
  const range = mediaRange(50);
  const a = await startVrFerry({ media: { rtp_port_min: range.rtp_port_min, rtp_port_max: range.rtp_port_min + 24 } });
  const b = await startFerryProcess({ media: { rtp_port_min: range.rtp_port_min + 25, rtp_port_max: range.rtp_port_max } }).catch(async (err) => {
    await a.stop();
    throw err;
  });
  return [a, b];
}

/** B's `ferry_status` over its Admin HTTP API. */
async function statusOf(b: FerryProcess): Promise<Json> {
  const reply = await b.admin.post('', { janus: 'ferry_status', admin_secret: ADMIN_SECRET_B });
  assert.is(reply['janus'], 'success', JSON.stringify(reply));
  return reply['status'] as Json;
}

/** B's leases from its own port pools (owner names as PortPool records them). */
async function leasesOf(b: FerryProcess): Promise<{ port: number; owner: string }[]> {
  const status = await statusOf(b);
  const pools = status['port_pools'] as { leases: { port: number; owner: string }[] }[];
  return pools.flatMap((p) => p.leases);
}

/** Stops both; B's exit status is checked even when A's stop fails. */
async function stopBoth(a: VrFerry, b: FerryProcess): Promise<void> {
  const results = await Promise.allSettled([a.stop(), b.stop()]);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}

/** `add_remote_publisher` on B, then `publish_remotely` of `pub` on A towards the port B gave. */
async function cascade(adminA: VrClient, adminB: VrClient, pub: WeriftPublisher, remoteId: number): Promise<number> {
  const added = await adminB.sync({ request: 'add_remote_publisher', room: 2, id: remoteId, display: `remote-${remoteId}`, streams: STREAMS });
  assert.is(added['videoroom'], 'success', JSON.stringify(added));
  const remotely = await adminA.sync({ request: 'publish_remotely', room: 1, publisher_id: pub.id, remote_id: `to-b-${remoteId}`, host: '127.0.0.1', port: added['port'] });
  assert.equal(remotely, { videoroom: 'success', room: 1, id: pub.id, remote_id: `to-b-${remoteId}` });
  return added['port'] as number;
}

test('publisher on A, publish_remotely to B, a werift subscriber on B receives it intact', async () => {
  const [a, b] = await twoFerries();
  const peers: RTCPeerConnection[] = [];
  try {
    const adminA = await VrClient.open(a.f);
    const adminB = await VrClient.open(b);
    await adminA.sync({ request: 'create', room: 1 });
    await adminB.sync({ request: 'create', room: 2 });
    const pub = await publish(a.f, 1, 'alice', peers);
    const port = await cascade(adminA, adminB, pub, 7001);
    assert.ok(port >= b.config.media.rtp_port_min && port <= b.config.media.rtp_port_max, 'B leased from its own range');
    assert.ok((await leasesOf(b)).some((l) => l.port === port && l.owner.includes(':remote:')), "B's Admin API shows the remote publisher's lease");
    const sub = await subscribe(b, 2, [{ feed: 7001 }], peers);
    assert.equal(sub.streams.map((s) => [s['feed_id'], s['feed_display'], s['codec']]), [[7001, 'remote-7001', 'opus'], [7001, 'remote-7001', 'vp8']]);
    const expected = { audio: [] as Buffer[], video: [] as Buffer[] };
    for (let i = 0; i < 200; i++) {
      expected.audio.push(payload('audio', i, 150));
      expected.video.push(payload('video', i, 900));
      await sendRtp(pub.audio, 50 + i, i * 960, expected.audio[i]!);
      await sendRtp(pub.video, 60 + i, i * 3000, expected.video[i]!, true);
      if (i % 20 === 19) await until(() => sub.received.get('1')!.length > i - 5, 2000, 2);
    }
    const ok = await until(() => sub.received.get('0')!.length >= 200 && sub.received.get('1')!.length >= 200, 5000);
    assert.ok(ok, `received ${sub.received.get('0')!.length} audio / ${sub.received.get('1')!.length} video; B: ${JSON.stringify(await statusOf(b))}`);
    assertReceivedAsSent(sub, expected);
    // Tear-down as Janus documents it: unpublish_remotely on A, remove_remote_publisher on B.
    await adminA.sync({ request: 'unpublish_remotely', room: 1, publisher_id: pub.id, remote_id: 'to-b-7001' });
    await adminB.sync({ request: 'remove_remote_publisher', room: 2, id: 7001 });
    const autoupdate = await sub.client.ws.nextEvent((e) => e['sender'] === sub.client.handleId && e['plugindata']?.data?.['videoroom'] === 'updated', 5000);
    assert.ok(autoupdate['jsep'], 'the subscriber gets an updated offer without the gone feed');
    assert.ok(!a.f.ferry.ports.list().some((l) => l.owner.includes(':remotize:')), 'A: the forwarder port is back');
    assert.is(a.f.ferry.ports.leased, 1, "A: only the publisher's PeerConnection holds a port");
    const leftB = await leasesOf(b);
    assert.ok(!leftB.some((l) => l.owner.includes(':remote:')), `B: the remote publisher port is back: ${JSON.stringify(leftB)}`);
    assert.is(leftB.length, 1, `B: only the subscriber's PeerConnection holds a port: ${JSON.stringify(leftB)}`);
  } finally {
    await closeAll(peers);
    await stopBoth(a, b);
  }
});

test(`two remote publishers on B with the same SSRC scheme: a subscriber switches ${SWITCHES} times without SRTP failure or gap`, async () => {
  const [a, b] = await twoFerries();
  const peers: RTCPeerConnection[] = [];
  try {
    const adminA = await VrClient.open(a.f);
    const adminB = await VrClient.open(b);
    await adminA.sync({ request: 'create', room: 1, publishers: 4 });
    await adminB.sync({ request: 'create', room: 2, publishers: 4 });
    const p1 = await publish(a.f, 1, 'one', peers);
    const p2 = await publish(a.f, 1, 'two', peers);
    await cascade(adminA, adminB, p1, 8001);
    await cascade(adminA, adminB, p2, 8002);
    const sub = await subscribe(b, 2, [{ feed: 8001 }], peers);
    const remoteOf = new Map([[p1, 8001], [p2, 8002]]);
    const state = new Map([[p1, { seq: 100, ts: 5000 }], [p2, { seq: 100, ts: 5000 }]]);
    const expected: SentMedia = { audio: [], video: [] };
    let current = p1;
    for (let phase = 0; phase <= SWITCHES; phase++) {
      if (phase > 0) {
        current = current === p1 ? p2 : p1;
        const feed = remoteOf.get(current)!;
        const switched = await sub.client.call({ request: 'switch', streams: [{ feed, mid: '0', sub_mid: '0' }, { feed, mid: '1', sub_mid: '1' }] });
        assert.is(switched.data['changes'], 2);
      }
      // Both publishers start from the same sequence and timestamp, and reach B with the same SSRCs:
      // only the source identity tells them apart.
      const st = state.get(current)!;
      const tag = current === p1 ? 'one' : 'two';
      const payloads = (i: number) => ({ audio: payload(`${tag}-a-${phase}`, i, 100), video: payload(`${tag}-v-${phase}`, i, 600) });
      await sendAudioVideo(current, st, PER_PHASE, payloads, expected);
      const delivered = await until(() => receivedAll(sub, expected), 5000, 2);
      if (!delivered) {
        // Where the packets stopped: A's engine (in this process) and B's (over its Admin API).
        const engineA = a.f.ferry.engine.stats();
        const why = { a: { sources: engineA.sources, outputs: engineA.outputs }, b: (await statusOf(b))['engine'] };
        assert.unreachable(`phase ${phase}: ${sub.received.get('0')!.length}/${expected.audio.length} audio, ${sub.received.get('1')!.length}/${expected.video.length} video; ${JSON.stringify(why)}`);
      }
    }
    assertReceivedAsSent(sub, expected);
    // B's engine counters, read from its Admin API: nothing failed SRTP or arrived with an unclaimed SSRC.
    const engineB = (await statusOf(b))['engine'] as Record<string, number>;
    assert.is(engineB['srtpAuthFailures'], 0, `B: no SRTP auth failures (${JSON.stringify(engineB)})`);
    assert.is(engineB['srtcpFailures'], 0, 'B: no SRTCP failures');
    assert.is(engineB['unknownSsrc'], 0, 'B: every cascaded packet matched a source');
    assert.is(engineB['panics'], 0);
    const leasesB = await leasesOf(b);
    assert.is(leasesB.filter((l) => l.owner.includes(':remote:')).length, 2, `B: one lease per remote publisher: ${JSON.stringify(leasesB)}`);
  } finally {
    await closeAll(peers);
    await stopBoth(a, b);
  }
});

test.run();
