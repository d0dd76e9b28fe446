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
// Bounded by construction: reassembly holds at most the receive window (plus one
// packet), received TSNs are tracked within a 16-bit window and a bounded number of
// gaps, a message above the announced max-message-size aborts the association, and
// sending stops at `maxSendBuffer`. Every refusal of the peer's bytes is a counted
// drop (`onDrop`); nothing a peer sends throws out of `receive`.
import { randomBytes, randomInt, timingSafeEqual } from 'node:crypto';

import { ChunkType, COMMON_HEADER_SIZE, encodeChunk, encodePacket, encodeParameter, parsePacket, parseParameters, type Chunk, type SctpPacket } from './SctpPacket.js';
import { ReceivedTsns, ssnAfter, tsnAdd, tsnAfter, tsnDiff } from './Tsn.js';

/**
 * SCTP packet size ferry sends: IPv6's minimum MTU (1280) minus IPv6 and UDP headers (48) and
 * the DTLS 1.2 record overhead with AES-GCM (13 + 8 + 16), rounded down as Chrome does (1191).
 */
export const DEFAULT_SCTP_MTU = 1191;
const DATA_CHUNK_HEADER = 16;
/** RFC 9260 §16: RTO.Initial 1 s, RTO.Max 60 s; RTO.Min lowered from 1 s so one lost packet on a short path does not stall a reliable channel for a second. */
const RTO_INITIAL_MS = 1000;
const RTO_MIN_MS = 200;
const RTO_MAX_MS = 60_000;
/** Association.Max.Retrans (§16): consecutive timeouts before the peer is declared unreachable. */
const MAX_RETRANSMISSIONS = 10;
/** Max.Init.Retransmits (§16). */
const MAX_INIT_RETRANSMISSIONS = 8;
/** §6.2: a SACK within 200 ms of the first unacknowledged DATA. */
const SACK_DELAY_MS = 200;
/** How long a State Cookie is valid (§5.1.3). */
const COOKIE_LIFETIME_MS = 60_000;
/** DATA more than this many TSNs beyond the cumulative TSN is dropped (gap blocks are 16-bit offsets). */
const MAX_TSN_WINDOW = 0xffff;
/** Separate ranges of received TSNs above a gap tracked at once; a chunk opening another is dropped. */
const MAX_GAP_RANGES = 256;
/** Gap blocks and duplicate TSNs reported per SACK (§3.3.4), so a SACK fits one packet. */
const MAX_REPORTED_GAPS = 64;
const MAX_REPORTED_DUPLICATES = 16;
/** Streams ferry accepts and opens (RFC 8831 §6.2: data channels use up to 65535). */
const MAX_STREAMS = 65535;
/** §3.2.1 parameters and §3.3.10 error causes ferry writes. */
const PARAM_STATE_COOKIE = 7;
const PARAM_SUPPORTED_EXTENSIONS = 0x8008;
const PARAM_FORWARD_TSN_SUPPORTED = 0xc000;
const CAUSE_INVALID_STREAM = 1;
const CAUSE_NO_USER_DATA = 9;
const CAUSE_PROTOCOL_VIOLATION = 13;
/** RFC 6525 §4: re-configuration parameters and results. */
const RECONFIG_OUTGOING_RESET = 13;
const RECONFIG_INCOMING_RESET = 14;
const RECONFIG_SSN_TSN_RESET = 15;
const RECONFIG_RESPONSE = 16;
const RECONFIG_ADD_OUTGOING = 17;
const RECONFIG_ADD_INCOMING = 18;
const RESULT_NOTHING_TO_DO = 0;
const RESULT_PERFORMED = 1;
const RESULT_DENIED = 2;
const RESULT_BAD_SEQUENCE = 5;
const RESULT_IN_PROGRESS = 6;
/** DATA chunk flags (§3.3.1). */
const FLAG_END = 1;
const FLAG_BEGIN = 2;
const FLAG_UNORDERED = 4;

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

export interface SendOptions {
  ordered: boolean;
  /** RFC 3758 partial reliability: retransmissions allowed (null: unlimited). */
  maxRetransmits?: number | null;
  /** RFC 3758 partial reliability: milliseconds the message may take to be sent (null: forever). */
  lifetimeMs?: number | null;
}

export type SendResult = 'queued' | 'closed' | 'invalid-stream' | 'empty' | 'buffer-full';

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

export interface SctpCounters {
  packetsIn: number;
  packetsOut: number;
  dataChunksIn: number;
  dataChunksOut: number;
  retransmissions: number;
  fastRetransmits: number;
  timeouts: number;
  abandoned: number;
  messagesIn: number;
  messagesOut: number;
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

  // ---- sending (§6.1, §7) ----
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
  private ssthresh = 0;
  private partialBytesAcked = 0;
  private peerRwnd = 0;
  private inFastRecovery = false;
  private fastRecoveryExit = 0;
  private readonly outboundSsn = new Map<number, number>();
  private rto = RTO_INITIAL_MS;
  private srtt: number | null = null;
  private rttvar = 0;
  private rttTsn: number | null = null;
  private rttSentAt = 0;
  private errorCount = 0;
  private advancedPeerAckPoint: number;
  private forwardTsnOwed = false;

