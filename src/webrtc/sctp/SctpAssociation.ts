// One SCTP association over DTLS (RFC 8261), sans-IO: packets in (`receive`),
// packets out (`output`), time in (`now`, `deadline`/`handleTimeout`), messages
// out (`onMessage`). No sockets and no timers of its own, so tests drive it with
// a fake clock and the owner keeps exactly one timer per association.
//
// What WebRTC data channels need of RFC 4960 (as updated by RFC 9260):
// - association setup (§5.1). ferry runs the responder side: every WebRTC peer
//   sends the INIT (ferry is ICE-lite, so the peer is the controlling agent and
//   starts). The initiator side (`connect`) lets two associations talk to each
//   other in tests and benchmarks;
// - reliable and ordered delivery: DATA, SACK with gap blocks and duplicates
//   (§6.2), fragmentation and reassembly (§6.9), delayed SACKs, the T3-rtx timer
//   and RTO (§6.3), fast retransmit (§7.2.4) and congestion control (§7.2);
// - unordered delivery (§6.6) and partial reliability (RFC 3758: FORWARD-TSN,
//   abandoning by retransmission count or lifetime, RFC 8831 §6.1);
// - stream reset (RFC 6525 §5.1.2, §5.2.2), which is how data channels close
//   (RFC 8831 §6.7);
// - HEARTBEAT answers, ABORT, and the peer's SHUTDOWN (§9.2).
//
// This file holds the association itself: its state table, setup, the checks
// every packet goes through (ports, verification tag, chunk order), the timers'
// one deadline, how chunks are packed into packets, and how it ends. Once
// established, three parts do the rest: SctpReceiver (DATA, FORWARD TSN,
// reassembly, SACKs), SctpSender (queue, TSNs, SACK processing, T3-rtx,
// congestion control, abandoning) and StreamReset (RE-CONFIG).
// About 680 lines, kept whole: the state table, the per-packet checks and the
// one deadline all read and change the association's state, and splitting them
// would pass that state between files.
//
// Bounded by construction: reassembly holds at most the receive window (plus one
// packet), received TSNs are tracked within a 16-bit window and a bounded number of
// gaps, a message above the announced max-message-size aborts the association, and
// sending stops at `maxSendBuffer`. Every refusal of the peer's bytes is a counted
// drop (`onDrop`); nothing a peer sends throws out of `receive`.
import { randomBytes, randomInt, timingSafeEqual } from 'node:crypto';

import { ChunkType, COMMON_HEADER_SIZE, encodeChunk, encodePacket, encodeParameter, parsePacket, parseParameters, type Chunk, type SctpPacket } from './SctpPacket.js';
import { MAX_RETRANSMISSIONS, newCounters, type SctpCounters } from './SctpCommon.js';
import { CAUSE_PROTOCOL_VIOLATION, SctpReceiver } from './SctpReceiver.js';
import { RTO_INITIAL_MS, SctpSender, type SendOptions, type SendResult } from './SctpSender.js';
import { StreamReset } from './StreamReset.js';

export type { SctpCounters } from './SctpCommon.js';
export type { SendOptions, SendResult } from './SctpSender.js';

/**
 * SCTP packet size ferry sends: IPv6's minimum MTU (1280) minus IPv6 and UDP headers (48) and
 * the DTLS 1.2 record overhead with AES-GCM (13 + 8 + 16), rounded down as Chrome does (1191).
 */
export const DEFAULT_SCTP_MTU = 1191;
const DATA_CHUNK_HEADER = 16;
/** Max.Init.Retransmits (§16). */
const MAX_INIT_RETRANSMISSIONS = 8;
/** How long a State Cookie is valid (§5.1.3). */
const COOKIE_LIFETIME_MS = 60_000;
/** Streams ferry accepts and opens (RFC 8831 §6.2: data channels use up to 65535). */
const MAX_STREAMS = 65535;
/** §3.2.1 parameters and §3.3.10 error causes ferry writes. */
const PARAM_STATE_COOKIE = 7;
const PARAM_SUPPORTED_EXTENSIONS = 0x8008;
const PARAM_FORWARD_TSN_SUPPORTED = 0xc000;
const CAUSE_INVALID_STREAM = 1;

