// The sending half of an SCTP association: messages queued and cut into DATA
// chunks (RFC 4960 §6.9), TSNs and stream sequence numbers, the peer's SACKs
// (§6.2.1), the retransmission timer and RTO (§6.3), fast retransmit and
// congestion control (§7.2), and partial reliability (RFC 3758 §3.5: messages
// abandoned by retransmission count or lifetime, skipped with FORWARD TSN).
// Bounded: `send` refuses beyond maxSendBuffer bytes queued and unacknowledged.
import { ChunkType, encodeChunk } from './SctpPacket.js';
import { FLAG_BEGIN, FLAG_END, FLAG_UNORDERED, MAX_RETRANSMISSIONS, type SctpCounters } from './SctpCommon.js';
import { tsnAdd, tsnAfter, tsnDiff } from './Tsn.js';

/** RFC 9260 §16: RTO.Initial 1 s, RTO.Max 60 s; RTO.Min lowered from 1 s so one lost packet on a short path does not stall a reliable channel for a second. */
export const RTO_INITIAL_MS = 1000;
const RTO_MIN_MS = 200;
const RTO_MAX_MS = 60_000;

export interface SendOptions {
  ordered: boolean;
  /** RFC 3758 partial reliability: retransmissions allowed (null: unlimited). */
  maxRetransmits?: number | null;
  /** RFC 3758 partial reliability: milliseconds the message may take to be sent (null: forever). */
  lifetimeMs?: number | null;
}

export type SendResult = 'queued' | 'closed' | 'invalid-stream' | 'empty' | 'buffer-full';

interface OutboundMessage {
  stream: number;
  ppid: number;
  data: Buffer;
  ordered: boolean;
  /** Stream sequence number, taken when its first fragment is sent (an unsent message leaves no hole). */
  ssn: number;
  maxRetransmits: number | null;
  expiresAt: number | null;
  /** Bytes already cut into chunks. */
  offset: number;
  abandoned: boolean;
  chunks: SentChunk[];
}

interface SentChunk {
  tsn: number;
  message: OutboundMessage;
  flags: number;
  payload: Buffer;
  transmissions: number;
  /** Acknowledged by a gap block (not yet by the cumulative TSN). */
  acked: boolean;
  /** Counted in flightSize: sent and neither acknowledged, marked for retransmission nor abandoned. */
  inFlight: boolean;
  retransmit: boolean;
  abandoned: boolean;
  misses: number;
}

export interface SctpSenderOptions {
  /** Ferry's initial TSN. */
  initialTsn: number;
  mtu: number;
  /** Largest DATA payload in one packet. */
  maxPayload: number;
  maxSendBuffer: number;
  /** The peer's a_rwnd from its INIT or INIT ACK. */
  peerRwnd: number;
  /** The peer takes FORWARD TSN (RFC 3758): without it nothing is abandoned. */
  partialReliability: boolean;
  now(): number;
  counters: SctpCounters;
  drop(reason: string): void;
}

export class SctpSender {
  private nextTsn: number;
  private lastCumAck: number;
  private readonly queue: OutboundMessage[] = [];
  private queueHead = 0;
  private queuedBytes = 0;
  private readonly queuedPerStream = new Map<number, number>();
  /** Every TSN after lastCumAck, in order (so a TSN's chunk is at a known index). */
  private inflight: SentChunk[] = [];
  private inflightHead = 0;
  private unackedBytes = 0;
  private flightSize = 0;
  private retransmitPending = 0;
  private fastRetransmitPending = false;
  private cwnd: number;
  private ssthresh: number;
  private partialBytesAcked = 0;
  private peerRwnd: number;
  private inFastRecovery = false;
  private fastRecoveryExit = 0;
  private readonly outboundSsn = new Map<number, number>();
  private currentRto = RTO_INITIAL_MS;
  private srtt: number | null = null;
  private rttvar = 0;
  private rttTsn: number | null = null;
  private rttSentAt = 0;
  private errorCount = 0;
  private advancedPeerAckPoint: number;
  private forwardTsnOwed = false;
  private t3Deadline: number | null = null;

  constructor(private readonly o: SctpSenderOptions) {
    this.nextTsn = o.initialTsn;
    this.lastCumAck = tsnAdd(o.initialTsn, -1);
    this.advancedPeerAckPoint = this.lastCumAck;
    // §7.2.1: initial cwnd = min(4 * MTU, max(2 * MTU, 4380)); ssthresh the peer's a_rwnd.
    this.cwnd = Math.min(4 * o.mtu, Math.max(2 * o.mtu, 4380));
    this.ssthresh = o.peerRwnd;
    this.peerRwnd = o.peerRwnd;
  }

