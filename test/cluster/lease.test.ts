// Room leases with fencing tokens (src/cluster/RoomLease.ts) against a real redis-server: a
// free lease is taken with a new token, a held one is refused to others, an expired one goes
// to the next node with a higher token, and the old holder can neither renew nor release it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { ClusterDirectory } from '../../src/cluster/ClusterDirectory.js';
import { RoomLeases, parseLease } from '../../src/cluster/RoomLease.js';
import { nodeRanges, startNode, startRedis, stopNodes } from './harness.js';

const TTL_MS = 300;

test('leases: exclusive, expiring, fenced; a stale owner cannot renew or release; no key outlives its room', async () => {
  const redis = await startRedis();
  const d1 = new ClusterDirectory(redis.url, 'n1', TTL_MS);
  const d2 = new ClusterDirectory(redis.url, 'n2', TTL_MS);
  try {
    await d1.connect();
    await d2.connect();
    const l1 = new RoomLeases(d1.redis, 'n1', TTL_MS, d1.roomTtlMs);
    const l2 = new RoomLeases(d2.redis, 'n2', TTL_MS, d2.roomTtlMs);
    assert.is(await l1.acquire(5), null, 'no lease on a room the directory does not have');
    assert.ok(await d1.createRoom({ room: 5, description: 'five' }, true), 'created, owned by n1 with token 1');
    assert.not.ok(await d2.createRoom({ room: 5 }, true), 'created once only');
    l1.adopt(5, 1);
    assert.is(await l2.acquire(5), null, 'held by n1');
    assert.is(await l1.acquire(5), 1, 'n1 renews its own (same token)');
    assert.equal(await l1.renewAll(), [], 'renewed');

    // n1 stops renewing (paused, dead): the lease expires and n2 takes it with token 2.
    await new Promise((r) => setTimeout(r, TTL_MS + 150));
    assert.is(await redis.client.get('ferry:lease:5'), null, 'expired');
    assert.is(await l2.acquire(5), 2);
    assert.equal(parseLease(await redis.client.get('ferry:lease:5')), { node: 'n2', fence: 2 });
    // n1 wakes up: its renewal is refused and it learns it lost the room; its release deletes nothing.
    assert.equal(await l1.renewAll(), [5]);
    assert.is(l1.owned.size, 0);
    l1.adopt(5, 1);
    await l1.releaseAll();
    assert.equal(parseLease(await redis.client.get('ferry:lease:5')), { node: 'n2', fence: 2 }, 'still n2\'s');
    await l2.releaseAll();
    assert.is(await redis.client.get('ferry:lease:5'), null, 'released by its holder');
    assert.is(await l1.acquire(5), 3, 'tokens only grow');

    // A room that is not permanent lives while its owner renews it.
    assert.ok(await d1.createRoom({ room: 6 }, false));
    l1.adopt(6, 1);
    assert.ok((await redis.client.pttl('ferry:room:6')) > 0, 'a TTL');
    assert.is(await redis.client.pttl('ferry:room:5'), -1, 'a permanent room has none');
    await l1.releaseAll();
    await new Promise((r) => setTimeout(r, d1.roomTtlMs + 150));
    assert.equal((await redis.keys()).sort(), ['ferry:room:5'], 'the other room and every lease are gone');
    await d1.deleteRoom(5);
    assert.equal(await redis.keys(), []);
  } finally {
    await d1.close();
    await d2.close();
    await redis.stop();
  }
});

test('a node refuses to start without its directory, or under the id of a live node', async () => {
  const redis = await startRedis();
  const [r1, r2] = nodeRanges();
  const url = redis.url;
  await redis.stop();
  const unreachable = await startNode('lonely', url, r1!).then(
    async (n) => {
      await stopNodes([n]);
      return 'started';
    },
    (err: Error) => err.message,
  );
  assert.match(unreachable, /cannot reach Redis at redis:\/\/127\.0\.0\.1/);

  const again = await startRedis();
  const first = await startNode('twin', again.url, r1!);
  try {
    const second = await startNode('twin', again.url, r2!).then(
      async (n) => {
        await stopNodes([n]);
        return 'started';
      },
      (err: Error) => err.message,
    );
    assert.match(second, /node_id \\"twin\\" is in use by a live node/, second);
  } finally {
    await stopNodes([first]);
    await again.stop();
  }
});

test.run();
