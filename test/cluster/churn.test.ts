// 10^3 join/leave cycles across a three-node ferry cluster (issue 15), signalling only and
// concurrent on the three nodes: participants join and leave on every node (each announced to
// and withdrawn from the others), and subscribers on B and C join and leave a feed published on
// A (each one starting or stopping a cascade). Afterwards: no cascade in or out, no participant
// of another node, no port lease, and in Redis only the room, its lease and the live nodes;
// after `destroy` and the nodes' stop, no key at all.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import type { Json } from '../helpers/http.js';
import { VrClient, publish } from '../videoroom-e2e/harness.js';
import { waitFor, withCluster, type Node } from './harness.js';

const ROOM = 99;
const CYCLES = 1000;

const settled = (s: Json) =>
  (s['cluster']['cascades_in'] as Json[]).length === 0 && (s['cluster']['cascades_out'] as Json[]).length === 0 && s['cluster']['remote_participants'] === 0 && s['port_leases'] === 0;

test(`${CYCLES} join/leave cycles across three nodes leave no cascade, participant, lease or key behind`, async () => {
  await withCluster(['node-a', 'node-b', 'node-c'], async ({ redis, nodes, peers, stopLeavingNoKey }) => {
    const [a, b, c] = nodes as [Node, Node, Node];
    const admin = await VrClient.open(a.proc);
    await admin.sync({ request: 'create', room: ROOM, publishers: 10 });
    const pub = await publish(a.proc, ROOM, 'alice', peers);
    for (const n of [b, c]) {
      const probe = await VrClient.open(n.proc);
      await waitFor(() => probe.sync({ request: 'listparticipants', room: ROOM }), (r) => (r['participants'] as Json[]).some((p) => p['id'] === pub.id && p['publisher'] === true), 5000);
      await probe.close();
    }

    // One worker per node, each with one handle it joins and leaves with, concurrently.
    let done = 0;
    const worker = async (n: Node, index: number) => {
      const client = await VrClient.open(n.proc);
      for (let i = index; i < CYCLES; i += 3) {
        const subscriber = n !== a && i % 2 === 1;
        if (subscriber) {
          const attached = await client.call({ request: 'join', ptype: 'subscriber', room: ROOM, streams: [{ feed: pub.id }] });
          assert.is(attached.jsep?.['type'], 'offer');
          const left = await client.call({ request: 'leave' });
          assert.is(left.data['left'], 'ok');
        } else {
          const joined = await client.call({ request: 'join', ptype: 'publisher', room: ROOM, display: `p${i}` });
          assert.is(joined.data['videoroom'], 'joined');
          const left = await client.call({ request: 'leave' });
          assert.is(left.data['leaving'], 'ok');
        }
        done++;
      }
      await client.close();
    };
    await Promise.all(nodes.map((n, i) => worker(n, i)));
    assert.is(done, CYCLES);
    const started = Number((await b.cluster())['cascades_started']) + Number((await c.cluster())['cascades_started']);
    assert.ok(started > 0, 'the subscribers did start cascades');

    // Alice is the only participant left, the same on every node.
    for (const n of nodes) {
      const probe = await VrClient.open(n.proc);
      const list = await waitFor(() => probe.sync({ request: 'listparticipants', room: ROOM }), (r) => (r['participants'] as Json[]).length === 1, 5000);
      assert.equal(list['participants'], [{ id: pub.id, display: 'alice', publisher: true }], `${n.name}: ${JSON.stringify(list)}`);
      await probe.close();
    }
    for (const n of [b, c]) {
      const cl = await waitFor(() => n.cluster(), (s) => (s['cascades_in'] as Json[]).length === 0, 5000);
      assert.equal(cl['cascades_in'], [], `${n.name}: no cascade in`);
    }
    const out = await waitFor(() => a.cluster(), (s) => (s['cascades_out'] as Json[]).length === 0, 5000);
    assert.equal(out['cascades_out'], [], 'A: no forwarder to another node');
    assert.equal((await admin.sync({ request: 'list_remotes', room: ROOM, publisher_id: pub.id }))['list'], []);

    await pub.client.close();
    await admin.close();
    for (const n of nodes) {
      const st = await waitFor(() => n.status(), settled, 5000);
      assert.ok(settled(st), `${n.name}: ${JSON.stringify({ cluster: st['cluster'], leases: st['port_leases'], pools: st['port_pools'] })}`);
      assert.is(st['sessions'], 0);
    }
    const keys = await waitFor(() => redis.keys(), (k) => k.length === 5, 5000);
    assert.equal(keys.sort(), [`ferry:lease:${ROOM}`, 'ferry:node:node-a', 'ferry:node:node-b', 'ferry:node:node-c', `ferry:room:${ROOM}`]);

    const closer = await VrClient.open(b.proc);
    assert.is((await closer.sync({ request: 'destroy', room: ROOM }))['videoroom'], 'destroyed');
    await closer.close();
    assert.equal((await redis.keys()).sort(), ['ferry:node:node-a', 'ferry:node:node-b', 'ferry:node:node-c']);
    await stopLeavingNoKey();
  });
});

test.run();