  // ---- receiving (§6.2) ----
  private received: ReceivedTsns | null = null;
  private duplicates: number[] = [];
  private sackOwed = false;
  private sackImmediate = false;
  private packetsSinceSack = 0;
  private bufferedBytes = 0;
  private readonly inboundStreams = new Map<number, InboundStream>();
  private readonly unordered = new Map<number, UnorderedFragment>();

  // ---- stream reset (RFC 6525) ----
  private ourReconfigSeq: number;
  private readonly pendingResets = new Set<number>();
  private outstandingReset: { reqSeq: number; lastTsn: number; streams: number[]; retries: number } | null = null;
  private peerLastReqSeq = 0;
  private lastResponse: { reqSeq: number; result: number } | null = null;
  private deferredReset: { reqSeq: number; lastTsn: number; streams: number[] } | null = null;

  // ---- timers (deadlines in `now()` milliseconds) ----
  private t3Deadline: number | null = null;
  private sackDeadline: number | null = null;
  private reconfigDeadline: number | null = null;
  private t2Deadline: number | null = null;
  private t2Retries = 0;
  /** The initiator's T1-init / T1-cookie (§5.1): the chunk to send again, and how often it went. */
  private t1: { deadline: number; chunk: Buffer; tag: number; retries: number } | null = null;

  /** Chunks (already encoded) that go first in the next packet: COOKIE ACK, answers, errors. */
  private control: Buffer[] = [];
  private processing = false;
  readonly counters: SctpCounters = {
    packetsIn: 0, packetsOut: 0, dataChunksIn: 0, dataChunksOut: 0, retransmissions: 0,
    fastRetransmits: 0, timeouts: 0, abandoned: 0, messagesIn: 0, messagesOut: 0,
  };

  constructor(private readonly options: SctpAssociationOptions) {
    this.mtu = options.mtu ?? DEFAULT_SCTP_MTU;
    this.maxPayload = this.mtu - COMMON_HEADER_SIZE - DATA_CHUNK_HEADER;
    // §5.1.3: a non-zero random tag; §5.1.2: a random initial TSN.
    this.ourTag = randomInt(1, 0x100000000);
    this.ourInitialTsn = randomInt(0, 0x100000000);
    this.nextTsn = this.ourInitialTsn;
    this.lastCumAck = tsnAdd(this.ourInitialTsn, -1);
    this.advancedPeerAckPoint = this.lastCumAck;
    this.ourReconfigSeq = this.ourInitialTsn;
    // §7.2.1: initial cwnd = min(4 * MTU, max(2 * MTU, 4380)).
    this.cwnd = Math.min(4 * this.mtu, Math.max(2 * this.mtu, 4380));
  }

  get state(): SctpState {
    return this.currentState;
  }

