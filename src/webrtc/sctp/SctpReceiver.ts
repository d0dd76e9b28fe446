// The receiving half of an SCTP association (RFC 4960 §6.2, §6.5, §6.9; RFC
// 3758 §3.6): which TSNs arrived, reassembly of fragmented messages, in stream
// order or not, and the SACKs that say so. Bounded: at most the receive window
// (plus one packet) is held, TSNs are taken within a 16-bit window and a bounded
// number of gaps, and a message above the announced max-message-size is a
// protocol violation the association does not survive.
import { ReceivedTsns, ssnAfter, tsnAdd, tsnAfter, tsnDiff } from './Tsn.js';
import { ChunkType, encodeChunk } from './SctpPacket.js';
import { FLAG_BEGIN, FLAG_END, FLAG_UNORDERED, type SctpCounters } from './SctpCommon.js';

/** DATA more than this many TSNs beyond the cumulative TSN is dropped (gap blocks are 16-bit offsets). */
const MAX_TSN_WINDOW = 0xffff;
/** Separate ranges of received TSNs above a gap tracked at once; a chunk opening another is dropped. */
const MAX_GAP_RANGES = 256;
/** Gap blocks and duplicate TSNs reported per SACK (§3.3.4), so a SACK fits one packet. */
const MAX_REPORTED_GAPS = 64;
const MAX_REPORTED_DUPLICATES = 16;
/** §6.2: a SACK within 200 ms of the first unacknowledged DATA. */
const SACK_DELAY_MS = 200;
/** §3.3.10 error causes the receiver reports. */
export const CAUSE_NO_USER_DATA = 9;
export const CAUSE_PROTOCOL_VIOLATION = 13;

interface PartialMessage {
  ppid: number;
  fragments: Map<number, Buffer>;
  firstTsn: number | null;
  lastTsn: number | null;
  bytes: number;
}

interface InboundStream {
  nextSsn: number;
  pending: Map<number, PartialMessage>;
}

interface UnorderedFragment {
  stream: number;
  ppid: number;
  flags: number;
  data: Buffer;
}

export interface SctpReceiverOptions {
  /** The peer's initial TSN (from its INIT or INIT ACK). */
  initialTsn: number;
  /** Streams the peer may send on. */
  inboundStreams: number;
  receiveWindow: number;
  maxMessageSize: number;
  /** Slack above the window: one packet the peer may send into a closing window. */
  mtu: number;
  now(): number;
  counters: SctpCounters;
  deliver(stream: number, ppid: number, data: Buffer): void;
  drop(reason: string): void;
  /** A protocol violation: the association is aborted with this error cause. */
  violation(cause: number, reason: string, info?: Buffer): void;
  /** §6.5: DATA on a stream that does not exist (acknowledged, reported, discarded). */
  invalidStream(stream: number): void;
  /** False once the association ended (a delivery may end it). */
  isOpen(): boolean;
}

export class SctpReceiver {
  private readonly received: ReceivedTsns;
  private duplicates: number[] = [];
  private owed = false;
  private immediate = false;
  private packetsSinceSack = 0;
  private delayedUntil: number | null = null;
  private buffered = 0;
  private readonly streams = new Map<number, InboundStream>();
  private readonly unordered = new Map<number, UnorderedFragment>();

  constructor(private readonly o: SctpReceiverOptions) {
    this.received = new ReceivedTsns(o.initialTsn);
  }

  get cumulative(): number {
    return this.received.cumulative;
  }

  /** Bytes held for reassembly (what a_rwnd is reduced by). */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** A SACK is owed (it rides on any packet that goes). */
  get sackOwed(): boolean {
    return this.owed;
  }

  /** A SACK must go now, even alone. */
  get sackDue(): boolean {
    return this.owed && this.immediate;
  }

  /** When a delayed SACK becomes due (null: none owed). */
  deadline(): number | null {
    return this.owed ? this.delayedUntil : null;
  }

  handleTimeout(now: number): void {
    if (this.owed && this.delayedUntil !== null && this.delayedUntil <= now) this.immediate = true;
  }