  /** Bytes waiting to be sent or acknowledged (a data channel's bufferedAmount, summed). */
  get bufferedAmount(): number {
    return this.queuedBytes + this.unackedBytes;
  }

  /** The last TSN assigned (RFC 6525 §5.1.2 names it in a stream reset). */
  get lastAssignedTsn(): number {
    return tsnAdd(this.nextTsn, -1);
  }

  get rto(): number {
    return this.currentRto;
  }

  /** Messages of this stream not yet cut into chunks (a reset of the stream waits for them). */
  hasQueued(stream: number): boolean {
    return this.queuedPerStream.has(stream);
  }

  /** RFC 6525: reset outgoing streams start again at SSN 0. */
  resetStreams(streams: number[]): void {
    for (const s of streams) this.outboundSsn.delete(s);
  }

  /** When T3-rtx expires (null: nothing outstanding). */
  deadline(): number | null {
    return this.t3Deadline;
  }

  send(stream: number, ppid: number, data: Buffer, options: SendOptions): SendResult {
    if (data.length === 0) return 'empty';
    if (this.bufferedAmount + data.length > this.o.maxSendBuffer) return 'buffer-full';
    const lifetime = options.lifetimeMs ?? null;
    this.queue.push({
      stream,
      ppid,
      data,
      ordered: options.ordered,
      ssn: 0,
      maxRetransmits: options.maxRetransmits ?? null,
      expiresAt: lifetime === null ? null : this.o.now() + lifetime,
      offset: 0,
      abandoned: false,
      chunks: [],
    });
    this.queuedBytes += data.length;
    this.queuedPerStream.set(stream, (this.queuedPerStream.get(stream) ?? 0) + 1);
    this.o.counters.messagesOut++;
    return 'queued';
  }

  // ---- acknowledgements (§6.2.1, §7.2) ---------------------------------------------------------

  private chunkAt(tsn: number): SentChunk | undefined {
    const index = tsnDiff(tsn, this.lastCumAck) - 1;
    return index >= 0 ? this.inflight[this.inflightHead + index] : undefined;
  }

  /** A SACK chunk's body; 'violation' when it acknowledges a TSN never sent. */
  sack(body: Buffer): 'ok' | 'violation' {
    if (body.length < 12) {
      this.o.drop('SACK shorter than its fixed part');
      return 'ok';
    }
    const cumAck = body.readUInt32BE(0);
    const rwnd = body.readUInt32BE(4);
    const gapCount = body.readUInt16BE(8);
    const dupCount = body.readUInt16BE(10);
    if (body.length < 12 + 4 * gapCount + 4 * dupCount) {
      this.o.drop('SACK shorter than its blocks');
      return 'ok';
    }
    // §6.2.1 D i: an older SACK (reordered) says nothing new.
    if (tsnAfter(this.lastCumAck, cumAck)) return 'ok';
    if (tsnAfter(cumAck, this.lastAssignedTsn)) return 'violation';
    const now = this.o.now();
    const flightBefore = this.flightSize;
    const cumAdvanced = tsnAfter(cumAck, this.lastCumAck);
    let bytesAcked = 0;
    while (this.inflightHead < this.inflight.length && !tsnAfter(this.inflight[this.inflightHead]!.tsn, cumAck)) {
      const c = this.inflight[this.inflightHead++]!;
      if (!c.acked && !c.abandoned) bytesAcked += c.payload.length;
      this.settle(c);
      this.sampleRtt(c, now);
    }
    this.lastCumAck = cumAck;
    if (tsnAfter(cumAck, this.advancedPeerAckPoint)) this.advancedPeerAckPoint = cumAck;
    this.compactInflight();
    // Gap ack blocks (§3.3.4): offsets from the cumulative TSN ack, in increasing order without
    // overlap; others are skipped, so one SACK costs at most one pass over what is in flight.
    let highestAcked: number | null = null;
    const outstanding = this.inflight.length - this.inflightHead;
    let previousEnd = 0;
    for (let i = 0, pos = 12; i < gapCount; i++, pos += 4) {
      const start = body.readUInt16BE(pos);
      const end = Math.min(body.readUInt16BE(pos + 2), outstanding);
      if (start <= previousEnd || end < start) continue;
      previousEnd = end;
      for (let off = start; off <= end; off++) {
        const c = this.chunkAt(tsnAdd(cumAck, off));
        if (!c) break;
        if (!c.acked) {
          c.acked = true;
          if (!c.abandoned) bytesAcked += c.payload.length;
          this.leaveFlight(c);
          this.markRetransmit(c, false);
          this.sampleRtt(c, now);
        }
        if (highestAcked === null || tsnAfter(c.tsn, highestAcked)) highestAcked = c.tsn;
      }
    }
    if (highestAcked !== null) this.countMisses(highestAcked);
    if (cumAdvanced) {
      this.errorCount = 0;
      // §7.2.1 / §7.2.2: grow only when the window was in use (no room left for another full
      // chunk: with chunks below the MTU it is never filled to the byte) and not while recovering.
      if (!this.inFastRecovery && flightBefore + this.o.maxPayload > this.cwnd) {
        if (this.cwnd <= this.ssthresh) this.cwnd += Math.min(bytesAcked, this.o.mtu);
        else {
          this.partialBytesAcked += bytesAcked;
          if (this.partialBytesAcked >= this.cwnd) {
            this.partialBytesAcked -= this.cwnd;
            this.cwnd += this.o.mtu;
          }
        }
      }
      if (this.inFastRecovery && !tsnAfter(this.fastRecoveryExit, cumAck)) this.inFastRecovery = false;
    }
    this.peerRwnd = Math.max(0, rwnd - this.flightSize);
    // §6.3.2 R2/R3: stop T3 when nothing is outstanding, restart it when the cumulative ack moved.
    if (this.inflightHead >= this.inflight.length) this.t3Deadline = null;
    else if (cumAdvanced) this.t3Deadline = now + this.currentRto;
    this.advancePeerAckPoint();
    return 'ok';
  }