/**
 * - listening: DTLS is up and ferry waits for the peer's INIT / COOKIE ECHO (§5.1, the
 *   responder's CLOSED state: nothing is kept but the cookie it handed out);
 * - cookie-wait, cookie-echoed: the initiator's INIT, then its COOKIE ECHO, are out (§5.1);
 * - established: data flows both ways;
 * - shutdown-ack-sent: the peer asked to shut down (§9.2); ferry answered and waits for
 *   SHUTDOWN COMPLETE;
 * - closed: terminal (aborted either way, shut down, closed by ferry, or failed).
 */
export type SctpState = 'listening' | 'cookie-wait' | 'cookie-echoed' | 'established' | 'shutdown-ack-sent' | 'closed';
type SctpInput = 'connect' | 'init-ack' | 'cookie-ack' | 'cookie-echo' | 'shutdown' | 'shutdown-complete' | 'end';

const TRANSITIONS: Readonly<Record<SctpState, Partial<Record<SctpInput, SctpState>>>> = {
  listening: { connect: 'cookie-wait', 'cookie-echo': 'established', end: 'closed' },
  'cookie-wait': { 'init-ack': 'cookie-echoed', end: 'closed' },
  'cookie-echoed': { 'cookie-ack': 'established', end: 'closed' },
  established: { 'cookie-echo': 'established', shutdown: 'shutdown-ack-sent', end: 'closed' },
  'shutdown-ack-sent': { shutdown: 'shutdown-ack-sent', 'shutdown-complete': 'closed', end: 'closed' },
  closed: {},
};

/** Why an association ended. */
export type SctpCloseCause = 'local' | 'peer-abort' | 'peer-shutdown' | 'protocol-violation' | 'timeout';

export interface SctpAssociationOptions {
  /** a=sctp-port of each side (RFC 8841 §5). */
  localPort: number;
  remotePort: number;
  /** Bytes of unread reassembly ferry advertises (a_rwnd). Must exceed maxMessageSize. */
  receiveWindow: number;
  /** Largest message ferry accepts: the a=max-message-size it announced (RFC 8841 §6). */
  maxMessageSize: number;
  /** Bytes queued and unacknowledged beyond which `send` refuses. */
  maxSendBuffer: number;
  mtu?: number;
  /** Milliseconds, monotonic. */
  now(): number;
  output(packet: Buffer): void;
  onEstablished(): void;
  onMessage(stream: number, ppid: number, data: Buffer): void;
  /** The peer reset these of its outgoing streams (RFC 6525 §5.2.2); empty = all. */
  onIncomingStreamsReset(streams: number[]): void;
  /** Ferry's reset of these outgoing streams completed (or could not be made). */
  onOutgoingStreamsReset(streams: number[]): void;
  /** Once, whatever ended it. */
  onClosed(cause: SctpCloseCause, reason: string): void;
  /** A packet or chunk from the peer was refused (counted by the owner). */
  onDrop?(reason: string): void;
}

/** What the peer said in its INIT, kept until its COOKIE ECHO establishes the association. */
interface PeerInit {
  tag: number;
  rwnd: number;
  outboundStreams: number;
  inboundStreams: number;
  initialTsn: number;
  partialReliability: boolean;
  reconfig: boolean;
}

type InitFixed = Pick<PeerInit, 'tag' | 'rwnd' | 'outboundStreams' | 'inboundStreams' | 'initialTsn'>;

/** §3.3.2 / §3.3.3: the fixed part INIT and INIT ACK share (the caller checked its 16 bytes). */
function readInitFixed(body: Buffer): InitFixed {
  return {
    tag: body.readUInt32BE(0),
    rwnd: body.readUInt32BE(4),
    outboundStreams: body.readUInt16BE(8),
    inboundStreams: body.readUInt16BE(10),
    initialTsn: body.readUInt32BE(12),
  };
}

