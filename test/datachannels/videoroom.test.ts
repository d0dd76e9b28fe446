// VideoRoom data streams end to end: a werift publisher publishes a data
// channel, werift subscribers get one m=application and every publisher's
// messages on a channel labelled with the publisher's id (as Janus 1.x relays
// them); switch, unsubscribe and configure send:false cover the data m-line.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RTCDataChannel, RTCPeerConnection } from 'werift';

import { ferryStatus, waitUntilIdle } from '../helpers/ferry.js';
import { closePeer, connectionState, loopbackPeer } from '../helpers/werift.js';
import { VrClient, startVrFerry, type VrFerry } from '../videoroom-e2e/harness.js';
import { channelOpen, until } from './helpers.js';

const ROOM = 4321;
let vr: VrFerry;
const peers: RTCPeerConnection[] = [];
const clients: VrClient[] = [];
/** Any peer, to close the werift sockets left bound (closePeer closes them all). */
let anyPeer: RTCPeerConnection | null = null;

test.before(async () => {
  vr = await startVrFerry({}, { rooms: [{ room: ROOM, publishers: 10 }] });
});

test.after(async () => {
  for (const c of clients) await c.close();
  for (const pc of peers.splice(0)) await pc.close().catch(() => undefined);
  if (anyPeer) await closePeer(anyPeer);
  await vr.stop();
});

interface DataPublisher {
  client: VrClient;
  id: number;
  pc: RTCPeerConnection;
  dc: RTCDataChannel;
}

/** A werift publisher of one data channel only (janus.js `data: true` without media does the same). */
async function publishData(display: string): Promise<DataPublisher> {
  const client = await VrClient.open(vr.f);
  clients.push(client);
  const pc = loopbackPeer();
  peers.push(pc);
  anyPeer = pc;
  const dc = pc.createDataChannel('JanusDataChannel');
  await pc.setLocalDescription(await pc.createOffer());
  const joined = await client.call({ request: 'joinandconfigure', ptype: 'publisher', room: ROOM, display }, { type: 'offer', sdp: pc.localDescription!.sdp });
  await pc.setRemoteDescription(joined.jsep as never);
  await connectionState(pc, 'connected');
  await channelOpen(dc);
  return { client, id: joined.data['id'] as number, pc, dc };
}

interface DataSubscriber {
  client: VrClient;
  pc: RTCPeerConnection;
  /** Messages by the label of the channel they came on. */
  got: Map<string, (string | Buffer)[]>;
  streams: Record<string, any>[];
}

async function subscribe(streams: Record<string, unknown>[]): Promise<DataSubscriber> {
  const client = await VrClient.open(vr.f);
  clients.push(client);
  const pc = loopbackPeer();
  peers.push(pc);
  const got = new Map<string, (string | Buffer)[]>();
  pc.onDataChannel.subscribe((dc) => {
    const list = got.get(dc.label) ?? [];
    got.set(dc.label, list);
    dc.onMessage.subscribe((m) => list.push(m));
  });
  const attached = await client.call({ request: 'join', ptype: 'subscriber', room: ROOM, streams });
  assert.match(String(attached.jsep?.['sdp']), /m=application \d+ UDP\/DTLS\/SCTP webrtc-datachannel/);
  await pc.setRemoteDescription(attached.jsep as never);
  await pc.setLocalDescription(await pc.createAnswer());
  await client.call({ request: 'start' }, { type: 'answer', sdp: pc.localDescription!.sdp });
  await connectionState(pc, 'connected');
  await waitDataReady(client);
  return { client, pc, got, streams: attached.data['streams'] as Record<string, any>[] };
}

/** Until ferry's subscriber says its data m-line is ready (its SCTP association is up), bounded. */
async function waitDataReady(client: VrClient): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const info = (await vr.f.admin.post('', { janus: 'handle_info', session_id: client.sessionId, handle_id: client.handleId, admin_secret: vr.f.config.auth.admin_secret })) as Record<string, any>;
    if (info['info']?.plugin_specific?.data?.ready === true) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('subscriber data channel not ready');
}