  /** Bytes waiting to be sent or acknowledged (a data channel's bufferedAmount, summed). */
  get bufferedAmount(): number {
    return this.queuedBytes + this.unackedBytes;
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

  // ---- time ------------------------------------------------------------------------------

  /** When `handleTimeout` must next run (null: nothing pending). */
  deadline(): number | null {
    let d: number | null = null;
    const consider = (t: number | null) => {
      if (t !== null && (d === null || t < d)) d = t;
    };
    consider(this.t3Deadline);
    if (this.sackOwed) consider(this.sackDeadline);
    consider(this.reconfigDeadline);
    consider(this.t2Deadline);
    consider(this.t1?.deadline ?? null);
    return d;
  }

  handleTimeout(): void {
    if (this.currentState === 'closed') return;
    const now = this.options.now();
    if (this.sackOwed && this.sackDeadline !== null && this.sackDeadline <= now) this.sackImmediate = true;
    if (this.t3Deadline !== null && this.t3Deadline <= now) this.t3Expired();
    if (this.reconfigDeadline !== null && this.reconfigDeadline <= now) this.reconfigExpired();
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
    if (hadData) this.afterData();
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
    const established = this.currentState === 'established';
    switch (chunk.type) {
      case ChunkType.DATA:
        if (!established) return this.dropChunk('DATA before the association is up');
        this.handleData(chunk);
        return 'data';
      case ChunkType.SACK:
        if (established) this.handleSack(chunk.body);
        return 'ok';
      case ChunkType.FORWARD_TSN:
        if (!established) return this.dropChunk('FORWARD TSN before the association is up');
        this.handleForwardTsn(chunk.body);
        return 'data';
      case ChunkType.COOKIE_ECHO:
        this.handleCookieEcho(chunk.body);
        return 'ok';
      case ChunkType.HEARTBEAT:
        // §8.3: the HEARTBEAT ACK carries the Heartbeat Info back unchanged.
        if (established && chunk.body.length <= this.mtu - COMMON_HEADER_SIZE - 4) this.control.push(encodeChunk(ChunkType.HEARTBEAT_ACK, 0, chunk.body));
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
        if (established) this.handleReconfig(chunk.body);
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
    const tag = body.readUInt32BE(0);
    const rwnd = body.readUInt32BE(4);
    const outboundStreams = body.readUInt16BE(8);
    const inboundStreams = body.readUInt16BE(10);
    const initialTsn = body.readUInt32BE(12);
    // §3.3.2: a zero tag or stream count is an invalid INIT (and 1500 is the smallest a_rwnd).
    if (tag === 0 || outboundStreams === 0 || inboundStreams === 0 || rwnd < 1500) return this.drop('INIT with invalid mandatory parameters');
    const params = parseParameters(body.subarray(16));
    if (params === null) return this.drop('INIT with a malformed parameter');
    if (this.currentState !== 'listening') {
      // A restart or collision (§5.2): WebRTC peers start once per DTLS association.
      return this.drop('INIT on an association already up');
    }
    this.peer = { tag, rwnd, outboundStreams, inboundStreams, initialTsn, ...SctpAssociation.extensions(params) };
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
    this.t1 = { deadline: this.options.now() + this.rto, chunk: init, tag: 0, retries: 0 };
    this.emit(0, [init]);
  }

  private handleInitAck(chunk: Chunk): void {
    const body = chunk.body;
    if (body.length < 16) return this.drop('INIT ACK shorter than its fixed part');
    const tag = body.readUInt32BE(0);
    const rwnd = body.readUInt32BE(4);
    const outboundStreams = body.readUInt16BE(8);
    const inboundStreams = body.readUInt16BE(10);
    const params = parseParameters(body.subarray(16));
    const cookie = params?.find((p) => p.type === PARAM_STATE_COOKIE);
    if (tag === 0 || outboundStreams === 0 || inboundStreams === 0 || !params || !cookie) return this.drop('INIT ACK with invalid mandatory parameters');
    this.peer = { tag, rwnd, outboundStreams, inboundStreams, initialTsn: body.readUInt32BE(12), ...SctpAssociation.extensions(params) };
    this.peerTag = tag;
    this.apply('init-ack');
    const echo = encodeChunk(ChunkType.COOKIE_ECHO, 0, cookie.value);
    this.t1 = { deadline: this.options.now() + this.rto, chunk: echo, tag, retries: 0 };
    this.emit(tag, [echo]);
  }

  private t1Expired(): void {
    const t1 = this.t1!;
    if (++t1.retries > MAX_INIT_RETRANSMISSIONS) {
      this.t1 = null;
      this.end('timeout', 'the peer never answered the INIT');
      return;
    }
    t1.deadline = this.options.now() + this.rto;
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

  /** Both setups end here: the peer's parameters taken, data may flow. */
  private establish(): void {
    const peer = this.peer!;
    this.peerTag = peer.tag;
    this.inboundStreamCount = Math.min(MAX_STREAMS, peer.outboundStreams);
    this.outboundStreamCount = Math.min(MAX_STREAMS, peer.inboundStreams);
    this.peerRwnd = peer.rwnd;
    this.ssthresh = peer.rwnd; // §7.2.1: initially the peer's a_rwnd
    this.received = new ReceivedTsns(peer.initialTsn);
    // RFC 6525 §5.1.1: request sequence numbers start at each side's initial TSN.
    this.peerLastReqSeq = tsnAdd(peer.initialTsn, -1);
    this.options.onEstablished();
  }

  // ---- receiving data (§6.2, §6.9) ---------------------------------------------------------

  private handleData(chunk: Chunk): void {
    const received = this.received!;
    const body = chunk.body;
    if (body.length < 12) {
      this.drop('DATA shorter than its header');
      return;
    }
    this.counters.dataChunksIn++;
    if (body.length === 12) {
      // §6.2: DATA without user data is a protocol violation the association does not survive.
      this.abort(CAUSE_NO_USER_DATA, 'DATA chunk without user data', body.subarray(0, 4));
      return;
    }
    const tsn = body.readUInt32BE(0);
    const stream = body.readUInt16BE(4);
    const ssn = body.readUInt16BE(6);
    const ppid = body.readUInt32BE(8);
    const data = body.subarray(12);
    this.sackOwed = true;
    if (received.has(tsn)) {
      if (this.duplicates.length < MAX_REPORTED_DUPLICATES) this.duplicates.push(tsn);
      this.sackImmediate = true;
      return;
    }
    if (tsnDiff(tsn, received.cumulative) > MAX_TSN_WINDOW) {
      this.drop('DATA beyond the TSN window');
      return;
    }
    const next = tsnAdd(received.cumulative, 1);
    // §6.2: with the window used up, only the TSN the cumulative ack waits for is taken.
    if (tsn !== next && this.bufferedBytes + data.length > this.options.receiveWindow + this.mtu) {
      this.drop('DATA beyond the receive window');
      this.sackImmediate = true;
      return;
    }
    if (tsn !== next && received.gapCount >= MAX_GAP_RANGES && !received.has(tsnAdd(tsn, -1)) && !received.has(tsnAdd(tsn, 1))) {
      this.drop('DATA opening too many gaps');
      this.sackImmediate = true;
      return;
    }
    received.add(tsn);
    if (received.gapCount > 0) this.sackImmediate = true; // §6.7: report gaps at once
    if (stream >= this.inboundStreamCount) {
      // §6.5: acknowledged, reported and discarded.
      const cause = Buffer.alloc(4);
      cause.writeUInt16BE(stream, 0);
      this.control.push(encodeChunk(ChunkType.ERROR, 0, encodeParameter(CAUSE_INVALID_STREAM, cause)));
      this.drop('DATA on a stream that does not exist');
      return;
    }
    if (chunk.flags & FLAG_UNORDERED) this.receiveUnordered(tsn, stream, ppid, chunk.flags, data);
    else this.receiveOrdered(tsn, stream, ssn, ppid, chunk.flags, data);
  }

  private receiveOrdered(tsn: number, stream: number, ssn: number, ppid: number, flags: number, data: Buffer): void {
    let st = this.inboundStreams.get(stream);
    if (!st) {
      st = { nextSsn: 0, pending: new Map() };
      this.inboundStreams.set(stream, st);
    }
    if (ssn !== st.nextSsn && !ssnAfter(ssn, st.nextSsn)) {
      this.drop('ordered DATA for a message already delivered');
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
    this.bufferedBytes += data.length;
    if (flags & FLAG_BEGIN) partial.firstTsn = tsn;
    if (flags & FLAG_END) partial.lastTsn = tsn;
    if (partial.bytes > this.options.maxMessageSize) {
      this.abort(CAUSE_PROTOCOL_VIOLATION, `a message larger than the ${this.options.maxMessageSize} bytes of a=max-message-size`);
      return;
    }
    this.drainOrdered(stream, st);
  }

  private static complete(p: PartialMessage): boolean {
    return p.firstTsn !== null && p.lastTsn !== null && p.fragments.size === tsnDiff(p.lastTsn, p.firstTsn) + 1;
  }

  /** Delivers every complete message from the stream's next SSN on. */
  private drainOrdered(stream: number, st: InboundStream): void {
    for (let p = st.pending.get(st.nextSsn); p && SctpAssociation.complete(p); p = st.pending.get(st.nextSsn)) {
      st.pending.delete(st.nextSsn);
      st.nextSsn = (st.nextSsn + 1) & 0xffff;
      this.bufferedBytes -= p.bytes;
      this.deliver(stream, p.ppid, SctpAssociation.assemble(p));
      if (this.currentState === 'closed') return;
    }
  }

  private static assemble(p: PartialMessage): Buffer {
    const parts: Buffer[] = [];
    for (let t = p.firstTsn!, n = 0; n < p.fragments.size; t = tsnAdd(t, 1), n++) parts.push(p.fragments.get(t)!);
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, p.bytes);
  }

  private receiveUnordered(tsn: number, stream: number, ppid: number, flags: number, data: Buffer): void {
    if ((flags & (FLAG_BEGIN | FLAG_END)) === (FLAG_BEGIN | FLAG_END)) {
      this.deliver(stream, ppid, data);
      return;
    }
    this.unordered.set(tsn, { stream, ppid, flags, data });
    this.bufferedBytes += data.length;
    // The fragments of one message have consecutive TSNs (§6.9): walk to its first and last.
    let bytes = data.length;
    let first = tsn;
    for (let f = this.unordered.get(first)!; !(f.flags & FLAG_BEGIN); ) {
      const prev = this.unordered.get(tsnAdd(first, -1));
      if (!prev || prev.stream !== stream || prev.flags & FLAG_END) {
        this.checkPartialSize(bytes);
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
        this.checkPartialSize(bytes);
        return;
      }
      last = tsnAdd(last, 1);
      bytes += next.data.length;
      f = next;
    }
    if (this.checkPartialSize(bytes)) return;
    // One PPID per message (RFC 8831 §6.6): the first fragment's.
    const messagePpid = this.unordered.get(first)!.ppid;
    const parts: Buffer[] = [];
    for (let t = first; ; t = tsnAdd(t, 1)) {
      parts.push(this.unordered.get(t)!.data);
      this.unordered.delete(t);
      if (t === last) break;
    }
    this.bufferedBytes -= bytes;
    this.deliver(stream, messagePpid, Buffer.concat(parts, bytes));
  }

  /** True (and the association aborted) when a message under reassembly outgrew the announced size. */
  private checkPartialSize(bytes: number): boolean {
    if (bytes <= this.options.maxMessageSize) return false;
    this.abort(CAUSE_PROTOCOL_VIOLATION, `a message larger than the ${this.options.maxMessageSize} bytes of a=max-message-size`);
    return true;
  }

  private deliver(stream: number, ppid: number, data: Buffer): void {
    this.counters.messagesIn++;
    this.options.onMessage(stream, ppid, data);
  }

  /** RFC 3758 §3.6: the peer gave up on everything up to a TSN. */
  private handleForwardTsn(body: Buffer): void {
    const received = this.received!;
    if (body.length < 4 || (body.length - 4) % 4 !== 0) {
      this.drop('malformed FORWARD TSN');
      return;
    }
    this.sackOwed = true;
    this.sackImmediate = true;
    const newCumulative = body.readUInt32BE(0);
    if (!tsnAfter(newCumulative, received.cumulative)) return;
    if (tsnDiff(newCumulative, received.cumulative) > MAX_TSN_WINDOW) {
      this.drop('FORWARD TSN beyond the TSN window');
      return;
    }
    received.forwardTo(newCumulative);
    for (const [tsn, fragment] of this.unordered) {
      if (tsnAfter(tsn, newCumulative)) continue;
      this.unordered.delete(tsn);
      this.bufferedBytes -= fragment.data.length;
    }
    for (const st of this.inboundStreams.values()) {
      for (const [ssn, partial] of st.pending) {
        if ([...partial.fragments.keys()].some((t) => !tsnAfter(t, newCumulative))) {
          st.pending.delete(ssn);
          this.bufferedBytes -= partial.bytes;
        }
      }
    }
    for (let pos = 4; pos + 4 <= body.length; pos += 4) {
      const stream = body.readUInt16BE(pos);
      const skipTo = body.readUInt16BE(pos + 2);
      const st = this.inboundStreams.get(stream);
      if (!st || (st.nextSsn !== skipTo && !ssnAfter(skipTo, st.nextSsn))) continue;
      // Complete messages before the skipped one still go, in order; incomplete ones are gone.
      for (let ssn = st.nextSsn; ; ssn = (ssn + 1) & 0xffff) {
        const p = st.pending.get(ssn);
        if (p) {
          st.pending.delete(ssn);
          this.bufferedBytes -= p.bytes;
          if (SctpAssociation.complete(p)) this.deliver(stream, p.ppid, SctpAssociation.assemble(p));
          if (this.currentState === 'closed') return;
        }
        if (ssn === skipTo) break;
      }
      st.nextSsn = (skipTo + 1) & 0xffff;
      this.drainOrdered(stream, st);
    }
  }

  /** After a packet with DATA: the SACK rule (§6.2: every second packet, else within 200 ms) and deferred resets. */
  private afterData(): void {
    this.packetsSinceSack++;
    if (this.packetsSinceSack >= 2) this.sackImmediate = true;
    if (this.sackOwed && this.sackDeadline === null) this.sackDeadline = this.options.now() + SACK_DELAY_MS;
    const deferred = this.deferredReset;
    if (deferred && this.received && !tsnAfter(deferred.lastTsn, this.received.cumulative)) {
      this.deferredReset = null;
      this.performIncomingReset(deferred.reqSeq, deferred.streams);
    }
  }

  private sackChunk(): Buffer {
    const received = this.received!;
    const gaps = received.gapBlocks(MAX_REPORTED_GAPS);
    const dups = this.duplicates;
    const out = Buffer.alloc(12 + 4 * gaps.length + 4 * dups.length);
    out.writeUInt32BE(received.cumulative, 0);
    out.writeUInt32BE(Math.max(0, this.options.receiveWindow - this.bufferedBytes), 4);
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
    this.sackOwed = false;
    this.sackImmediate = false;
    this.sackDeadline = null;
    this.packetsSinceSack = 0;
    return encodeChunk(ChunkType.SACK, 0, out);
  }

  // ---- acknowledgements of what ferry sent (§6.2.1, §7.2) ------------------------------------

  private chunkAt(tsn: number): SentChunk | undefined {
    const index = tsnDiff(tsn, this.lastCumAck) - 1;
    return index >= 0 ? this.inflight[this.inflightHead + index] : undefined;
  }

  private handleSack(body: Buffer): void {
    if (body.length < 12) return this.drop('SACK shorter than its fixed part');
    const cumAck = body.readUInt32BE(0);
    const rwnd = body.readUInt32BE(4);
    const gapCount = body.readUInt16BE(8);
    const dupCount = body.readUInt16BE(10);
    if (body.length < 12 + 4 * gapCount + 4 * dupCount) return this.drop('SACK shorter than its blocks');
    // §6.2.1 D i: an older SACK (reordered) says nothing new.
    if (tsnAfter(this.lastCumAck, cumAck)) return;
    if (tsnAfter(cumAck, tsnAdd(this.nextTsn, -1))) {
      this.abort(CAUSE_PROTOCOL_VIOLATION, 'SACK acknowledging a TSN never sent');
      return;
    }
    const now = this.options.now();
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
    // Gap ack blocks (§3.3.4): offsets from the cumulative TSN ack.
    let highestAcked: number | null = null;
    // Blocks come in increasing order without overlap (§3.3.4); others are skipped, so one SACK
    // costs at most one pass over what is in flight.
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
          if (c.inFlight) {
            c.inFlight = false;
            this.flightSize -= c.payload.length;
          }
          if (c.retransmit) {
            c.retransmit = false;
            this.retransmitPending--;
          }
          this.sampleRtt(c, now);
        }
        if (highestAcked === null || tsnAfter(c.tsn, highestAcked)) highestAcked = c.tsn;
      }
    }
    // §7.2.4: three reports of a TSN missing below acknowledged ones start a fast retransmit.
    let fastRetransmit = false;
    if (highestAcked !== null) {
      for (let i = this.inflightHead; i < this.inflight.length; i++) {
        const c = this.inflight[i]!;
        if (!tsnAfter(highestAcked, c.tsn)) break;
        if (c.acked || c.abandoned || !c.inFlight) continue;
        if (++c.misses === 3) {
          c.misses = 0;
          c.inFlight = false;
          this.flightSize -= c.payload.length;
          c.retransmit = true;
          this.retransmitPending++;
          fastRetransmit = true;
          this.counters.fastRetransmits++;
        }
      }
    }
    if (fastRetransmit) {
      if (!this.inFastRecovery) {
        this.ssthresh = Math.max(Math.floor(this.cwnd / 2), 4 * this.mtu);
        this.cwnd = this.ssthresh;
        this.partialBytesAcked = 0;
        this.inFastRecovery = true;
        this.fastRecoveryExit = tsnAdd(this.nextTsn, -1);
      }
      this.fastRetransmitPending = true;
    }
    if (cumAdvanced) {
      this.errorCount = 0;
      // §7.2.1 / §7.2.2: grow only when the window was in use (no room left for another full
      // chunk: with chunks below the MTU it is never filled to the byte) and not while recovering.
      if (!this.inFastRecovery && flightBefore + this.maxPayload > this.cwnd) {
        if (this.cwnd <= this.ssthresh) this.cwnd += Math.min(bytesAcked, this.mtu);
        else {
          this.partialBytesAcked += bytesAcked;
          if (this.partialBytesAcked >= this.cwnd) {
            this.partialBytesAcked -= this.cwnd;
            this.cwnd += this.mtu;
          }
        }
      }
      if (this.inFastRecovery && !tsnAfter(this.fastRecoveryExit, cumAck)) this.inFastRecovery = false;
    }
    this.peerRwnd = Math.max(0, rwnd - this.flightSize);
    // §6.3.2 R2/R3: stop T3 when nothing is outstanding, restart it when the cumulative ack moved.
    if (this.inflightHead >= this.inflight.length) this.t3Deadline = null;
    else if (cumAdvanced) this.t3Deadline = now + this.rto;
    this.advancePeerAckPoint();
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
    this.rto = Math.min(RTO_MAX_MS, Math.max(RTO_MIN_MS, this.srtt + 4 * this.rttvar));
  }

