// A three-node ferry cluster (issue 15) on loopback: real redis-server, three ferry processes.
// A werift publisher on node A, werift subscribers on B and C: each of B and C receives the
// feed intact (decrypted by werift) over exactly one cascade, as A's and B's/C's Admin
// ferry_status show; ten more subscribers on B add no cascade; when C's last subscriber
// leaves, C's cascade and its port are released and A stops sending there. The room's
// directory entries in Redis are all that is left, and then nothing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { JanusWs, type Json } from '../helpers/http.js';
import { assertReceivedAsSent } from '../videoroom-e2e/checks.js';
import { VrClient, payload, publish, sendRtp, subscribe, until, type SentMedia, type WeriftSubscriber } from '../videoroom-e2e/harness.js';
import { waitFor, withCluster, type Node } from './harness.js';

const ROOM = 77;
const PACKETS = 120;

const cascadesOut = async (n: Node, feed: number) => ((await n.cluster())['cascades_out'] as Json[]).filter((c) => c['feed'] === feed);
const cascadesIn = async (n: Node) => (await n.cluster())['cascades_in'] as Json[];
const leases = async (n: Node) => ((await n.status())['port_pools'] as Json[]).flatMap((p) => p['leases'] as Json[]);

/** Sends audio+video from the publisher, paced on what both subscribers received. */
async function sendAndCheck(pub: Awaited<ReturnType<typeof publish>>, subs: WeriftSubscriber[]): Promise<SentMedia> {
  const sent: SentMedia = { audio: [], video: [] };
  for (let i = 0; i < PACKETS; i++) {
    sent.audio.push(payload('cl-audio', i, 150));
    sent.video.push(payload('cl-video', i, 900));
    await sendRtp(pub.audio, 500 + i, i * 960, sent.audio[i]!);
    await sendRtp(pub.video, 700 + i, i * 3000, sent.video[i]!, true);
    if (i % 20 === 19) await until(() => subs.every((s) => s.received.get('1')!.length > i - 5), 2000, 2);
  }
  const all = await until(() => subs.every((s) => s.received.get('0')!.length >= PACKETS && s.received.get('1')!.length >= PACKETS), 5000);
  assert.ok(all, `received: ${subs.map((s) => `${s.received.get('0')!.length}/${s.received.get('1')!.length}`).join(', ')}`);
  return sent;
}