/** The parts that exist once the association is established. */
interface Parts {
  receiver: SctpReceiver;
  sender: SctpSender;
  streamReset: StreamReset;
}

export class SctpAssociation {
  private currentState: SctpState = 'listening';
  private readonly mtu: number;
  private readonly maxPayload: number;
  private readonly ourTag: number;
  private readonly ourInitialTsn: number;
  private cookie: Buffer | null = null;
  private cookieIssuedAt = 0;
  private peer: PeerInit | null = null;
  private peerTag = 0;
  private inboundStreamCount = 0;
  private outboundStreamCount = 0;
  /** Null until established; kept (cleared) after the end so `describe` still reports. */
  private parts: Parts | null = null;

  // ---- timers of setup and shutdown (deadlines in `now()` milliseconds) ----
  private t2Deadline: number | null = null;
  private t2Retries = 0;
  /** The initiator's T1-init / T1-cookie (§5.1): the chunk to send again, and how often it went. */
  private t1: { deadline: number; chunk: Buffer; tag: number; retries: number } | null = null;

  /** Chunks (already encoded) that go first in the next packet: COOKIE ACK, answers, errors. */
  private control: Buffer[] = [];
  private processing = false;
  readonly counters: SctpCounters = newCounters();

  constructor(private readonly options: SctpAssociationOptions) {
    this.mtu = options.mtu ?? DEFAULT_SCTP_MTU;
    this.maxPayload = this.mtu - COMMON_HEADER_SIZE - DATA_CHUNK_HEADER;
    // §5.1.3: a non-zero random tag; §5.1.2: a random initial TSN.
    this.ourTag = randomInt(1, 0x100000000);
    this.ourInitialTsn = randomInt(0, 0x100000000);
  }

  get state(): SctpState {
    return this.currentState;
  }

  /** Bytes waiting to be sent or acknowledged (a data channel's bufferedAmount, summed). */
  get bufferedAmount(): number {
    return this.parts?.sender.bufferedAmount ?? 0;
  }

  /** Streams each way, as negotiated (0 until established). */
  get streams(): { inbound: number; outbound: number } {
    return { inbound: this.inboundStreamCount, outbound: this.outboundStreamCount };
  }

  get peerSupportsPartialReliability(): boolean {
    return this.peer?.partialReliability ?? false;
  }

  /** Read through a call, so a callback that closed the association mid-packet is seen. */
  private isClosed(): boolean {
    return this.currentState === 'closed';
  }

  private apply(input: SctpInput): boolean {
    const next = TRANSITIONS[this.currentState][input];
    if (next === undefined) return false;
    this.currentState = next;
    return true;
  }

  /** The retransmission timeout (§6.3.1): the sender's estimate once there is one. */
  private rto(): number {
    return this.parts?.sender.rto ?? RTO_INITIAL_MS;
  }

  // ---- time ------------------------------------------------------------------------------

  /** When `handleTimeout` must next run (null: nothing pending). */
  deadline(): number | null {
    let d: number | null = null;
    const consider = (t: number | null | undefined) => {
      if (t != null && (d === null || t < d)) d = t;
    };
    const parts = this.parts;
    if (parts) {
      consider(parts.sender.deadline());
      consider(parts.receiver.deadline());
      consider(parts.streamReset.deadline());
    }
    consider(this.t2Deadline);
    consider(this.t1?.deadline);
    return d;
  }

  handleTimeout(): void {
    if (this.currentState === 'closed') return;
    const now = this.options.now();
    const parts = this.parts;
    if (parts) {
      parts.receiver.handleTimeout(now);
      if (parts.sender.handleTimeout(now) === 'give-up') return this.fail('timeout', 'the peer stopped acknowledging (Association.Max.Retrans)');
      if (parts.streamReset.handleTimeout(now) === 'give-up') return this.fail('timeout', 'the peer never answered a stream reset');
    }
    if (this.t2Deadline !== null && this.t2Deadline <= now) this.t2Expired();
    if (this.t1 !== null && this.t1.deadline <= now) this.t1Expired();
    this.flush();
  }