test('one publisher\'s data reaches 5 subscribers on a channel labelled with its id, text and binary, in order', async () => {
  const pub = await publishData('alice');
  const subs: DataSubscriber[] = [];
  for (let i = 0; i < 5; i++) subs.push(await subscribe([{ feed: pub.id }]));
  const data = subs[0]!.streams.find((s) => s['type'] === 'data');
  assert.ok(data, 'the data m-line is listed');
  assert.is(data!['sources'], 1);
  assert.equal(data!['source_ids'], [pub.id]);
  const sent: (string | Buffer)[] = [];
  for (let i = 0; i < 100; i++) {
    const m = i % 5 === 4 ? Buffer.from([1, 2, 3, i]) : `msg ${i}`;
    sent.push(m);
    pub.dc.send(m);
  }
  const label = String(pub.id);
  for (const sub of subs) {
    await until(() => (sub.got.get(label)?.length ?? 0) >= sent.length, 10_000, () => `${sub.got.get(label)?.length ?? 0} of ${sent.length} on ${label}`);
    const got = sub.got.get(label)!;
    got.forEach((m, i) => {
      const want = sent[i]!;
      if (typeof want === 'string') assert.is(m, want);
      else assert.ok(Buffer.isBuffer(m) && m.equals(want));
    });
  }
  const status = await ferryStatus(vr.f);
  assert.is(status['data_channels'].associations, 6);
});

test('two publishers on one data m-line; switch, configure send:false and unsubscribe of data', async () => {
  const bob = await publishData('bob');
  const carol = await publishData('carol');
  const sub = await subscribe([{ feed: bob.id }, { feed: carol.id }]);
  const dataStreams = sub.streams.filter((s) => s['type'] === 'data');
  assert.is(dataStreams.length, 1, 'one m=application for both feeds');
  const dataMid = String(dataStreams[0]!['mid']);
  assert.is(dataStreams[0]!['sources'], 2);
  const count = (who: DataPublisher) => sub.got.get(String(who.id))?.length ?? 0;
  bob.dc.send('from bob');
  carol.dc.send('from carol');
  await until(() => count(bob) === 1 && count(carol) === 1, 5000, () => `bob ${count(bob)}, carol ${count(carol)}`);
  // switch: the data m-line now takes carol's data only (her data-only offer made it mid 0).
  const switched = (await sub.client.call({ request: 'switch', streams: [{ feed: carol.id, mid: '0', sub_mid: dataMid }] })).data;
  assert.is(switched['switched'], 'ok');
  bob.dc.send('bob again');
  carol.dc.send('carol again');
  await until(() => count(carol) === 2, 5000, () => `carol ${count(carol)}`);
  assert.is(count(bob), 1, 'bob is no longer relayed');
  // configure send:false pauses the data m-line; send:true resumes it.
  // A second subscriber of carol's proves ferry has handled 'not relayed' before send:true:
  // carol's SCTP message may otherwise arrive after both requests.
  const witness = await subscribe([{ feed: carol.id }]);
  const witnessed = () => witness.got.get(String(carol.id))?.length ?? 0;
  await sub.client.call({ request: 'configure', streams: [{ mid: dataMid, send: false }] });
  carol.dc.send('not relayed');
  await until(() => witnessed() === 1, 5000, () => `witness ${witnessed()}`);
  await sub.client.call({ request: 'configure', streams: [{ mid: dataMid, send: true }] });
  carol.dc.send('relayed');
  await until(() => count(carol) === 3, 5000, () => `carol ${count(carol)}`);
  assert.is(sub.got.get(String(carol.id))!.at(-1), 'relayed');
  // unsubscribe from carol's data: nothing more arrives, the m-line stays.
  const updated = await sub.client.call({ request: 'unsubscribe', streams: [{ feed: carol.id }] });
  assert.ok(updated.data['videoroom'] === 'updated' || updated.data['videoroom'] === 'updating');
  if (updated.jsep) {
    await sub.pc.setRemoteDescription(updated.jsep as never);
    await sub.pc.setLocalDescription(await sub.pc.createAnswer());
    await sub.client.call({ request: 'start' }, { type: 'answer', sdp: sub.pc.localDescription!.sdp });
  }
  carol.dc.send('after unsubscribe');
  await new Promise((r) => setTimeout(r, 300));
  assert.is(count(carol), 3);
});

test('everything ends with its handles: no association or channel left', async () => {
  for (const c of clients.splice(0)) await c.close();
  for (const pc of peers.splice(0)) await pc.close().catch(() => undefined);
  const idle = await waitUntilIdle(vr.f);
  assert.is(idle['data_channels'].associations, 0);
  assert.is(idle['data_channels'].channels, 0);
  assert.is(idle['data_channels'].timers, 0);
});

test.run();
