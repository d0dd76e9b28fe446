// ferry's SCTP (src/webrtc/sctp) without sockets: two associations joined by an
// in-memory link that can lose, reorder and duplicate packets, on a fake clock.
// Also the codecs (CRC32c, TSN ranges, DCEP) and 10^5 random and mutated packets.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { crc32c } from '../../src/webrtc/sctp/Crc32c.js';
import { encodeOpen, parseDcep } from '../../src/webrtc/sctp/Dcep.js';
import { SctpAssociation, type SctpAssociationOptions, type SctpCloseCause } from '../../src/webrtc/sctp/SctpAssociation.js';
import { packetChecksum, parsePacket } from '../../src/webrtc/sctp/SctpPacket.js';
import { ReceivedTsns } from '../../src/webrtc/sctp/Tsn.js';

/** A deterministic pseudo-random sequence (xorshift32), so every run sees the same losses. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

interface Side {
  sctp: SctpAssociation;
  messages: { stream: number; ppid: number; data: Buffer }[];
  resetIn: number[][];
  resetOut: number[][];
  closed: { cause: SctpCloseCause; reason: string } | null;
  drops: string[];
}

interface LinkOptions {
  /** Chance a packet is lost, per direction. */
  loss?: number;
  /** Chance a packet is held back and delivered after the next one. */
  reorder?: number;
  duplicate?: number;
  seed?: number;
  /** Drops this side's DATA-carrying packets only (what a lossy path toward it does). */
  lossOnlyToward?: 'client' | 'server';
  maxMessageSize?: number;
}

class Link {
  now = 0;
  readonly client: Side;
  readonly server: Side;
  private queue: { to: 'client' | 'server'; packet: Buffer; at: number }[] = [];
  private held: { to: 'client' | 'server'; packet: Buffer } | null = null;
  private readonly random: () => number;
  /** A hook to drop packets by content (e.g. only DATA toward one side). */
  dropIf: ((to: 'client' | 'server', packet: Buffer) => boolean) | null = null;
  packets = 0;

  constructor(private readonly o: LinkOptions = {}) {
    this.random = rng(o.seed ?? 7);
    this.server = this.side('server');
    this.client = this.side('client');
  }

  private side(name: 'client' | 'server'): Side {
    const to = name === 'client' ? 'server' : 'client';
    const side: Side = { sctp: null as unknown as SctpAssociation, messages: [], resetIn: [], resetOut: [], closed: null, drops: [] };
    const options: SctpAssociationOptions = {
      localPort: 5000,
      remotePort: 5000,
      receiveWindow: (this.o.maxMessageSize ?? 1024 * 1024) + 256 * 1024,
      maxMessageSize: this.o.maxMessageSize ?? 1024 * 1024,
      maxSendBuffer: 64 * 1024 * 1024,
      now: () => this.now,
      output: (packet) => this.send(to, packet),
      onEstablished: () => undefined,
      onMessage: (stream, ppid, data) => side.messages.push({ stream, ppid, data: Buffer.from(data) }),
      onIncomingStreamsReset: (streams) => side.resetIn.push(streams),
      onOutgoingStreamsReset: (streams) => side.resetOut.push(streams),
      onClosed: (cause, reason) => {
        side.closed = { cause, reason };
      },
      onDrop: (reason) => side.drops.push(reason),
    };
    side.sctp = new SctpAssociation(options);
    return side;
  }

  private send(to: 'client' | 'server', packet: Buffer): void {
    this.packets++;
    if (this.dropIf?.(to, packet)) return;
    const lossy = this.o.lossOnlyToward === undefined || this.o.lossOnlyToward === to;
    if (lossy && this.random() < (this.o.loss ?? 0)) return;
    if (this.random() < (this.o.duplicate ?? 0)) this.queue.push({ to, packet: Buffer.from(packet), at: this.now + 1 });
    if (this.random() < (this.o.reorder ?? 0) && !this.held) {
      this.held = { to, packet };
      return;
    }
    this.queue.push({ to, packet, at: this.now + 1 });
    if (this.held) {
      this.queue.push({ ...this.held, at: this.now + 1 });
      this.held = null;
    }
  }