  private compactInflight(): void {
    if (this.inflightHead > 1024 && this.inflightHead * 2 > this.inflight.length) {
      this.inflight = this.inflight.slice(this.inflightHead);
      this.inflightHead = 0;
    }
  }

  /** §6.3.3: the retransmission timer expired. */
  private t3Expired(): void {
    this.t3Deadline = null;
    this.counters.timeouts++;
    if (++this.errorCount > MAX_RETRANSMISSIONS) {
      this.fail('timeout', 'the peer stopped acknowledging (Association.Max.Retrans)');
      return;
    }
    this.rto = Math.min(RTO_MAX_MS, this.rto * 2);
    this.ssthresh = Math.max(Math.floor(this.cwnd / 2), 4 * this.mtu);
    this.cwnd = this.mtu;
    this.partialBytesAcked = 0;
    this.inFastRecovery = false;
    this.rttTsn = null;
    for (let i = this.inflightHead; i < this.inflight.length; i++) {
      const c = this.inflight[i]!;
      if (c.acked || c.abandoned) continue;
      if (c.inFlight) {
        c.inFlight = false;
        this.flightSize -= c.payload.length;
      }
      if (!c.retransmit) {
        c.retransmit = true;
        this.retransmitPending++;
      }
    }
    // A FORWARD TSN that may have been lost goes again (RFC 3758 §3.5 C3).
    if (tsnAfter(this.advancedPeerAckPoint, this.lastCumAck)) this.forwardTsnOwed = true;
    if (this.inflightHead < this.inflight.length) this.t3Deadline = this.options.now() + this.rto;
  }