  /** §7.2.4: three reports of a TSN missing below acknowledged ones start a fast retransmit. */
  private countMisses(highestAcked: number): void {
    let fastRetransmit = false;
    for (let i = this.inflightHead; i < this.inflight.length; i++) {
      const c = this.inflight[i]!;
      if (!tsnAfter(highestAcked, c.tsn)) break;
      if (c.acked || c.abandoned || !c.inFlight) continue;
      if (++c.misses === 3) {
        c.misses = 0;
        this.leaveFlight(c);
        this.markRetransmit(c, true);
        fastRetransmit = true;
        this.o.counters.fastRetransmits++;
      }
    }
    if (!fastRetransmit) return;
    if (!this.inFastRecovery) {
      this.ssthresh = Math.max(Math.floor(this.cwnd / 2), 4 * this.o.mtu);
      this.cwnd = this.ssthresh;
      this.partialBytesAcked = 0;
      this.inFastRecovery = true;
      this.fastRecoveryExit = this.lastAssignedTsn;
    }
    this.fastRetransmitPending = true;
  }

  /** A chunk is no longer counted in flight (acknowledged, abandoned, or to be sent again). */
  private leaveFlight(c: SentChunk): void {
    if (!c.inFlight) return;
    c.inFlight = false;
    this.flightSize -= c.payload.length;
  }

  /** Marks (or unmarks) a chunk for retransmission, keeping the count of marked chunks. */
  private markRetransmit(c: SentChunk, on: boolean): void {
    if (c.retransmit === on) return;
    c.retransmit = on;
    this.retransmitPending += on ? 1 : -1;
  }

  /** A chunk leaves the window (cumulatively acknowledged). */
  private settle(c: SentChunk): void {
    if (c.inFlight) this.flightSize -= c.payload.length;
    if (c.retransmit) this.retransmitPending--;
    this.unackedBytes -= c.payload.length;
    c.inFlight = false;
    c.retransmit = false;
  }