test('publisher on A, subscribers on B and C: one cascade each, media intact; 10 more on B add none; C releases when its last leaves', async () => {
  await withCluster(['node-a', 'node-b', 'node-c'], async ({ redis, nodes, peers, stopLeavingNoKey }) => {
    const [a, b, c] = nodes as [Node, Node, Node];
    for (const n of nodes) assert.is(((await n.cluster())['nodes'] as Json[]).length >= 1, true);
    const seen = await waitFor(() => a.cluster(), (s) => (s['nodes'] as Json[]).length === 3, 5000);
    assert.is((seen['nodes'] as Json[]).length, 3, `A sees three nodes: ${JSON.stringify(seen['nodes'])}`);

    // The room is made on A, and exists on every node (the directory answers).
    const adminA = await VrClient.open(a.proc);
    const adminB = await VrClient.open(b.proc);
    const adminC = await VrClient.open(c.proc);
    assert.is((await adminA.sync({ request: 'create', room: ROOM, publishers: 4 }))['videoroom'], 'created');
    assert.is((await adminC.sync({ request: 'exists', room: ROOM }))['exists'], true);
    assert.is((await adminB.sync({ request: 'create', room: ROOM }))['error_code'], 427, 'the id is taken cluster-wide');
    const listed = await adminB.sync({ request: 'list' });
    assert.ok((listed['list'] as Json[]).some((r) => r['room'] === ROOM), 'B lists the room made on A');
    assert.is((await adminB.sync({ request: 'edit', room: ROOM, new_description: 'edited on B' }))['videoroom'], 'edited');
    const onC = await waitFor(() => adminC.sync({ request: 'list' }), (r) => (r['list'] as Json[]).some((x) => x['room'] === ROOM && x['description'] === 'edited on B'), 3000);
    assert.ok((onC['list'] as Json[]).some((x) => x['room'] === ROOM && x['description'] === 'edited on B'), 'C sees the edit made on B');

    // A session of one node is unknown to another: Janus's 458, not a crash.
    const wsB = await JanusWs.connect(b.proc.wsUrl);
    const foreign = await wsB.request({ janus: 'attach', session_id: adminA.sessionId, plugin: 'janus.plugin.videoroom' });
    assert.is(foreign['error']?.code, 458, JSON.stringify(foreign));
    await wsB.close();

    const pub = await publish(a.proc, ROOM, 'alice', peers);
    const onB = await waitFor(() => adminB.sync({ request: 'listparticipants', room: ROOM }), (r) => (r['participants'] as Json[]).some((p) => p['id'] === pub.id && p['publisher'] === true), 5000);
    assert.equal((onB['participants'] as Json[]).find((p) => p['id'] === pub.id), { id: pub.id, display: 'alice', publisher: true }, 'B lists A\'s publisher as A does');
    const onA = await adminA.sync({ request: 'listparticipants', room: ROOM });
    assert.equal(onA['participants'], onB['participants'], 'listparticipants is the same on A and B');

    const subB = await subscribe(b.proc, ROOM, [{ feed: pub.id }], peers);
    const subC = await subscribe(c.proc, ROOM, [{ feed: pub.id }], peers);
    assert.equal(subB.streams.map((s) => [s['feed_id'], s['feed_display'], s['codec']]), [[pub.id, 'alice', 'opus'], [pub.id, 'alice', 'vp8']]);
    const out = await waitFor(() => cascadesOut(a, pub.id), (l) => l.length === 2, 5000);
    assert.equal(out.map((x) => x['to']).sort(), ['node-b', 'node-c'], `A sends the feed once to each node: ${JSON.stringify(out)}`);
    for (const n of [b, c]) {
      const inc = await waitFor(() => cascadesIn(n), (l) => l.length === 1 && l[0]!['confirmed'] === true, 5000);
      assert.is(inc.length, 1, `${n.name}: one cascade in`);
      assert.equal([inc[0]!['feed'], inc[0]!['from']], [pub.id, 'node-a']);
    }

    // The same view in /metrics (on the Admin listener).
    const metrics = await (await fetch(`http://127.0.0.1:${a.proc.addresses.adminHttp!.port}/metrics`)).text();
    assert.match(metrics, /^ferry_cluster_nodes 3$/m);
    assert.match(metrics, /^ferry_cluster_cascades_out 2$/m);
    assert.match(metrics, /^ferry_cluster_redis_up 1$/m);
    assert.match(metrics, /^ferry_cluster_rooms_owned 1$/m);

    const sent = await sendAndCheck(pub, [subB, subC]);
    assertReceivedAsSent(subB, sent);
    assertReceivedAsSent(subC, sent);
    for (const n of [a, b, c]) {
      const engine = (await n.status())['engine'] as Record<string, number>;
      assert.is(engine['srtpAuthFailures'], 0, `${n.name}: no SRTP failures (cascade legs are SRTP)`);
      assert.is(engine['panics'], 0);
    }

    // Ten more subscribers on B (each its own session and offer) share B's one cascade.
    const more: VrClient[] = [];
    for (let i = 0; i < 10; i++) {
      const client = await VrClient.open(b.proc);
      const attached = await client.call({ request: 'join', ptype: 'subscriber', room: ROOM, streams: [{ feed: pub.id }] });
      assert.is(attached.jsep?.['type'], 'offer');
      more.push(client);
    }
    await new Promise((r) => setTimeout(r, 300));
    assert.is((await cascadesIn(b)).length, 1, 'B: still one cascade');
    assert.is((await cascadesOut(a, pub.id)).length, 2, 'A: still one forwarder per node');
    const remotes = await adminA.sync({ request: 'list_remotes', room: ROOM, publisher_id: pub.id });
    assert.is((remotes['list'] as Json[]).length, 2, 'A\'s own list_remotes agrees');
    for (const m of more) await m.close();

    // C's last subscriber leaves: C's cascade and its port go, A stops sending to C; B keeps its own.
    await subC.client.call({ request: 'leave' });
    await subC.client.close();
    const incC = await waitFor(() => cascadesIn(c), (l) => l.length === 0, 5000);
    assert.is(incC.length, 0, 'C: no cascade left');
    const leasesC = await waitFor(() => leases(c), (l) => l.length === 0, 5000);
    assert.equal(leasesC, [], 'C: every port back');
    const outAfter = await waitFor(() => cascadesOut(a, pub.id), (l) => l.length === 1, 5000);
    assert.equal(outAfter.map((x) => x['to']), ['node-b']);
    assert.is((await cascadesIn(b)).length, 1, 'B keeps its cascade');

    // Everyone leaves: no participant, cascade or port anywhere; Redis holds the room and the nodes only.
    await subB.client.close();
    await pub.client.close();
    for (const n of [a, b, c]) {
      const st = await waitFor(() => n.status(), (s) => (s['cluster']['cascades_in'] as Json[]).length === 0 && (s['cluster']['cascades_out'] as Json[]).length === 0 && s['cluster']['remote_participants'] === 0 && s['port_leases'] === 0, 5000);
      assert.is(st['port_leases'], 0, `${n.name}: no port lease: ${JSON.stringify(st['port_pools'])}`);
      assert.is(st['cluster']['remote_participants'], 0, `${n.name}: no participant of another node`);
    }
    const keysLeft = await waitFor(() => redis.keys(), (k) => !k.some((x) => x.startsWith('ferry:feeds:')), 5000);
    assert.equal(keysLeft.sort(), ['ferry:lease:77', 'ferry:node:node-a', 'ferry:node:node-b', 'ferry:node:node-c', 'ferry:room:77']);
    // C stops: its keys are gone when it has exited (not a TTL later), and the others forget it at once.
    await adminC.close();
    await c.proc.stop();
    assert.equal((await redis.keys()).filter((k) => k.includes('node-c')), [], 'nothing names C once it stopped');
    const seenByA = await waitFor(() => a.cluster(), (s) => (s['nodes'] as Json[]).length === 2, 3000, 50);
    assert.equal((seenByA['nodes'] as Json[]).map((n) => n['node_id']).sort(), ['node-a', 'node-b']);
    assert.is((await adminB.sync({ request: 'destroy', room: ROOM }))['videoroom'], 'destroyed');
    assert.is((await adminA.sync({ request: 'exists', room: ROOM }))['exists'], false);
    await adminA.close();
    await adminB.close();
    await stopLeavingNoKey();
  });
});

test.run();
