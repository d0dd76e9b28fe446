// SCTP stream reconfiguration (RFC 6525), the part data channels use: how a
// channel closes (RFC 8831 §6.7). Ferry's outgoing SSN reset requests (§5.1.2),
// retransmitted until answered, and the peer's (§5.2.2), performed once every
// DATA it sent before them arrived. Other requests are answered "denied".
import { ChunkType, encodeChunk, encodeParameter, parseParameters } from './SctpPacket.js';
import { MAX_RETRANSMISSIONS } from './SctpCommon.js';
import { tsnAdd, tsnAfter } from './Tsn.js';

/** RFC 6525 §4: re-configuration parameters and results. */
const OUTGOING_RESET = 13;
const INCOMING_RESET = 14;
const SSN_TSN_RESET = 15;
const RESPONSE = 16;
const ADD_OUTGOING = 17;
const ADD_INCOMING = 18;
const RESULT_NOTHING_TO_DO = 0;
const RESULT_PERFORMED = 1;
const RESULT_DENIED = 2;
const RESULT_BAD_SEQUENCE = 5;
const RESULT_IN_PROGRESS = 6;

export interface StreamResetOptions {
  /** Each side's initial TSN: request sequence numbers start there (§5.1.1). */
  ourInitialTsn: number;
  peerInitialTsn: number;
  now(): number;
  rto(): number;
  /** The last TSN ferry assigned, named in its requests. */
  lastAssignedTsn(): number;
  /** The cumulative TSN ferry received. */
  cumulativeReceived(): number;
  /** Whether a stream still has messages queued (its reset waits for them). */
  hasQueued(stream: number): boolean;
  /** Ferry's outgoing streams reset: their SSNs start again at 0. */
  resetOutgoing(streams: number[]): void;
  /** The peer's outgoing (ferry's incoming) streams reset. */
  resetIncoming(streams: number[]): void;
  onIncomingStreamsReset(streams: number[]): void;
  onOutgoingStreamsReset(streams: number[]): void;
  drop(reason: string): void;
}

export class StreamReset {
  private ourReqSeq: number;
  private readonly pending = new Set<number>();
  private outstanding: { reqSeq: number; lastTsn: number; streams: number[]; retries: number } | null = null;
  private peerLastReqSeq: number;
  private lastResponse: { reqSeq: number; result: number } | null = null;
  private deferred: { reqSeq: number; lastTsn: number; streams: number[] } | null = null;
  private retransmitAt: number | null = null;
  /** RE-CONFIG chunks to send with the next packet (answers, retransmitted requests). */
  private out: Buffer[] = [];

  constructor(private readonly o: StreamResetOptions) {
    this.ourReqSeq = o.ourInitialTsn;
    this.peerLastReqSeq = tsnAdd(o.peerInitialTsn, -1);
  }

  /** Queues a reset of these outgoing streams. */
  request(streams: number[]): void {
    for (const s of streams) this.pending.add(s);
  }

  /** When an unanswered request goes again (null: none out). */
  deadline(): number | null {
    return this.retransmitAt;
  }

  /** 'give-up' when the peer never answered (Association.Max.Retrans). */
  handleTimeout(now: number): 'ok' | 'give-up' {
    if (this.retransmitAt === null || this.retransmitAt > now) return 'ok';
    this.retransmitAt = null;
    const r = this.outstanding;
    if (!r) return 'ok';
    if (++r.retries > MAX_RETRANSMISSIONS) return 'give-up';
    this.out.push(this.requestChunk());
    this.retransmitAt = now + this.o.rto();
    return 'ok';
  }

  /** Chunks to send now: answers, retransmissions, and a new request once its streams' data went. */
  take(now: number): Buffer[] {
    if (!this.outstanding && this.pending.size > 0) {
      // §5.1.2: the request names the last TSN assigned; streams with queued data wait for it to go.
      const ready = [...this.pending].filter((s) => !this.o.hasQueued(s));
      if (ready.length > 0) {
        for (const s of ready) this.pending.delete(s);
        this.outstanding = { reqSeq: this.ourReqSeq, lastTsn: this.o.lastAssignedTsn(), streams: ready, retries: 0 };
        this.ourReqSeq = tsnAdd(this.ourReqSeq, 1);
        this.retransmitAt = now + this.o.rto();
        this.out.push(this.requestChunk());
      }
    }
    const out = this.out;
    this.out = [];
    return out;
  }

  private requestChunk(): Buffer {
    const r = this.outstanding!;
    const value = Buffer.alloc(12 + 2 * r.streams.length);
    value.writeUInt32BE(r.reqSeq, 0);
    value.writeUInt32BE(this.peerLastReqSeq, 4);
    value.writeUInt32BE(r.lastTsn, 8);
    r.streams.forEach((s, i) => value.writeUInt16BE(s, 12 + 2 * i));
    return encodeChunk(ChunkType.RE_CONFIG, 0, encodeParameter(OUTGOING_RESET, value));
  }

