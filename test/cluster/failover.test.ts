// Node loss in a three-node ferry cluster (issue 15): node A, which owns the room and has its
// publisher, is killed with SIGKILL (nothing of its shutdown runs). Within the lease TTL plus a
// margin, the participants on B and C hear Janus's `unpublished` and `leaving` for A's
// publisher, B's and C's cascades from A are gone with their ports, the room has a new owner
// with a higher fencing token, a new publisher on B reaches a subscriber on C, and once A's
// TTLs ran out Redis holds no key that names A.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import type { Json } from '../helpers/http.js';
import { VrClient, payload, publish, sendRtp, subscribe, until } from '../videoroom-e2e/harness.js';
import { LEASE_TTL_S, killNode, waitFor, withCluster, type Node } from './harness.js';

const ROOM = 88;
/** How long node loss may take to show: the TTL, a tick (a third of it), and a generous margin for a loaded machine. */
const LOSS_BOUND_MS = LEASE_TTL_S * 1000 * 3 + 5000;

const ownerOf = async (n: Node) => ((await n.cluster())['room_owners'] as Json[]).find((o) => o['room'] === ROOM);

/** A participant that joined (not publishing), to hear the room's events. */
async function listener(n: Node, display: string): Promise<VrClient> {
  const client = await VrClient.open(n.proc);
  const joined = await client.call({ request: 'join', ptype: 'publisher', room: ROOM, display });
  assert.is(joined.data['videoroom'], 'joined');
  return client;
}

function roomEvent(client: VrClient, key: string, id: number, ms: number): Promise<Json> {
  return client.ws.nextEvent((e) => e['sender'] === client.handleId && e['plugindata']?.data?.[key] === id, ms);
}