  /** Runs until nothing is in flight and no timer is due before `limitMs`; bounded. */
  run(limitMs = 120_000): void {
    for (let steps = 0; steps < 2_000_000; steps++) {
      const next = this.queue.shift();
      if (next) {
        if (next.at > this.now) this.now = next.at;
        (next.to === 'client' ? this.client : this.server).sctp.receive(next.packet);
        continue;
      }
      if (this.held) {
        this.queue.push({ ...this.held, at: this.now + 1 });
        this.held = null;
        continue;
      }
      const deadlines = [this.client.sctp.deadline(), this.server.sctp.deadline()].filter((d): d is number => d !== null);
      if (!deadlines.length) return;
      const d = Math.min(...deadlines);
      if (d > limitMs) return;
      this.now = Math.max(this.now, d);
      this.client.sctp.handleTimeout();
      this.server.sctp.handleTimeout();
    }
    throw new Error('link did not settle');
  }

  connect(): void {
    this.client.sctp.connect();
    this.run();
    assert.is(this.client.sctp.state, 'established');
    assert.is(this.server.sctp.state, 'established');
  }
}

function message(i: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  b.writeUInt32BE(i, 0);
  for (let k = 4; k < size; k++) b[k] = (i * 31 + k) & 0xff;
  return b;
}

test('CRC32c: the RFC 3720 B.4 check value and an SCTP packet checksum', () => {
  assert.is(crc32c(Buffer.from('123456789')), 0xe3069283);
  assert.is(crc32c(Buffer.alloc(32)), 0x8a9136aa);
  const long = Buffer.alloc(1000, 0x5a);
  // The sliced loop and the byte loop agree whatever the alignment.
  for (let start = 0; start < 9; start++) {
    let bytewise = 0xffffffff;
    for (const b of long.subarray(start)) {
      bytewise ^= b;
      for (let k = 0; k < 8; k++) bytewise = bytewise & 1 ? (bytewise >>> 1) ^ 0x82f63b78 : bytewise >>> 1;
    }
    assert.is(crc32c(long.subarray(start)), (bytewise ^ 0xffffffff) >>> 0);
  }
  const packet = Buffer.alloc(16);
  packet.writeUInt16BE(4, 14);
  packet.writeUInt32LE(packetChecksum(packet), 8);
  assert.ok(parsePacket(packet).ok);
  packet[15] = 5;
  assert.not.ok(parsePacket(packet).ok, 'checksum no longer matches');
});

test('received TSNs: gaps, merging, wrap-around and FORWARD TSN', () => {
  const r = new ReceivedTsns(0xfffffffe);
  assert.is(r.cumulative, 0xfffffffd);
  r.add(0x00000001);
  r.add(0xffffffff);
  assert.equal(r.gapBlocks(8), [[2, 2], [4, 4]]);
  r.add(0xfffffffe);
  assert.is(r.cumulative, 0xffffffff);
  r.add(0);
  assert.is(r.cumulative, 1);
  assert.is(r.gapCount, 0);
  r.add(5);
  r.add(3);
  r.add(4);
  r.add(9);
  assert.equal(r.gapBlocks(8), [[2, 4], [8, 8]]);
  assert.ok(r.has(4) && !r.has(2) && !r.has(6) && r.has(1));
  r.forwardTo(7);
  assert.is(r.cumulative, 7);
  assert.equal(r.gapBlocks(8), [[2, 2]]);
  r.add(8);
  assert.is(r.cumulative, 9);
});

test('DCEP: open and ack round trip; malformed ones are refused with a reason', () => {
  const channel = { label: 'chat ✓', protocol: 'json', ordered: false, maxRetransmits: 3, maxPacketLifeTime: null, priority: 256 };
  const parsed = parseDcep(encodeOpen(channel));
  assert.ok(parsed.ok);
  if (parsed.ok) assert.equal(parsed.message, { type: 'open', channel });
  assert.equal(parseDcep(Buffer.from([2])), { ok: true, message: { type: 'ack' } });
  const open = encodeOpen(channel);
  for (const bad of [Buffer.alloc(0), Buffer.from([3, 0]), Buffer.from([9]), Buffer.from([2, 0]), open.subarray(0, open.length - 1), Buffer.concat([open, Buffer.from([0])])]) {
    assert.not.ok(parseDcep(bad).ok, bad.toString('hex'));
  }
  const badType = Buffer.from(open);
  badType[1] = 0x03;
  assert.not.ok(parseDcep(badType).ok);
  const badUtf8 = Buffer.from(open);
  badUtf8[12] = 0xff;
  assert.not.ok(parseDcep(badUtf8).ok);
});

