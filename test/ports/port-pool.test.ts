// PortPool: one owner per port, one release path that closes the socket,
// exhaustion named by its range, ports held by others skipped.
import { createSocket } from 'node:dgram';

import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { MediaEngine } from '../../src/media/MediaEngine.js';
import { PortPool, PortPoolExhaustedError } from '../../src/media/PortPool.js';
import { boundUdpPorts } from '../helpers/udp.js';

const BASE = 47000 + (process.pid % 40) * 20;
const RANGE = { min: BASE, max: BASE + 3 };

test('leases carry owners, exhaustion names the range, release closes the socket once', () => {
  const engine = new MediaEngine();
  try {
    const pool = new PortPool(engine, { name: 'rtp', range: RANGE, bindAddress: '127.0.0.1' }, () => 42);
    const leases = [0, 1, 2, 3].map((i) => pool.lease(`owner-${i}`));
    assert.is(pool.leased, 4);
    assert.is(pool.free, 0);
    assert.equal(pool.list().map((l) => l.owner).sort(), ['owner-0', 'owner-1', 'owner-2', 'owner-3']);
    assert.ok(pool.list().every((l) => l.since === 42));
    assert.is(engine.endpointCount(), 4);
    assert.throws(
      () => pool.lease('one too many'),
      (e: unknown) => e instanceof PortPoolExhaustedError && /rtp range \d+-\d+/.test((e as Error).message),
    );
    const first = leases[0]!;
    first.release();
    first.release(); // idempotent
    assert.is(pool.leased, 3);
    assert.is(engine.endpointCount(), 3);
    assert.not.ok(boundUdpPorts({ pid: process.pid }).has(first.port), 'socket closed when release returned');
    pool.releaseAll();
    assert.is(pool.free, 4);
    assert.is(engine.endpointCount(), 0);
  } finally {
    engine.close();
  }
});

test('a port another process holds is skipped; a requested port is leased exactly or refused', async () => {
  const engine = new MediaEngine();
  const squatter = createSocket('udp4');
  await new Promise<void>((r) => squatter.bind(RANGE.min, '127.0.0.1', () => r()));
  try {
    const pool = new PortPool(engine, { name: 'rtp', range: RANGE, bindAddress: '127.0.0.1' });
    const a = pool.lease('a');
    assert.is.not(a.port, RANGE.min, 'occupied port skipped');
    assert.throws(() => pool.lease('b', {}, undefined, RANGE.max + 100), /outside/);
    const wanted = [RANGE.min + 1, RANGE.min + 2, RANGE.min + 3].find((p) => p !== a.port)!;
    const b = pool.lease('b', {}, undefined, wanted);
    assert.is(b.port, wanted);
    assert.throws(() => pool.lease('c', {}, undefined, wanted), /already leased/);
    assert.throws(() => new PortPool(engine, { name: 'bad', range: { min: 10, max: 5 }, bindAddress: '127.0.0.1' }), /invalid bad port range/);
    pool.releaseAll();
  } finally {
    squatter.close();
    engine.close();
  }
});

test.run();