  /** A RE-CONFIG chunk from the peer. */
  handle(body: Buffer): void {
    const params = parseParameters(body);
    if (params === null || params.length === 0) return this.o.drop('malformed RE-CONFIG');
    for (const p of params) {
      const v = p.value;
      switch (p.type) {
        case OUTGOING_RESET: {
          if (v.length < 12 || v.length % 2 !== 0) return this.o.drop('malformed outgoing stream reset request');
          const streams: number[] = [];
          for (let pos = 12; pos + 2 <= v.length; pos += 2) streams.push(v.readUInt16BE(pos));
          this.incoming(v.readUInt32BE(0), v.readUInt32BE(8), streams);
          break;
        }
        case RESPONSE:
          if (v.length < 8) return this.o.drop('malformed re-configuration response');
          this.response(v.readUInt32BE(0), v.readUInt32BE(4));
          break;
        case INCOMING_RESET:
        case SSN_TSN_RESET:
        case ADD_OUTGOING:
        case ADD_INCOMING: {
          // Data channels close by outgoing resets only; ferry already offers every stream.
          if (v.length < 4) return this.o.drop('malformed re-configuration request');
          const reqSeq = v.readUInt32BE(0);
          if (reqSeq === tsnAdd(this.peerLastReqSeq, 1)) {
            this.peerLastReqSeq = reqSeq;
            this.respond(reqSeq, RESULT_DENIED);
          } else if (reqSeq === this.peerLastReqSeq && this.lastResponse?.reqSeq === reqSeq) this.respond(reqSeq, this.lastResponse.result);
          else this.respond(reqSeq, RESULT_BAD_SEQUENCE);
          break;
        }
        default:
          this.o.drop(`unknown re-configuration parameter ${p.type}`);
      }
    }
  }

  /** §5.2.2: the peer resets its outgoing (ferry's incoming) streams. */
  private incoming(reqSeq: number, lastTsn: number, streams: number[]): void {
    if (reqSeq === this.peerLastReqSeq) {
      // A retransmission: the answer again (still in progress while deferred).
      const result = this.deferred?.reqSeq === reqSeq ? RESULT_IN_PROGRESS : this.lastResponse?.reqSeq === reqSeq ? this.lastResponse.result : RESULT_PERFORMED;
      this.respond(reqSeq, result);
      return;
    }
    if (reqSeq !== tsnAdd(this.peerLastReqSeq, 1)) {
      this.respond(reqSeq, RESULT_BAD_SEQUENCE);
      return;
    }
    this.peerLastReqSeq = reqSeq;
    if (tsnAfter(lastTsn, this.o.cumulativeReceived())) {
      // Data the peer sent on these streams before the reset is still on its way: wait for it.
      this.deferred = { reqSeq, lastTsn, streams };
      this.respond(reqSeq, RESULT_IN_PROGRESS);
      return;
    }
    this.perform(reqSeq, streams);
  }

  /** After DATA arrived: a deferred reset whose data is all in now takes place. */
  afterData(): void {
    const d = this.deferred;
    if (d && !tsnAfter(d.lastTsn, this.o.cumulativeReceived())) {
      this.deferred = null;
      this.perform(d.reqSeq, d.streams);
    }
  }

  private perform(reqSeq: number, streams: number[]): void {
    this.o.resetIncoming(streams);
    this.respond(reqSeq, RESULT_PERFORMED);
    this.o.onIncomingStreamsReset(streams);
  }

  private respond(reqSeq: number, result: number): void {
    this.lastResponse = { reqSeq, result };
    const value = Buffer.alloc(8);
    value.writeUInt32BE(reqSeq, 0);
    value.writeUInt32BE(result, 4);
    this.out.push(encodeChunk(ChunkType.RE_CONFIG, 0, encodeParameter(RESPONSE, value)));
  }

  private response(respSeq: number, result: number): void {
    const r = this.outstanding;
    if (!r || respSeq !== r.reqSeq) return;
    if (result === RESULT_IN_PROGRESS) {
      this.retransmitAt = this.o.now() + this.o.rto();
      return;
    }
    this.outstanding = null;
    this.retransmitAt = null;
    if (result === RESULT_PERFORMED || result === RESULT_NOTHING_TO_DO) this.o.resetOutgoing(r.streams);
    else this.o.drop(`the peer refused a stream reset (result ${result})`);
    this.o.onOutgoingStreamsReset(r.streams);
  }

  clear(): void {
    this.pending.clear();
    this.outstanding = null;
    this.deferred = null;
    this.retransmitAt = null;
    this.out = [];
  }
}