test('reliable ordered: 2000 messages up to 1 MiB arrive intact and in order, over 5 % loss, reordering and duplicates', () => {
  const link = new Link({ loss: 0.05, reorder: 0.05, duplicate: 0.02, seed: 11, maxMessageSize: 2 * 1024 * 1024 });
  link.connect();
  const sizes = [4, 100, 1159, 1163, 1164, 5000, 65536];
  const sent: Buffer[] = [];
  for (let i = 0; i < 2000; i++) {
    const m = message(i, sizes[i % sizes.length]!);
    sent.push(m);
    assert.is(link.client.sctp.send(1, 53, m, { ordered: true }), 'queued');
  }
  const big = message(99999, 1024 * 1024);
  sent.push(big);
  link.client.sctp.send(1, 53, big, { ordered: true });
  link.run();
  const got = link.server.messages;
  assert.is(got.length, sent.length);
  got.forEach((m, i) => assert.ok(m.data.equals(sent[i]!), `message ${i}`));
  assert.ok(link.client.sctp.counters.retransmissions > 0, 'losses were repaired');
  assert.is(link.client.sctp.bufferedAmount, 0, 'everything acknowledged');
  assert.is(link.client.closed, null);
});

test('unordered: every message arrives once, over loss and reordering', () => {
  const link = new Link({ loss: 0.1, reorder: 0.2, seed: 3 });
  link.connect();
  for (let i = 0; i < 500; i++) link.client.sctp.send(2, 53, message(i, i % 3 === 0 ? 3000 : 200), { ordered: false });
  link.run();
  const ids = link.server.messages.map((m) => m.data.readUInt32BE(0)).sort((a, b) => a - b);
  assert.equal(ids, Array.from({ length: 500 }, (_, i) => i));
  assert.ok(link.server.messages.some((m, i) => m.data.readUInt32BE(0) !== i), 'some arrived out of order');
});

test('partial reliability, maxRetransmits 0: what is lost is skipped (FORWARD TSN), later messages are not held back', () => {
  const link = new Link({ seed: 5 });
  link.connect();
  // Every fifth DATA packet toward the server is lost, once: nothing is retransmitted.
  let n = 0;
  link.dropIf = (to, p) => to === 'server' && p[12] === 0 && n++ % 5 === 0;
  for (let i = 0; i < 100; i++) link.client.sctp.send(3, 53, message(i, 100), { ordered: true, maxRetransmits: 0 });
  link.run();
  const ids = link.server.messages.map((m) => m.data.readUInt32BE(0));
  assert.ok(ids.length >= 75 && ids.length < 100, `${ids.length} delivered`);
  assert.equal(ids, [...ids].sort((a, b) => a - b), 'still in order');
  assert.is(ids.at(-1), 99, 'the last one arrived: no stall behind the lost ones');
  assert.ok(link.client.sctp.counters.abandoned > 0);
  assert.is(link.client.sctp.bufferedAmount, 0);
  // The reliable stream alongside still gets everything.
  link.dropIf = null;
  link.client.sctp.send(4, 51, Buffer.from('after'), { ordered: true });
  link.run();
  assert.is(link.server.messages.at(-1)!.data.toString(), 'after');
});

test('partial reliability, lifetime: a message that cannot go in time is dropped, unordered', () => {
  const link = new Link({ seed: 9 });
  link.connect();
  link.dropIf = (to, p) => to === 'server' && p[12] === 0;
  link.client.sctp.send(5, 53, message(1, 500), { ordered: false, lifetimeMs: 300 });
  link.run(5000);
  link.dropIf = null;
  link.client.sctp.send(5, 53, message(2, 500), { ordered: false, lifetimeMs: 300 });
  link.run();
  assert.equal(link.server.messages.map((m) => m.data.readUInt32BE(0)), [2]);
  assert.is(link.client.sctp.counters.abandoned, 1);
});