  /** §6.3.1: one round-trip sample per round trip, never from a retransmitted chunk (Karn). */
  private sampleRtt(c: SentChunk, now: number): void {
    if (this.rttTsn !== c.tsn) return;
    this.rttTsn = null;
    if (c.transmissions !== 1) return;
    const r = Math.max(0, now - this.rttSentAt);
    if (this.srtt === null) {
      this.srtt = r;
      this.rttvar = r / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r);
      this.srtt = 0.875 * this.srtt + 0.125 * r;
    }
    this.currentRto = Math.min(RTO_MAX_MS, Math.max(RTO_MIN_MS, this.srtt + 4 * this.rttvar));
  }

  private compactInflight(): void {
    if (this.inflightHead > 1024 && this.inflightHead * 2 > this.inflight.length) {
      this.inflight = this.inflight.slice(this.inflightHead);
      this.inflightHead = 0;
    }
  }

  /** §6.3.3: T3-rtx expired. 'give-up' after Association.Max.Retrans in a row. */
  handleTimeout(now: number): 'ok' | 'give-up' {
    if (this.t3Deadline === null || this.t3Deadline > now) return 'ok';
    this.t3Deadline = null;
    this.o.counters.timeouts++;
    if (++this.errorCount > MAX_RETRANSMISSIONS) return 'give-up';
    this.currentRto = Math.min(RTO_MAX_MS, this.currentRto * 2);
    this.ssthresh = Math.max(Math.floor(this.cwnd / 2), 4 * this.o.mtu);
    this.cwnd = this.o.mtu;
    this.partialBytesAcked = 0;
    this.inFastRecovery = false;
    this.rttTsn = null;
    for (let i = this.inflightHead; i < this.inflight.length; i++) {
      const c = this.inflight[i]!;
      if (c.acked || c.abandoned) continue;
      this.leaveFlight(c);
      this.markRetransmit(c, true);
    }
    // A FORWARD TSN that may have been lost goes again (RFC 3758 §3.5 C3).
    if (tsnAfter(this.advancedPeerAckPoint, this.lastCumAck)) this.forwardTsnOwed = true;
    if (this.inflightHead < this.inflight.length) this.t3Deadline = now + this.currentRto;
    return 'ok';
  }

  // ---- partial reliability (RFC 3758 §3.5) ---------------------------------------------------

  private expired(m: OutboundMessage, now: number): boolean {
    return this.o.partialReliability && m.expiresAt !== null && now >= m.expiresAt;
  }

  private abandon(m: OutboundMessage): void {
    if (m.abandoned) return;
    m.abandoned = true;
    this.o.counters.abandoned++;
    for (const c of m.chunks) {
      if (c.acked || c.abandoned) continue;
      c.abandoned = true;
      this.leaveFlight(c);
      this.markRetransmit(c, false);
    }
    // What was never cut into chunks is never sent.
    const unsent = m.data.length - m.offset;
    if (unsent > 0) {
      this.queuedBytes -= unsent;
      m.offset = m.data.length;
      this.unqueue(m);
    }
  }

  private unqueue(m: OutboundMessage): void {
    const left = (this.queuedPerStream.get(m.stream) ?? 1) - 1;
    if (left > 0) this.queuedPerStream.set(m.stream, left);
    else this.queuedPerStream.delete(m.stream);
  }

  /** C1/C2: the cumulative point the peer may skip to, over abandoned chunks. */
  private advancePeerAckPoint(): void {
    if (!this.o.partialReliability) return;
    let point = this.advancedPeerAckPoint;
    if (tsnAfter(this.lastCumAck, point)) point = this.lastCumAck;
    for (let c = this.chunkAt(tsnAdd(point, 1)); c && c.abandoned; c = this.chunkAt(tsnAdd(point, 1))) point = c.tsn;
    if (tsnAfter(point, this.advancedPeerAckPoint)) this.forwardTsnOwed = true;
    this.advancedPeerAckPoint = point;
  }

  private forwardTsnChunk(): Buffer {
    // Each ordered stream with an abandoned message up to the new point: its highest SSN skipped.
    const skipped = new Map<number, number>();
    for (let i = this.inflightHead; i < this.inflight.length; i++) {
      const c = this.inflight[i]!;
      if (tsnAfter(c.tsn, this.advancedPeerAckPoint)) break;
      if (c.abandoned && c.message.ordered) skipped.set(c.message.stream, c.message.ssn);
    }
    const out = Buffer.alloc(4 + 4 * skipped.size);
    out.writeUInt32BE(this.advancedPeerAckPoint, 0);
    let pos = 4;
    for (const [stream, ssn] of skipped) {
      out.writeUInt16BE(stream, pos);
      out.writeUInt16BE(ssn, pos + 2);
      pos += 4;
    }
    this.forwardTsnOwed = false;
    return encodeChunk(ChunkType.FORWARD_TSN, 0, out);
  }

  // ---- what goes now -----------------------------------------------------------------------------

  /**
   * What the windows let go now: retransmissions first, then new DATA, and a FORWARD TSN when
   * abandoned chunks moved the point the peer may skip to. Starts T3 when something is outstanding.
   */
  collect(now: number): { forwardTsn: Buffer | null; data: Buffer[] } {
    const data: Buffer[] = [];
    this.collectRetransmissions(data, now);
    this.collectNewData(data, now);
    this.advancePeerAckPoint();
    const forwardTsn = this.forwardTsnOwed ? this.forwardTsnChunk() : null;
    if (this.t3Deadline === null && this.inflightHead < this.inflight.length) this.t3Deadline = now + this.currentRto;
    return { forwardTsn, data };
  }

  private collectRetransmissions(out: Buffer[], now: number): void {
    if (this.retransmitPending === 0) return;
    for (let i = this.inflightHead; i < this.inflight.length && this.retransmitPending > 0; i++) {
      const c = this.inflight[i]!;
      if (!c.retransmit) continue;
      const m = c.message;
      if (this.o.partialReliability && ((m.maxRetransmits !== null && c.transmissions > m.maxRetransmits) || this.expired(m, now))) {
        this.abandon(m);
        continue;
      }
      // §7.2.4: the first fast retransmission goes whatever the window.
      if (!this.fastRetransmitPending && this.flightSize + c.payload.length > this.cwnd) break;
      this.fastRetransmitPending = false;
      c.retransmit = false;
      this.retransmitPending--;
      c.inFlight = true;
      c.misses = 0;
      c.transmissions++;
      this.flightSize += c.payload.length;
      if (this.rttTsn === c.tsn) this.rttTsn = null;
      this.o.counters.retransmissions++;
      out.push(this.dataChunk(c));
    }
  }

  private collectNewData(out: Buffer[], now: number): void {
    while (this.queueHead < this.queue.length) {
      const m = this.queue[this.queueHead]!;
      if (m.offset >= m.data.length) {
        this.queueHead++;
        continue;
      }
      if (m.offset === 0 && this.expired(m, now)) {
        // Never sent: dropped without a TSN, so nothing has to be skipped at the peer.
        this.queuedBytes -= m.data.length;
        m.offset = m.data.length;
        m.abandoned = true;
        this.o.counters.abandoned++;
        this.unqueue(m);
        this.queueHead++;
        continue;
      }
      const size = Math.min(this.o.maxPayload, m.data.length - m.offset);
      // §6.1 rules A and B: the peer's window and the congestion window (one packet may probe an empty flight).
      if (this.flightSize > 0 && (this.flightSize + size > this.cwnd || size > this.peerRwnd)) break;
      if (m.offset === 0 && m.ordered) {
        m.ssn = this.outboundSsn.get(m.stream) ?? 0;
        this.outboundSsn.set(m.stream, (m.ssn + 1) & 0xffff);
      }
      let flags = 0;
      if (m.offset === 0) flags |= FLAG_BEGIN;
      if (m.offset + size === m.data.length) flags |= FLAG_END;
      if (!m.ordered) flags |= FLAG_UNORDERED;
      const c: SentChunk = {
        tsn: this.nextTsn,
        message: m,
        flags,
        payload: m.data.subarray(m.offset, m.offset + size),
        transmissions: 1,
        acked: false,
        inFlight: true,
        retransmit: false,
        abandoned: false,
        misses: 0,
      };
      this.nextTsn = tsnAdd(this.nextTsn, 1);
      m.offset += size;
      m.chunks.push(c);
      this.inflight.push(c);
      this.queuedBytes -= size;
      this.unackedBytes += size;
      this.flightSize += size;
      this.peerRwnd = Math.max(0, this.peerRwnd - size);
      if (this.rttTsn === null) {
        this.rttTsn = c.tsn;
        this.rttSentAt = now;
      }
      if (m.offset === m.data.length) {
        this.unqueue(m);
        this.queueHead++;
      }
      out.push(this.dataChunk(c));
    }
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
  }

  private dataChunk(c: SentChunk): Buffer {
    const header = Buffer.allocUnsafe(12);
    header.writeUInt32BE(c.tsn, 0);
    header.writeUInt16BE(c.message.stream, 4);
    header.writeUInt16BE(c.message.ordered ? c.message.ssn : 0, 6);
    header.writeUInt32BE(c.message.ppid, 8);
    this.o.counters.dataChunksOut++;
    return encodeChunk(ChunkType.DATA, c.flags, header, c.payload);
  }

  /** The association ended (or the peer shut down): nothing more goes. */
  clear(): void {
    this.queue.length = 0;
    this.queueHead = 0;
    this.queuedBytes = 0;
    this.queuedPerStream.clear();
    this.inflight = [];
    this.inflightHead = 0;
    this.unackedBytes = 0;
    this.flightSize = 0;
    this.retransmitPending = 0;
    this.t3Deadline = null;
  }

  describe(): Record<string, number> {
    return { cwnd: this.cwnd, 'peer-rwnd': this.peerRwnd, 'rto-ms': Math.round(this.currentRto), 'srtt-ms': this.srtt === null ? -1 : Math.round(this.srtt), 'buffered-out': this.bufferedAmount };
  }
}