  /** One DATA chunk (§3.3.1). */
  data(flags: number, body: Buffer): void {
    const received = this.received;
    if (body.length < 12) {
      this.o.drop('DATA shorter than its header');
      return;
    }
    this.o.counters.dataChunksIn++;
    if (body.length === 12) {
      // §6.2: DATA without user data is a protocol violation the association does not survive.
      this.o.violation(CAUSE_NO_USER_DATA, 'DATA chunk without user data', body.subarray(0, 4));
      return;
    }
    const tsn = body.readUInt32BE(0);
    const stream = body.readUInt16BE(4);
    const ssn = body.readUInt16BE(6);
    const ppid = body.readUInt32BE(8);
    const data = body.subarray(12);
    this.owed = true;
    if (received.has(tsn)) {
      if (this.duplicates.length < MAX_REPORTED_DUPLICATES) this.duplicates.push(tsn);
      this.immediate = true;
      return;
    }
    if (tsnDiff(tsn, received.cumulative) > MAX_TSN_WINDOW) {
      this.o.drop('DATA beyond the TSN window');
      return;
    }
    const next = tsnAdd(received.cumulative, 1);
    // §6.2: with the window used up, only the TSN the cumulative ack waits for is taken.
    if (tsn !== next && this.buffered + data.length > this.o.receiveWindow + this.o.mtu) {
      this.o.drop('DATA beyond the receive window');
      this.immediate = true;
      return;
    }
    if (tsn !== next && received.gapCount >= MAX_GAP_RANGES && !received.has(tsnAdd(tsn, -1)) && !received.has(tsnAdd(tsn, 1))) {
      this.o.drop('DATA opening too many gaps');
      this.immediate = true;
      return;
    }
    received.add(tsn);
    if (received.gapCount > 0) this.immediate = true; // §6.7: report gaps at once
    if (stream >= this.o.inboundStreams) {
      this.o.invalidStream(stream);
      return;
    }
    if (flags & FLAG_UNORDERED) this.unorderedFragment(tsn, stream, ppid, flags, data);
    else this.orderedFragment(tsn, stream, ssn, ppid, flags, data);
  }

  private orderedFragment(tsn: number, stream: number, ssn: number, ppid: number, flags: number, data: Buffer): void {
    let st = this.streams.get(stream);
    if (!st) {
      st = { nextSsn: 0, pending: new Map() };
      this.streams.set(stream, st);
    }
    if (ssn !== st.nextSsn && !ssnAfter(ssn, st.nextSsn)) {
      this.o.drop('ordered DATA for a message already delivered');
      return;
    }
    if ((flags & (FLAG_BEGIN | FLAG_END)) === (FLAG_BEGIN | FLAG_END) && ssn === st.nextSsn && !st.pending.has(ssn)) {
      st.nextSsn = (st.nextSsn + 1) & 0xffff;
      this.deliver(stream, ppid, data);
      this.drainOrdered(stream, st);
      return;
    }
    let partial = st.pending.get(ssn);
    if (!partial) {
      partial = { ppid, fragments: new Map(), firstTsn: null, lastTsn: null, bytes: 0 };
      st.pending.set(ssn, partial);
    }
    partial.fragments.set(tsn, data);
    partial.bytes += data.length;
    this.buffered += data.length;
    if (flags & FLAG_BEGIN) partial.firstTsn = tsn;
    if (flags & FLAG_END) partial.lastTsn = tsn;
    if (this.tooBig(partial.bytes)) return;
    this.drainOrdered(stream, st);
  }

  private static complete(p: PartialMessage): boolean {
    return p.firstTsn !== null && p.lastTsn !== null && p.fragments.size === tsnDiff(p.lastTsn, p.firstTsn) + 1;
  }