test('kill -9 of the node with the room and the publisher: unpublished/leaving elsewhere, a new owner, a new publisher reaches the others, no key names the dead node', async () => {
  await withCluster(['node-a', 'node-b', 'node-c'], async ({ redis, nodes, peers, stopLeavingNoKey }) => {
    const [a, b, c] = nodes as [Node, Node, Node];
    const adminA = await VrClient.open(a.proc);
    // Permanent: the directory keeps it (no rooms_file needed in a cluster).
    const created = await adminA.sync({ request: 'create', room: ROOM, publishers: 4, permanent: true, description: 'kept', secret: 's' });
    assert.equal([created['videoroom'], created['permanent']], ['created', true]);
    const ownerBefore = await waitFor(() => ownerOf(b), (o) => o !== undefined, 3000);
    assert.equal([ownerBefore?.['node'], ownerBefore?.['fence']], ['node-a', 1], 'A owns the room it made (token 1)');

    const pub = await publish(a.proc, ROOM, 'alice', peers);
    const onB = await listener(b, 'bob');
    const onC = await listener(c, 'carol');
    const seenOnC = await waitFor(() => onC.sync({ request: 'listparticipants', room: ROOM }), (r) => (r['participants'] as Json[]).length === 3, 5000);
    assert.is((seenOnC['participants'] as Json[]).length, 3, 'alice, bob and carol on every node');
    const subB = await subscribe(b.proc, ROOM, [{ feed: pub.id }], peers);
    const subC = await subscribe(c.proc, ROOM, [{ feed: pub.id }], peers);
    for (const n of [b, c]) {
      const inc = await waitFor(async () => (await n.cluster())['cascades_in'] as Json[], (l) => l.length === 1 && l[0]!['confirmed'] === true, 5000);
      assert.is(inc.length, 1, `${n.name} receives A's feed`);
    }

    const unpublishedB = roomEvent(onB, 'unpublished', pub.id, LOSS_BOUND_MS);
    const unpublishedC = roomEvent(onC, 'unpublished', pub.id, LOSS_BOUND_MS);
    const leavingB = roomEvent(onB, 'leaving', pub.id, LOSS_BOUND_MS);
    const leavingC = roomEvent(onC, 'leaving', pub.id, LOSS_BOUND_MS);
    // The subscribers' autoupdate: the gone feed is renegotiated away.
    const updatedB = subB.client.ws.nextEvent((e) => e['sender'] === subB.client.handleId && e['plugindata']?.data?.['videoroom'] === 'updated', LOSS_BOUND_MS);
    killNode(a);

    await Promise.all([unpublishedB, unpublishedC, leavingB, leavingC, updatedB]);
    for (const n of [b, c]) {
      const st = await waitFor(() => n.status(), (s) => (s['cluster']['cascades_in'] as Json[]).length === 0, 3000);
      assert.equal(st['cluster']['cascades_in'], [], `${n.name}: the cascade from A is gone`);
      const leases = (st['port_pools'] as Json[]).flatMap((p) => p['leases'] as Json[]);
      assert.ok(!leases.some((l) => String(l['owner']).includes(':cascade:')), `${n.name}: its cascade port is back: ${JSON.stringify(leases)}`);
      assert.ok(!(st['cluster']['nodes'] as Json[]).some((x) => x['node_id'] === 'node-a'), `${n.name} no longer sees A`);
    }
    const ownerAfter = await waitFor(() => ownerOf(b), (o) => o !== undefined && o['node'] !== 'node-a', LOSS_BOUND_MS);
    assert.ok(ownerAfter && ['node-b', 'node-c'].includes(String(ownerAfter['node'])), `a new owner: ${JSON.stringify(ownerAfter)}`);
    assert.ok(Number(ownerAfter!['fence']) > 1, 'with a new fencing token');
    const described = await onC.sync({ request: 'list' });
    assert.is((described['list'] as Json[]).find((r) => r['room'] === ROOM)?.['description'], 'kept', 'the room\'s configuration outlived its owner');
    const list = await onB.sync({ request: 'listparticipants', room: ROOM });
    assert.equal((list['participants'] as Json[]).map((p) => p['display']).sort(), ['bob', 'carol']);

    // A new publisher on B reaches a new subscriber on C.
    const pub2 = await publish(b.proc, ROOM, 'dave', peers);
    await waitFor(() => onC.sync({ request: 'listparticipants', room: ROOM }), (r) => (r['participants'] as Json[]).some((p) => p['id'] === pub2.id && p['publisher'] === true), 5000);
    const sub2 = await subscribe(c.proc, ROOM, [{ feed: pub2.id }], peers);
    await waitFor(async () => (await c.cluster())['cascades_in'] as Json[], (l) => l.length === 1 && l[0]!['confirmed'] === true, 5000);
    for (let i = 0; i < 30; i++) {
      await sendRtp(pub2.audio, 100 + i, i * 960, payload('after', i, 120));
      await sendRtp(pub2.video, 100 + i, i * 3000, payload('after-v', i, 600), true);
    }
    assert.ok(await until(() => sub2.received.get('0')!.length >= 30 && sub2.received.get('1')!.length >= 30, 5000), `C received ${sub2.received.get('0')!.length}/${sub2.received.get('1')!.length}`);
    assert.is(sub2.decryptFailures(), 0);

    // A's keys expire with their TTL: none names it any more.
    const keys = await waitFor(() => redis.keys(), (k) => !k.some((x) => x.includes('node-a')), LOSS_BOUND_MS);
    assert.equal(keys.filter((k) => k.includes('node-a')), [], `keys: ${keys.join(', ')}`);
    const leaseValue = await redis.client.get(`ferry:lease:${ROOM}`);
    assert.ok(leaseValue !== null && !leaseValue.startsWith('node-a|'), `the lease names a live node: ${leaseValue}`);

    for (const client of [sub2.client, subB.client, subC.client, pub2.client, onC]) await client.close();
    assert.is((await onB.sync({ request: 'destroy', room: ROOM, secret: 's', permanent: true }))['videoroom'], 'destroyed');
    await onB.close();
    await stopLeavingNoKey();
  });
});

test.run();