test('stream reset (RFC 6525): both directions, after the data sent before it', () => {
  const link = new Link({ loss: 0.05, seed: 21 });
  link.connect();
  for (let i = 0; i < 50; i++) link.client.sctp.send(7, 51, Buffer.from(`m${i}`), { ordered: true });
  link.client.sctp.resetStreams([7]);
  link.run();
  assert.is(link.server.messages.length, 50);
  assert.equal(link.server.resetIn, [[7]]);
  assert.equal(link.client.resetOut, [[7]]);
  // Reset streams start again at SSN 0 (RFC 6525 §5.2.2): a new message on 7 is delivered.
  link.client.sctp.send(7, 51, Buffer.from('again'), { ordered: true });
  link.run();
  assert.is(link.server.messages.at(-1)!.data.toString(), 'again');
});

test('a message above max-message-size aborts the association (counted cause), the peer hears ABORT', () => {
  const link = new Link({ maxMessageSize: 64 * 1024 });
  link.connect();
  link.client.sctp.send(1, 53, Buffer.alloc(64 * 1024), { ordered: true });
  link.run();
  assert.is(link.server.messages.length, 1);
  link.client.sctp.send(1, 53, Buffer.alloc(64 * 1024 + 1), { ordered: true });
  link.run();
  assert.is(link.server.closed?.cause, 'protocol-violation');
  assert.is(link.client.closed?.cause, 'peer-abort');
  assert.is(link.server.sctp.deadline(), null, 'no timer left');
});

test('an unreachable peer: the sender gives up after Association.Max.Retrans timeouts', () => {
  const link = new Link();
  link.connect();
  link.dropIf = () => true;
  link.client.sctp.send(1, 51, Buffer.from('lost'), { ordered: true });
  link.run(10 * 60_000);
  assert.is(link.client.closed?.cause, 'timeout');
  assert.is(link.client.sctp.deadline(), null);
});

test('10^5 random and mutated packets: never a throw, each refusal counted; an association they break is ended, a fresh one takes the rest', () => {
  const random = rng(1234);
  let link!: Link;
  let samples: Buffer[] = [];
  const fresh = () => {
    link = new Link();
    link.connect();
    // Real packets to mutate: what the client sends for a few messages and a stream reset.
    samples = [];
    link.dropIf = (to, p) => {
      if (to === 'server') samples.push(Buffer.from(p));
      return false;
    };
    for (let i = 0; i < 20; i++) link.client.sctp.send(i % 3, 51 + (i % 2) * 2, message(i, 10 + i * 97), { ordered: i % 2 === 0 });
    link.client.sctp.resetStreams([1]);
    link.run();
    link.dropIf = null;
  };
  fresh();
  let drops = 0;
  const ended: string[] = [];
  for (let i = 0; i < 100_000; i++) {
    let p: Buffer;
    const kind = i % 4;
    if (kind === 0) {
      p = Buffer.alloc(Math.floor(random() * 1300));
      for (let k = 0; k < p.length; k++) p[k] = Math.floor(random() * 256);
    } else {
      p = Buffer.from(samples[Math.floor(random() * samples.length)]!);
      const flips = 1 + Math.floor(random() * 6);
      for (let k = 0; k < flips && p.length > 12; k++) p[12 + Math.floor(random() * (p.length - 12))] = Math.floor(random() * 256);
      if (kind === 3 && p.length > 16) p.writeUInt16BE(Math.floor(random() * 65536), 14);
      // Most mutations fix the checksum up, so they reach the chunk parsers.
      if (kind !== 1) p.writeUInt32LE(packetChecksum(p), 8);
    }
    const server = link.server.sctp;
    server.receive(p);
    assert.ok(server.bufferedAmount < 64 * 1024 * 1024);
    if (server.state !== 'established') {
      // A mutation that is still a valid ABORT or SHUTDOWN (or a violation) ends this association.
      ended.push(link.server.closed?.cause ?? server.state);
      drops += link.server.drops.length;
      fresh();
    }
  }
  drops += link.server.drops.length;
  assert.ok(drops > 50_000, `refusals counted: ${drops}`);
  assert.ok(ended.length < 5_000, `associations ended: ${ended.length}`);
});

test.run();