  // ---- the peer's packets ----------------------------------------------------------------

  /** One SCTP packet from the peer (the payload of one DTLS application-data record). */
  receive(data: Buffer): void {
    if (this.currentState === 'closed') return;
    const parsed = parsePacket(data);
    if (!parsed.ok) return this.drop(parsed.reason);
    try {
      this.receivePacket(parsed.packet);
    } catch (err) {
      // Every length is checked before it is read; reaching here is a bug, not the peer's
      // right to crash the process: the association goes, the rest of ferry stays.
      this.processing = false;
      this.fail('protocol-violation', `internal error on a peer's packet: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private receivePacket(packet: SctpPacket): void {
    this.counters.packetsIn++;
    if (packet.destinationPort !== this.options.localPort || packet.sourcePort !== this.options.remotePort) {
      return this.drop(`ports ${packet.sourcePort}->${packet.destinationPort} are not the a=sctp-port pair`);
    }
    const first = packet.chunks[0]!;
    // §6.10: INIT, INIT ACK and SHUTDOWN COMPLETE travel alone.
    if (first.type === ChunkType.INIT) {
      if (packet.chunks.length !== 1 || packet.verificationTag !== 0) return this.drop('INIT not alone or with a non-zero tag');
      this.handleInit(first);
      this.flush();
      return;
    }
    if (!this.tagAccepted(packet.verificationTag, first)) return this.drop('wrong verification tag');
    // Sends a callback makes meanwhile (an echo) wait for the one flush after the packet.
    this.processing = true;
    let hadData = false;
    for (const chunk of packet.chunks) {
      if (this.isClosed()) break;
      const go = this.handleChunk(chunk);
      if (go === 'data') hadData = true;
      if (go === 'stop') break;
    }
    this.processing = false;
    if (this.isClosed()) return;
    if (hadData && this.parts) {
      // §6.2: the SACK rule; RFC 6525 §5.2.2: a reset waiting for this data takes place.
      this.parts.receiver.afterPacket();
      this.parts.streamReset.afterData();
    }
    this.flush();
  }

  /** §8.5 / §8.5.1: which verification tag a packet must carry. */
  private tagAccepted(tag: number, first: Chunk): boolean {
    const reflected = (first.flags & 1) === 1; // the T bit
    if (first.type === ChunkType.ABORT || first.type === ChunkType.SHUTDOWN_COMPLETE) {
      return reflected ? this.peer !== null && tag === this.peerTag : tag === this.ourTag;
    }
    return tag === this.ourTag;
  }

  /** One chunk; 'data' when it carried DATA or FORWARD TSN (a SACK is owed), 'stop' to skip the rest. */
  private handleChunk(chunk: Chunk): 'ok' | 'data' | 'stop' {
    const parts = this.currentState === 'established' ? this.parts : null;
    switch (chunk.type) {
      case ChunkType.DATA:
        if (!parts) return this.dropChunk('DATA before the association is up');
        parts.receiver.data(chunk.flags, chunk.body);
        return 'data';
      case ChunkType.SACK:
        if (parts && parts.sender.sack(chunk.body) === 'violation') {
          this.abort(CAUSE_PROTOCOL_VIOLATION, 'SACK acknowledging a TSN never sent');
          return 'stop';
        }
        return 'ok';
      case ChunkType.FORWARD_TSN:
        if (!parts) return this.dropChunk('FORWARD TSN before the association is up');
        parts.receiver.forwardTsn(chunk.body);
        return 'data';
      case ChunkType.COOKIE_ECHO:
        this.handleCookieEcho(chunk.body);
        return 'ok';
      case ChunkType.HEARTBEAT:
        // §8.3: the HEARTBEAT ACK carries the Heartbeat Info back unchanged.
        if (parts && chunk.body.length <= this.mtu - COMMON_HEADER_SIZE - 4) this.control.push(encodeChunk(ChunkType.HEARTBEAT_ACK, 0, chunk.body));
        return 'ok';
      case ChunkType.ABORT:
        this.end('peer-abort', 'the peer aborted the association');
        return 'stop';
      case ChunkType.SHUTDOWN:
        this.handleShutdown(chunk.body);
        return 'ok';
      case ChunkType.SHUTDOWN_COMPLETE:
        if (this.currentState === 'shutdown-ack-sent') {
          this.apply('shutdown-complete');
          this.afterClose('peer-shutdown', 'the peer shut the association down');
        }
        return 'stop';
      case ChunkType.RE_CONFIG:
        if (parts) parts.streamReset.handle(chunk.body);
        return 'ok';
      case ChunkType.INIT_ACK:
        if (this.currentState === 'cookie-wait') this.handleInitAck(chunk);
        return 'stop';
      case ChunkType.COOKIE_ACK:
        if (this.currentState === 'cookie-echoed') {
          this.t1 = null;
          this.apply('cookie-ack');
          this.establish();
        }
        return 'ok';
      case ChunkType.ERROR:
      case ChunkType.HEARTBEAT_ACK:
      case ChunkType.SHUTDOWN_ACK:
        // Answers to what ferry never sends (it never heartbeats or shuts down).
        return 'ok';
      case ChunkType.INIT:
        return this.dropChunk('INIT bundled with other chunks');
      default:
        // §3.2: the two high bits of an unknown type say whether to skip it or the rest of the packet.
        if ((chunk.type & 0x80) === 0) return this.dropChunk(`unknown chunk type ${chunk.type}`, 'stop');
        return 'ok';
    }
  }

  private dropChunk(reason: string, then: 'ok' | 'stop' = 'ok'): 'ok' | 'stop' {
    this.drop(reason);
    return then;
  }

  private drop(reason: string): void {
    this.options.onDrop?.(reason);
  }

  // ---- association setup (§5.1) -----------------------------------------------------------

  private handleInit(chunk: Chunk): void {
    const body = chunk.body;
    if (body.length < 16) return this.drop('INIT shorter than its fixed part');
    const fixed = readInitFixed(body);
    const { tag, rwnd, outboundStreams, inboundStreams } = fixed;
    // §3.3.2: a zero tag or stream count is an invalid INIT (and 1500 is the smallest a_rwnd).
    if (tag === 0 || outboundStreams === 0 || inboundStreams === 0 || rwnd < 1500) return this.drop('INIT with invalid mandatory parameters');
    const params = parseParameters(body.subarray(16));
    if (params === null) return this.drop('INIT with a malformed parameter');
    if (this.currentState !== 'listening') {
      // A restart or collision (§5.2): WebRTC peers start once per DTLS association.
      return this.drop('INIT on an association already up');
    }
    this.peer = { ...fixed, ...SctpAssociation.extensions(params) };
    // The cookie only needs to prove the COOKIE ECHO answers this INIT ACK: DTLS already
    // authenticated the peer, so the INIT is kept here rather than inside the cookie.
    this.cookie = randomBytes(32);
    this.cookieIssuedAt = this.options.now();
    this.emit(tag, [this.initChunk(ChunkType.INIT_ACK, Math.min(MAX_STREAMS, inboundStreams), [encodeParameter(PARAM_STATE_COOKIE, this.cookie)])]);
  }

  /** INIT or INIT ACK (§3.3.2, §3.3.3) with ferry's tag, window, streams, initial TSN and extensions. */
  private initChunk(type: number, outboundStreams: number, extra: Buffer[]): Buffer {
    const fixed = Buffer.alloc(16);
    fixed.writeUInt32BE(this.ourTag, 0);
    fixed.writeUInt32BE(this.options.receiveWindow, 4);
    fixed.writeUInt16BE(outboundStreams, 8);
    fixed.writeUInt16BE(MAX_STREAMS, 10);
    fixed.writeUInt32BE(this.ourInitialTsn, 12);
    return encodeChunk(
      type,
      0,
      fixed,
      ...extra,
      // RFC 5061 §4.2.7: the extensions ferry speaks; RFC 3758 §3.1: partial reliability.
      encodeParameter(PARAM_SUPPORTED_EXTENSIONS, Buffer.from([ChunkType.RE_CONFIG, ChunkType.FORWARD_TSN])),
      encodeParameter(PARAM_FORWARD_TSN_SUPPORTED, Buffer.alloc(0)),
    );
  }

  private static extensions(params: { type: number; value: Buffer }[]): { partialReliability: boolean; reconfig: boolean } {
    let partialReliability = false;
    let reconfig = false;
    for (const p of params) {
      if (p.type === PARAM_FORWARD_TSN_SUPPORTED) partialReliability = true;
      if (p.type === PARAM_SUPPORTED_EXTENSIONS) {
        if (p.value.includes(ChunkType.FORWARD_TSN)) partialReliability = true;
        if (p.value.includes(ChunkType.RE_CONFIG)) reconfig = true;
      }
    }
    return { partialReliability, reconfig };
  }

  /** Starts the association as its initiator (§5.1 A): INIT, then COOKIE ECHO. */
  connect(): void {
    if (!this.apply('connect')) return;
    const init = this.initChunk(ChunkType.INIT, MAX_STREAMS, []);
    this.t1 = { deadline: this.options.now() + this.rto(), chunk: init, tag: 0, retries: 0 };
    this.emit(0, [init]);
  }

  private handleInitAck(chunk: Chunk): void {
    const body = chunk.body;
    if (body.length < 16) return this.drop('INIT ACK shorter than its fixed part');
    const fixed = readInitFixed(body);
    const { tag, outboundStreams, inboundStreams } = fixed;
    const params = parseParameters(body.subarray(16));
    const cookie = params?.find((p) => p.type === PARAM_STATE_COOKIE);
    if (tag === 0 || outboundStreams === 0 || inboundStreams === 0 || !params || !cookie) return this.drop('INIT ACK with invalid mandatory parameters');
    this.peer = { ...fixed, ...SctpAssociation.extensions(params) };
    this.peerTag = tag;
    this.apply('init-ack');
    const echo = encodeChunk(ChunkType.COOKIE_ECHO, 0, cookie.value);
    this.t1 = { deadline: this.options.now() + this.rto(), chunk: echo, tag, retries: 0 };
    this.emit(tag, [echo]);
  }

  private t1Expired(): void {
    const t1 = this.t1!;
    if (++t1.retries > MAX_INIT_RETRANSMISSIONS) {
      this.t1 = null;
      this.end('timeout', 'the peer never answered the INIT');
      return;
    }
    t1.deadline = this.options.now() + this.rto();
    this.emit(t1.tag, [t1.chunk]);
  }

  private handleCookieEcho(body: Buffer): void {
    const cookie = this.cookie;
    const valid = cookie !== null && body.length === cookie.length && timingSafeEqual(body, cookie);
    if (this.currentState === 'established') {
      // §5.2.4 case D: the COOKIE ACK was lost; answer again.
      if (valid) this.control.push(encodeChunk(ChunkType.COOKIE_ACK, 0));
      return;
    }
    if (this.currentState !== 'listening') return;
    if (!valid || !this.peer) return this.drop('COOKIE ECHO with an unknown cookie');
    if (this.options.now() - this.cookieIssuedAt > COOKIE_LIFETIME_MS) return this.drop('stale cookie');
    this.apply('cookie-echo');
    this.control.push(encodeChunk(ChunkType.COOKIE_ACK, 0));
    this.establish();
  }

  /** Both setups end here: the peer's parameters taken, the receiver, sender and stream reset made. */
  private establish(): void {
    const peer = this.peer!;
    this.peerTag = peer.tag;
    this.inboundStreamCount = Math.min(MAX_STREAMS, peer.outboundStreams);
    this.outboundStreamCount = Math.min(MAX_STREAMS, peer.inboundStreams);
    const now = () => this.options.now();
    const drop = (reason: string) => this.drop(reason);
    const receiver = new SctpReceiver({
      initialTsn: peer.initialTsn,
      inboundStreams: this.inboundStreamCount,
      receiveWindow: this.options.receiveWindow,
      maxMessageSize: this.options.maxMessageSize,
      mtu: this.mtu,
      now,
      counters: this.counters,
      deliver: (stream, ppid, data) => this.options.onMessage(stream, ppid, data),
      drop,
      violation: (cause, reason, info) => this.abort(cause, reason, info),
      invalidStream: (stream) => {
        // §6.5: acknowledged (the receiver did), reported and discarded.
        const cause = Buffer.alloc(4);
        cause.writeUInt16BE(stream, 0);
        this.control.push(encodeChunk(ChunkType.ERROR, 0, encodeParameter(CAUSE_INVALID_STREAM, cause)));
        this.drop('DATA on a stream that does not exist');
      },
      isOpen: () => !this.isClosed(),
    });
    const sender = new SctpSender({
      initialTsn: this.ourInitialTsn,
      mtu: this.mtu,
      maxPayload: this.maxPayload,
      maxSendBuffer: this.options.maxSendBuffer,
      peerRwnd: peer.rwnd,
      partialReliability: peer.partialReliability,
      now,
      counters: this.counters,
      drop,
    });
    const streamReset = new StreamReset({
      ourInitialTsn: this.ourInitialTsn,
      peerInitialTsn: peer.initialTsn,
      now,
      rto: () => sender.rto,
      lastAssignedTsn: () => sender.lastAssignedTsn,
      cumulativeReceived: () => receiver.cumulative,
      hasQueued: (stream) => sender.hasQueued(stream),
      resetOutgoing: (streams) => sender.resetStreams(streams),
      resetIncoming: (streams) => receiver.resetStreams(streams),
      onIncomingStreamsReset: (streams) => this.options.onIncomingStreamsReset(streams),
      onOutgoingStreamsReset: (streams) => this.options.onOutgoingStreamsReset(streams),
      drop,
    });
    this.parts = { receiver, sender, streamReset };
    this.options.onEstablished();
  }

  // ---- sending -----------------------------------------------------------------------------

  /** Queues one message (the caller maps empty messages to RFC 8831's one-byte form). */
  send(stream: number, ppid: number, data: Buffer, options: SendOptions): SendResult {
    const parts = this.parts;
    if (this.currentState !== 'established' || !parts) return 'closed';
    if (stream >= this.outboundStreamCount) return 'invalid-stream';
    const result = parts.sender.send(stream, ppid, data, options);
    if (result === 'queued' && !this.processing) this.flush();
    return result;
  }

  /** RFC 6525 §5.1.2: resets these outgoing streams once what was queued on them is sent. */
  resetStreams(streams: number[]): void {
    const parts = this.parts;
    if (this.currentState !== 'established' || !parts) return;
    if (!this.peer?.reconfig) {
      // Without RE-CONFIG the peer cannot hear it; the streams are reset on ferry's side only.
      parts.sender.resetStreams(streams);
      this.options.onOutgoingStreamsReset(streams);
      return;
    }
    parts.streamReset.request(streams);
    if (!this.processing) this.flush();
  }

  /**
   * Sends what is owed and what the windows allow, in this order: control chunks, a SACK,
   * FORWARD TSN, re-configuration, DATA (retransmissions first).
   */
  private flush(): void {
    if (this.currentState === 'closed' || !this.peer) {
      this.control = [];
      return;
    }
    const now = this.options.now();
    const parts = this.currentState === 'established' ? this.parts : null;
    // The sender goes first: a stream reset names the last TSN it assigned (RFC 6525 §5.1.2).
    const { forwardTsn, data } = parts ? parts.sender.collect(now) : { forwardTsn: null, data: [] };
    const reconfig = parts ? parts.streamReset.take(now) : [];
    const head: Buffer[] = this.control;
    this.control = [];
    const receiver = this.parts?.receiver;
    // §6.2: a SACK that is due goes alone; one merely owed rides on any packet that goes anyway.
    if (receiver?.sackOwed && (receiver.sackDue || head.length > 0 || forwardTsn !== null || reconfig.length > 0 || data.length > 0)) head.push(receiver.sack());
    if (forwardTsn) head.push(forwardTsn);
    head.push(...reconfig);
    if (head.length === 0 && data.length === 0) return;
    this.emit(this.peerTag, [...head, ...data]);
  }

  /** Packs chunks, in order, into as few packets of at most one MTU as they fit. */
  private emit(tag: number, chunks: Buffer[]): void {
    let batch: Buffer[] = [];
    let size = COMMON_HEADER_SIZE;
    for (const c of chunks) {
      if (batch.length > 0 && size + c.length > this.mtu) {
        this.output(tag, batch);
        batch = [];
        size = COMMON_HEADER_SIZE;
      }
      batch.push(c);
      size += c.length;
    }
    if (batch.length) this.output(tag, batch);
  }

  private output(tag: number, chunks: Buffer[]): void {
    this.counters.packetsOut++;
    this.options.output(encodePacket(this.options.localPort, this.options.remotePort, tag, chunks));
  }

  // ---- ending ----------------------------------------------------------------------------------

  /** §9.2: the peer shuts down; ferry answers at once (what it still had queued is dropped). */
  private handleShutdown(body: Buffer): void {
    if (this.currentState !== 'established' && this.currentState !== 'shutdown-ack-sent') return;
    if (body.length < 4) return this.drop('SHUTDOWN shorter than its cumulative TSN ack');
    this.apply('shutdown');
    this.parts?.sender.clear();
    this.parts?.streamReset.clear();
    this.control.push(encodeChunk(ChunkType.SHUTDOWN_ACK, 0));
    this.t2Deadline = this.options.now() + this.rto();
  }

  private t2Expired(): void {
    this.t2Deadline = null;
    if (++this.t2Retries > MAX_RETRANSMISSIONS) {
      this.fail('timeout', 'the peer never completed its shutdown');
      return;
    }
    this.control.push(encodeChunk(ChunkType.SHUTDOWN_ACK, 0));
    this.t2Deadline = this.options.now() + this.rto();
  }

  /** Ends the association from ferry's side (ABORT, §9.1). Idempotent. */
  close(reason = 'closed'): void {
    if (this.currentState === 'closed') return;
    if (this.peer !== null && this.currentState !== 'listening') this.output(this.peerTag, [encodeChunk(ChunkType.ABORT, 0)]);
    this.end('local', reason);
  }

  /** A protocol violation or unexpected state: ABORT with an error cause, then closed. */
  private abort(cause: number, reason: string, info: Buffer = Buffer.from(reason.slice(0, 200))): void {
    if (this.currentState === 'closed') return;
    if (this.peer !== null) {
      this.output(this.peerTag, [...this.control, encodeChunk(ChunkType.ABORT, 0, encodeParameter(cause, info))]);
      this.control = [];
    }
    this.end('protocol-violation', reason);
  }

  private fail(cause: SctpCloseCause, reason: string): void {
    if (this.currentState === 'closed') return;
    if (this.peer !== null) this.output(this.peerTag, [encodeChunk(ChunkType.ABORT, 0)]);
    this.end(cause, reason);
  }

  private end(cause: SctpCloseCause, reason: string): void {
    if (!this.apply('end')) return;
    this.afterClose(cause, reason);
  }

  private afterClose(cause: SctpCloseCause, reason: string): void {
    this.t2Deadline = null;
    this.t1 = null;
    this.control = [];
    this.parts?.sender.clear();
    this.parts?.receiver.clear();
    this.parts?.streamReset.clear();
    this.options.onClosed(cause, reason);
  }

  /** For Admin `handle_info`. */
  describe(): Record<string, number | string | boolean> {
    return {
      state: this.currentState,
      'inbound-streams': this.inboundStreamCount,
      'outbound-streams': this.outboundStreamCount,
      'partial-reliability': this.peerSupportsPartialReliability,
      ...(this.parts?.sender.describe() ?? {}),
      'buffered-in': this.parts?.receiver.bufferedBytes ?? 0,
      ...this.counters,
    };
  }
}
