// Janus #3345 (lessons §5) against the real engine: 10^3 add_remote_publisher /
// remove_remote_publisher cycles, then 10^2 rooms destroyed with live remote
// publishers in them, on a 20-port range. No request ever fails with 499,
// the pool returns to full, and no socket of the range stays bound
// (/proc/net/udp). Remote publishers are made live by sending them RTP.
import dgram from 'node:dgram';

import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { mediaRange } from '../helpers/ferry.js';
import { VrClient, startVrFerry, until } from './harness.js';
import { boundUdpPorts } from '../helpers/udp.js';

const CYCLES = 1000;
const ROOM_DESTROYS = 100;
const RANGE_SIZE = 20;
/** Per wave: this many publishers on explicitly requested ports, then this many on port 0. */
const EXPLICIT = 10;
const ANY = 5;
const STREAMS = [
  { type: 'audio', mindex: 0, mid: '0', codec: 'opus' },
  { type: 'video', mindex: 1, mid: '1', codec: 'vp8' },
];

/** A plain RTP packet with the Janus cascading SSRC of m-line `mindex` (RFC 3550 §5.1 header). */
function cascadedRtp(mindex: number, seq: number): Buffer {
  const b = Buffer.alloc(12 + 40);
  b[0] = 0x80;
  b[1] = mindex === 0 ? 111 : 96;
  b.writeUInt16BE(seq & 0xffff, 2);
  b.writeUInt32BE(seq * 960, 4);
  b.writeUInt32BE(1000 + 10 * mindex, 8);
  return b;
}

test(`${CYCLES} remote publisher cycles and ${ROOM_DESTROYS} room destroys on a ${RANGE_SIZE}-port range: no 499, no port left bound`, async () => {
  const base = mediaRange(50).rtp_port_min;
  const range = { rtp_port_min: base, rtp_port_max: base + RANGE_SIZE - 1 };
  const vr = await startVrFerry({ media: range });
  const sender = dgram.createSocket('udp4');
  await new Promise<void>((r) => sender.bind(0, '127.0.0.1', () => r()));
  const send = (port: number, packet: Buffer) => new Promise<void>((r) => sender.send(packet, port, '127.0.0.1', () => r()));
  const ports = vr.f.ferry.ports;
  try {
    const admin = await VrClient.open(vr.f);
    await admin.sync({ request: 'create', room: 1, publishers: RANGE_SIZE });
    let cycles = 0;
    let seq = 0;
    let nextId = 1;
    while (cycles < CYCLES) {
      const live: number[] = [];
      const wave = Math.min(EXPLICIT + ANY, CYCLES - cycles);
      for (let k = 0; k < wave; k++) {
        const id = nextId++;
        // Explicit ports are the same every wave: a port kept bound by a removed publisher fails the next wave.
        const port = k < EXPLICIT ? range.rtp_port_min + k : 0;
        const added = await admin.sync({ request: 'add_remote_publisher', room: 1, id, streams: STREAMS, ...(port ? { port } : {}) });
        assert.is(added['videoroom'], 'success', `cycle ${cycles + k}: ${JSON.stringify(added)}`);
        if (port) assert.is(added['port'], port);
        await send(added['port'] as number, cascadedRtp(k % 2, seq++));
        live.push(id);
      }
      assert.is(ports.leased, wave, 'one lease per live remote publisher');
      for (const id of live) assert.equal(await admin.sync({ request: 'remove_remote_publisher', room: 1, id }), { videoroom: 'success' });
      assert.is(ports.leased, 0, `wave ending at cycle ${cycles + wave}: every lease released`);
      cycles += wave;
    }
    const engine = vr.f.ferry.engine.stats();
    assert.ok(engine.sources.length === 0 && engine.outputs.length === 0, 'no engine source or output left');
    assert.ok((engine.endpoints.length === 0), 'no native endpoint left');

    // Rooms destroyed with live remote publishers (some receiving, one also forwarded from a handle's session).
    for (let r = 0; r < ROOM_DESTROYS; r++) {
      const room = 1000 + r;
      await admin.sync({ request: 'create', room, publishers: 6 });
      for (let k = 0; k < 4; k++) {
        const added = await admin.sync({ request: 'add_remote_publisher', room, id: k + 1, streams: STREAMS });
        assert.is(added['videoroom'], 'success', `room ${room}: ${JSON.stringify(added)}`);
        await send(added['port'] as number, cascadedRtp(0, seq++));
        await send(added['port'] as number, cascadedRtp(1, seq++));
      }
      assert.is(ports.leased, 4);
      const receiving = await until(() => vr.f.ferry.engine.stats().sources.filter((x) => x.packets > 0).length === 8, 2000, 1);
      assert.ok(receiving, `room ${room}: every remote publisher stream received its packet`);
      assert.equal(await admin.sync({ request: 'destroy', room }), { videoroom: 'destroyed', room });
      assert.is(ports.leased, 0, `room ${room} destroyed: its remote publishers' ports are back`);
    }
    // A remote publisher created from a handle ends with that handle's session.
    const owner = await VrClient.open(vr.f);
    await owner.sync({ request: 'create', room: 9 });
    await owner.sync({ request: 'add_remote_publisher', room: 9, id: 1, streams: STREAMS });
    assert.is(ports.leased, 1);
    await owner.close();
    assert.ok(await until(() => ports.leased === 0), 'the session end released it');

    assert.is(ports.free, RANGE_SIZE, 'the pool is full again');
    const own = sender.address().port;
    await until(() => {
      const bound = boundUdpPorts({ pid: process.pid });
      for (let p = range.rtp_port_min; p <= range.rtp_port_max; p++) if (p !== own && bound.has(p)) return false;
      return true;
    }, 2000);
    const bound = boundUdpPorts({ pid: process.pid });
    const stillBound: number[] = [];
    for (let p = range.rtp_port_min; p <= range.rtp_port_max; p++) if (p !== own && bound.has(p)) stillBound.push(p);
    assert.equal(stillBound, [], 'no socket of the range is bound');
    await admin.close();
  } finally {
    sender.close();
    await vr.stop();
  }
});

test.run();