  private static assemble(p: PartialMessage): Buffer {
    const parts: Buffer[] = [];
    for (let t = p.firstTsn!, n = 0; n < p.fragments.size; t = tsnAdd(t, 1), n++) parts.push(p.fragments.get(t)!);
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, p.bytes);
  }

  /** Delivers every complete message from the stream's next SSN on. */
  private drainOrdered(stream: number, st: InboundStream): void {
    for (let p = st.pending.get(st.nextSsn); p && SctpReceiver.complete(p); p = st.pending.get(st.nextSsn)) {
      st.pending.delete(st.nextSsn);
      st.nextSsn = (st.nextSsn + 1) & 0xffff;
      this.buffered -= p.bytes;
      this.deliver(stream, p.ppid, SctpReceiver.assemble(p));
      if (!this.o.isOpen()) return;
    }
  }

  private unorderedFragment(tsn: number, stream: number, ppid: number, flags: number, data: Buffer): void {
    if ((flags & (FLAG_BEGIN | FLAG_END)) === (FLAG_BEGIN | FLAG_END)) {
      this.deliver(stream, ppid, data);
      return;
    }
    this.unordered.set(tsn, { stream, ppid, flags, data });
    this.buffered += data.length;
    // The fragments of one message have consecutive TSNs (§6.9): walk to its first and last.
    let bytes = data.length;
    let first = tsn;
    for (let f = this.unordered.get(first)!; !(f.flags & FLAG_BEGIN); ) {
      const prev = this.unordered.get(tsnAdd(first, -1));
      if (!prev || prev.stream !== stream || prev.flags & FLAG_END) {
        this.tooBig(bytes);
        return;
      }
      first = tsnAdd(first, -1);
      bytes += prev.data.length;
      f = prev;
    }
    let last = tsn;
    for (let f = this.unordered.get(last)!; !(f.flags & FLAG_END); ) {
      const next = this.unordered.get(tsnAdd(last, 1));
      if (!next || next.stream !== stream || next.flags & FLAG_BEGIN) {
        this.tooBig(bytes);
        return;
      }
      last = tsnAdd(last, 1);
      bytes += next.data.length;
      f = next;
    }
    if (this.tooBig(bytes)) return;
    // One PPID per message (RFC 8831 §6.6): the first fragment's.
    const messagePpid = this.unordered.get(first)!.ppid;
    const parts: Buffer[] = [];
    for (let t = first; ; t = tsnAdd(t, 1)) {
      parts.push(this.unordered.get(t)!.data);
      this.unordered.delete(t);
      if (t === last) break;
    }
    this.buffered -= bytes;
    this.deliver(stream, messagePpid, Buffer.concat(parts, bytes));
  }

  /** True (and the association aborted) when a message under reassembly outgrew the announced size. */
  private tooBig(bytes: number): boolean {
    if (bytes <= this.o.maxMessageSize) return false;
    this.o.violation(CAUSE_PROTOCOL_VIOLATION, `a message larger than the ${this.o.maxMessageSize} bytes of a=max-message-size`);
    return true;
  }

  private deliver(stream: number, ppid: number, data: Buffer): void {
    this.o.counters.messagesIn++;
    this.o.deliver(stream, ppid, data);
  }

  /** RFC 3758 §3.6: the peer gave up on everything up to a TSN. */
  forwardTsn(body: Buffer): void {
    const received = this.received;
    if (body.length < 4 || (body.length - 4) % 4 !== 0) {
      this.o.drop('malformed FORWARD TSN');
      return;
    }
    this.owed = true;
    this.immediate = true;
    const newCumulative = body.readUInt32BE(0);
    if (!tsnAfter(newCumulative, received.cumulative)) return;
    if (tsnDiff(newCumulative, received.cumulative) > MAX_TSN_WINDOW) {
      this.o.drop('FORWARD TSN beyond the TSN window');
      return;
    }
    received.forwardTo(newCumulative);
    for (const [tsn, fragment] of this.unordered) {
      if (tsnAfter(tsn, newCumulative)) continue;
      this.unordered.delete(tsn);
      this.buffered -= fragment.data.length;
    }
    for (const st of this.streams.values()) {
      for (const [ssn, partial] of st.pending) {
        if ([...partial.fragments.keys()].some((t) => !tsnAfter(t, newCumulative))) {
          st.pending.delete(ssn);
          this.buffered -= partial.bytes;
        }
      }
    }
    for (let pos = 4; pos + 4 <= body.length; pos += 4) {
      const stream = body.readUInt16BE(pos);
      const skipTo = body.readUInt16BE(pos + 2);
      const st = this.streams.get(stream);
      if (!st || (st.nextSsn !== skipTo && !ssnAfter(skipTo, st.nextSsn))) continue;
      // Complete messages before the skipped one still go, in order; incomplete ones are gone.
      for (let ssn = st.nextSsn; ; ssn = (ssn + 1) & 0xffff) {
        const p = st.pending.get(ssn);
        if (p) {
          st.pending.delete(ssn);
          this.buffered -= p.bytes;
          if (SctpReceiver.complete(p)) this.deliver(stream, p.ppid, SctpReceiver.assemble(p));
          if (!this.o.isOpen()) return;
        }
        if (ssn === skipTo) break;
      }
      st.nextSsn = (skipTo + 1) & 0xffff;
      this.drainOrdered(stream, st);
    }
  }

  /** After a packet with DATA or FORWARD TSN: §6.2's SACK rule (every second packet, else within 200 ms). */
  afterPacket(): void {
    this.packetsSinceSack++;
    if (this.packetsSinceSack >= 2) this.immediate = true;
    if (this.owed && this.delayedUntil === null) this.delayedUntil = this.o.now() + SACK_DELAY_MS;
  }

  /** The SACK chunk (§3.3.4) for what arrived; nothing is owed after it. */
  sack(): Buffer {
    const received = this.received;
    const gaps = received.gapBlocks(MAX_REPORTED_GAPS);
    const dups = this.duplicates;
    const out = Buffer.alloc(12 + 4 * gaps.length + 4 * dups.length);
    out.writeUInt32BE(received.cumulative, 0);
    out.writeUInt32BE(Math.max(0, this.o.receiveWindow - this.buffered), 4);
    out.writeUInt16BE(gaps.length, 8);
    out.writeUInt16BE(dups.length, 10);
    let pos = 12;
    for (const [start, end] of gaps) {
      out.writeUInt16BE(start, pos);
      out.writeUInt16BE(end, pos + 2);
      pos += 4;
    }
    for (const d of dups) {
      out.writeUInt32BE(d, pos);
      pos += 4;
    }
    this.duplicates = [];
    this.owed = false;
    this.immediate = false;
    this.delayedUntil = null;
    this.packetsSinceSack = 0;
    return encodeChunk(ChunkType.SACK, 0, out);
  }

  /** RFC 6525 §5.2.2: these streams start again at SSN 0 (empty: all). */
  resetStreams(streams: number[]): void {
    const targets = streams.length ? streams : [...this.streams.keys()];
    for (const s of targets) {
      const st = this.streams.get(s);
      if (!st) continue;
      for (const p of st.pending.values()) this.buffered -= p.bytes;
      this.streams.delete(s);
    }
  }

  /** The association ended: nothing more is held or owed. */
  clear(): void {
    this.streams.clear();
    this.unordered.clear();
    this.buffered = 0;
    this.owed = false;
    this.delayedUntil = null;
  }
}
