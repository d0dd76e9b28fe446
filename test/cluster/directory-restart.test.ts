// The directory's Redis restarts empty (no persistence) under a running two-node cluster
// (issue 15): while it is away the nodes keep their rooms and participants and report it
// (Admin `cluster.redis`, /metrics `ferry_cluster_redis_up`); when it is back, they notice the
// new server, register the rooms and their participants again, and events flow as before.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import type { Json } from '../helpers/http.js';
import { VrClient } from '../videoroom-e2e/harness.js';
import { LEASE_TTL_S, startNodes, startRedis, stopNodes, waitFor, type Node, type RedisServer } from './harness.js';

const ROOM = 55;
const BOUND_MS = LEASE_TTL_S * 1000 * 3 + 5000;

const names = async (client: VrClient) => ((await client.sync({ request: 'listparticipants', room: ROOM }))['participants'] as Json[]).map((p) => p['display']).sort();

test('Redis restarts empty: rooms and participants are registered again, nothing is dropped, events flow', async () => {
  let redis: RedisServer | null = await startRedis();
  let nodes: Node[] = [];
  try {
    nodes = await startNodes(['node-a', 'node-b'], redis.url);
    const [a, b] = nodes as [Node, Node];
    const alice = await VrClient.open(a.proc);
    assert.is((await alice.sync({ request: 'create', room: ROOM, description: 'survivor' }))['videoroom'], 'created');
    await alice.call({ request: 'join', ptype: 'publisher', room: ROOM, display: 'alice' });
    const bob = await VrClient.open(b.proc);
    await bob.call({ request: 'join', ptype: 'publisher', room: ROOM, display: 'bob' });
    assert.equal(await waitFor(() => names(alice), (n) => n.length === 2, 5000), ['alice', 'bob']);

    const port = redis.port;
    await redis.stop();
    redis = null;
    const down = await waitFor(() => a.cluster(), (c) => c['redis'] === 'disconnected', 5000);
    assert.is(down['redis'], 'disconnected');
    const metrics = await (await fetch(`http://127.0.0.1:${a.proc.addresses.adminHttp!.port}/metrics`)).text();
    assert.match(metrics, /^ferry_cluster_redis_up 0$/m);
    // Local requests still work meanwhile.
    assert.equal(await names(bob), ['alice', 'bob']);

    redis = await startRedis(port);
    const back = redis;
    const keys = await waitFor(() => back.keys(), (k) => ['ferry:room:55', 'ferry:lease:55', 'ferry:node:node-a', 'ferry:node:node-b', 'ferry:feeds:node-a', 'ferry:feeds:node-b'].every((x) => k.includes(x)), BOUND_MS);
    assert.equal(keys.sort(), ['ferry:feeds:node-a', 'ferry:feeds:node-b', 'ferry:lease:55', 'ferry:node:node-a', 'ferry:node:node-b', 'ferry:room:55']);
    assert.is((await waitFor(() => a.cluster(), (c) => c['redis'] === 'connected', 5000))['redis'], 'connected');
    const config = JSON.parse((await back.client.hget('ferry:room:55', 'config')) ?? '{}') as Json;
    assert.is(config['description'], 'survivor', 'the room registered again with its configuration');
    assert.equal(await names(alice), ['alice', 'bob'], 'nobody was dropped');
    assert.equal(await names(bob), ['alice', 'bob']);

    // Events flow again: a participant joining on B is seen on A.
    const carol = await VrClient.open(b.proc);
    await carol.call({ request: 'join', ptype: 'publisher', room: ROOM, display: 'carol' });
    assert.equal(await waitFor(() => names(alice), (n) => n.length === 3, 5000), ['alice', 'bob', 'carol']);

    for (const c of [carol, bob]) await c.close();
    assert.is((await alice.sync({ request: 'destroy', room: ROOM }))['videoroom'], 'destroyed');
    await alice.close();
    await stopNodes(nodes);
    nodes = [];
    assert.equal(await back.keys(), []);
  } finally {
    await stopNodes(nodes).catch(() => undefined);
    await redis?.stop();
  }
});

test.run();