  // ---- partial reliability (RFC 3758 §3.5) ---------------------------------------------------

  private expired(m: OutboundMessage, now: number): boolean {
    if (!this.peerSupportsPartialReliability) return false;
    return m.expiresAt !== null && now >= m.expiresAt;
  }

  private abandon(m: OutboundMessage): void {
    if (m.abandoned) return;
    m.abandoned = true;
    this.counters.abandoned++;
    for (const c of m.chunks) {
      if (c.acked || c.abandoned) continue;
      c.abandoned = true;
      if (c.inFlight) {
        c.inFlight = false;
        this.flightSize -= c.payload.length;
      }
      if (c.retransmit) {
        c.retransmit = false;
        this.retransmitPending--;
      }
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
    if (!this.peerSupportsPartialReliability) return;
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

  // ---- sending -----------------------------------------------------------------------------

  /** Queues one message (the caller maps empty messages to RFC 8831's one-byte form). */
  send(stream: number, ppid: number, data: Buffer, options: SendOptions): SendResult {
    if (this.currentState !== 'established') return 'closed';
    if (stream >= this.outboundStreamCount) return 'invalid-stream';
    if (data.length === 0) return 'empty';
    if (this.bufferedAmount + data.length > this.options.maxSendBuffer) return 'buffer-full';
    const lifetime = options.lifetimeMs ?? null;
    this.queue.push({
      stream,
      ppid,
      data,
      ordered: options.ordered,
      ssn: 0,
      maxRetransmits: options.maxRetransmits ?? null,
      expiresAt: lifetime === null ? null : this.options.now() + lifetime,
      offset: 0,
      abandoned: false,
      chunks: [],
    });
    this.queuedBytes += data.length;
    this.queuedPerStream.set(stream, (this.queuedPerStream.get(stream) ?? 0) + 1);
    this.counters.messagesOut++;
    if (!this.processing) this.flush();
    return 'queued';
  }

  /** RFC 6525 §5.1.2: resets these outgoing streams once what was queued on them is sent. */
  resetStreams(streams: number[]): void {
    if (this.currentState !== 'established') return;
    if (!this.peer?.reconfig) {
      // Without RE-CONFIG the peer cannot hear it; the streams are reset on ferry's side only.
      for (const s of streams) this.outboundSsn.delete(s);
      this.options.onOutgoingStreamsReset(streams);
      return;
    }
    for (const s of streams) this.pendingResets.add(s);
    if (!this.processing) this.flush();
  }

  /** Sends everything the windows allow: control chunks, a SACK, FORWARD TSN, re-configuration, DATA. */
  private flush(): void {
    if (this.currentState === 'closed' || !this.peer) {
      this.control = [];
      return;
    }
    const now = this.options.now();
    const data: Buffer[] = [];
    if (this.currentState === 'established') {
      this.collectRetransmissions(data, now);
      this.collectNewData(data, now);
    }
    const head: Buffer[] = this.control;
    this.control = [];
    if (this.sackOwed && (this.sackImmediate || data.length > 0 || head.length > 0)) head.push(this.sackChunk());
    if (this.currentState === 'established') {
      this.advancePeerAckPoint();
      if (this.forwardTsnOwed) head.push(this.forwardTsnChunk());
      const reconfig = this.reconfigRequestChunk(now);
      if (reconfig) head.push(reconfig);
    }
    if (head.length === 0 && data.length === 0) return;
    this.emit(this.peerTag, [...head, ...data]);
    if (this.t3Deadline === null && this.inflightHead < this.inflight.length) this.t3Deadline = now + this.rto;
  }

  private collectRetransmissions(out: Buffer[], now: number): void {
    if (this.retransmitPending === 0) return;
    for (let i = this.inflightHead; i < this.inflight.length && this.retransmitPending > 0; i++) {
      const c = this.inflight[i]!;
      if (!c.retransmit) continue;
      const m = c.message;
      if (this.peerSupportsPartialReliability && ((m.maxRetransmits !== null && c.transmissions > m.maxRetransmits) || this.expired(m, now))) {
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
      this.counters.retransmissions++;
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
        this.counters.abandoned++;
        this.unqueue(m);
        this.queueHead++;
        continue;
      }
      const size = Math.min(this.maxPayload, m.data.length - m.offset);
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
    this.counters.dataChunksOut++;
    return encodeChunk(ChunkType.DATA, c.flags, header, c.payload);
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

  // ---- stream reset (RFC 6525) ---------------------------------------------------------------

  private reconfigRequestChunk(now: number): Buffer | null {
    if (!this.outstandingReset && this.pendingResets.size > 0) {
      // §5.1.2: the request names the last TSN assigned; streams with queued data wait for it to go.
      const ready = [...this.pendingResets].filter((s) => !this.queuedPerStream.has(s));
      if (ready.length === 0) return null;
      for (const s of ready) this.pendingResets.delete(s);
      this.outstandingReset = { reqSeq: this.ourReconfigSeq, lastTsn: tsnAdd(this.nextTsn, -1), streams: ready, retries: 0 };
      this.ourReconfigSeq = tsnAdd(this.ourReconfigSeq, 1);
      this.reconfigDeadline = now + this.rto;
      return this.outgoingResetChunk();
    }
    return null;
  }

  private outgoingResetChunk(): Buffer {
    const r = this.outstandingReset!;
    const value = Buffer.alloc(12 + 2 * r.streams.length);
    value.writeUInt32BE(r.reqSeq, 0);
    value.writeUInt32BE(this.peerLastReqSeq, 4);
    value.writeUInt32BE(r.lastTsn, 8);
    r.streams.forEach((s, i) => value.writeUInt16BE(s, 12 + 2 * i));
    return encodeChunk(ChunkType.RE_CONFIG, 0, encodeParameter(RECONFIG_OUTGOING_RESET, value));
  }

  private reconfigExpired(): void {
    const r = this.outstandingReset;
    this.reconfigDeadline = null;
    if (!r) return;
    if (++r.retries > MAX_RETRANSMISSIONS) {
      this.fail('timeout', 'the peer never answered a stream reset');
      return;
    }
    this.control.push(this.outgoingResetChunk());
    this.reconfigDeadline = this.options.now() + this.rto;
  }

  private handleReconfig(body: Buffer): void {
    const params = parseParameters(body);
    if (params === null || params.length === 0) return this.drop('malformed RE-CONFIG');
    for (const p of params) {
      const v = p.value;
      switch (p.type) {
        case RECONFIG_OUTGOING_RESET: {
          if (v.length < 12 || v.length % 2 !== 0) return this.drop('malformed outgoing stream reset request');
          const streams: number[] = [];
          for (let pos = 12; pos + 2 <= v.length; pos += 2) streams.push(v.readUInt16BE(pos));
          this.incomingResetRequest(v.readUInt32BE(0), v.readUInt32BE(8), streams);
          break;
        }
        case RECONFIG_RESPONSE:
          if (v.length < 8) return this.drop('malformed re-configuration response');
          this.reconfigResponse(v.readUInt32BE(0), v.readUInt32BE(4));
          break;
        case RECONFIG_INCOMING_RESET:
        case RECONFIG_SSN_TSN_RESET:
        case RECONFIG_ADD_OUTGOING:
        case RECONFIG_ADD_INCOMING: {
          // Data channels close by outgoing resets only; ferry already offers every stream.
          if (v.length < 4) return this.drop('malformed re-configuration request');
          const reqSeq = v.readUInt32BE(0);
          if (reqSeq === tsnAdd(this.peerLastReqSeq, 1)) {
            this.peerLastReqSeq = reqSeq;
            this.respond(reqSeq, RESULT_DENIED);
          } else if (reqSeq === this.peerLastReqSeq && this.lastResponse?.reqSeq === reqSeq) this.respond(reqSeq, this.lastResponse.result);
          else this.respond(reqSeq, RESULT_BAD_SEQUENCE);
          break;
        }
        default:
          this.drop(`unknown re-configuration parameter ${p.type}`);
      }
    }
  }

  /** RFC 6525 §5.2.2: the peer resets its outgoing (ferry's incoming) streams. */
  private incomingResetRequest(reqSeq: number, lastTsn: number, streams: number[]): void {
    if (reqSeq === this.peerLastReqSeq) {
      // A retransmission: the answer again (still in progress while deferred).
      const result = this.deferredReset?.reqSeq === reqSeq ? RESULT_IN_PROGRESS : this.lastResponse?.reqSeq === reqSeq ? this.lastResponse.result : RESULT_PERFORMED;
      this.respond(reqSeq, result);
      return;
    }
    if (reqSeq !== tsnAdd(this.peerLastReqSeq, 1)) {
      this.respond(reqSeq, RESULT_BAD_SEQUENCE);
      return;
    }
    this.peerLastReqSeq = reqSeq;
    if (tsnAfter(lastTsn, this.received!.cumulative)) {
      // Data the peer sent on these streams before the reset is still on its way: wait for it.
      this.deferredReset = { reqSeq, lastTsn, streams };
      this.respond(reqSeq, RESULT_IN_PROGRESS);
      return;
    }
    this.performIncomingReset(reqSeq, streams);
  }

  private performIncomingReset(reqSeq: number, streams: number[]): void {
    const targets = streams.length ? streams : [...this.inboundStreams.keys()];
    for (const s of targets) {
      const st = this.inboundStreams.get(s);
      if (!st) continue;
      for (const p of st.pending.values()) this.bufferedBytes -= p.bytes;
      this.inboundStreams.delete(s);
    }
    this.respond(reqSeq, RESULT_PERFORMED);
    this.options.onIncomingStreamsReset(streams);
  }

  private respond(reqSeq: number, result: number): void {
    this.lastResponse = { reqSeq, result };
    const value = Buffer.alloc(8);
    value.writeUInt32BE(reqSeq, 0);
    value.writeUInt32BE(result, 4);
    this.control.push(encodeChunk(ChunkType.RE_CONFIG, 0, encodeParameter(RECONFIG_RESPONSE, value)));
  }

  private reconfigResponse(respSeq: number, result: number): void {
    const r = this.outstandingReset;
    if (!r || respSeq !== r.reqSeq) return;
    if (result === RESULT_IN_PROGRESS) {
      this.reconfigDeadline = this.options.now() + this.rto;
      return;
    }
    this.outstandingReset = null;
    this.reconfigDeadline = null;
    if (result === RESULT_PERFORMED || result === RESULT_NOTHING_TO_DO) {
      for (const s of r.streams) this.outboundSsn.delete(s);
    } else {
      this.drop(`the peer refused a stream reset (result ${result})`);
    }
    this.options.onOutgoingStreamsReset(r.streams);
  }

  // ---- ending ----------------------------------------------------------------------------------

  /** §9.2: the peer shuts down; ferry answers at once (what it still had queued is dropped). */
  private handleShutdown(body: Buffer): void {
    if (this.currentState !== 'established' && this.currentState !== 'shutdown-ack-sent') return;
    if (body.length < 4) return this.drop('SHUTDOWN shorter than its cumulative TSN ack');
    this.apply('shutdown');
    this.t3Deadline = null;
    this.reconfigDeadline = null;
    this.control.push(encodeChunk(ChunkType.SHUTDOWN_ACK, 0));
    this.t2Deadline = this.options.now() + this.rto;
  }

  private t2Expired(): void {
    this.t2Deadline = null;
    if (++this.t2Retries > MAX_RETRANSMISSIONS) {
      this.fail('timeout', 'the peer never completed its shutdown');
      return;
    }
    this.control.push(encodeChunk(ChunkType.SHUTDOWN_ACK, 0));
    this.t2Deadline = this.options.now() + this.rto;
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
    this.t3Deadline = null;
    this.sackDeadline = null;
    this.reconfigDeadline = null;
    this.t2Deadline = null;
    this.t1 = null;
    this.sackOwed = false;
    this.control = [];
    this.queue.length = 0;
    this.queueHead = 0;
    this.queuedBytes = 0;
    this.queuedPerStream.clear();
    this.inflight = [];
    this.inflightHead = 0;
    this.unackedBytes = 0;
    this.flightSize = 0;
    this.inboundStreams.clear();
    this.unordered.clear();
    this.bufferedBytes = 0;
    this.pendingResets.clear();
    this.outstandingReset = null;
    this.deferredReset = null;
    this.options.onClosed(cause, reason);
  }

  /** For Admin `handle_info`. */
  describe(): Record<string, number | string | boolean> {
    return {
      state: this.currentState,
      'inbound-streams': this.inboundStreamCount,
      'outbound-streams': this.outboundStreamCount,
      'partial-reliability': this.peerSupportsPartialReliability,
      cwnd: this.cwnd,
      'peer-rwnd': this.peerRwnd,
      'rto-ms': Math.round(this.rto),
      'srtt-ms': this.srtt === null ? -1 : Math.round(this.srtt),
      'buffered-out': this.bufferedAmount,
      'buffered-in': this.bufferedBytes,
      ...this.counters,
    };
  }
}
