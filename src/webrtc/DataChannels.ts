// The data channels of one PeerConnection (RFC 8831): one SCTP association
// carried in DTLS application data (RFC 8261), its channels opened with DCEP
// (RFC 8832) by either side, and the messages between them and the handle's
// plugin. The PeerConnection owns one of these when the negotiation kept an
// m=application section; `close` (its one release path) aborts the
// association, stops its one timer and gives back what the shared counters
// count, so a closed PeerConnection leaves nothing of its data channels behind.
import type { DataMessage, OutgoingDataMessage } from '../core/Media.js';
import type { JsonObject } from '../core/Json.js';
import { DCEP_ACK, encodeOpen, parseDcep, Ppid, type ChannelParameters } from './sctp/Dcep.js';
import { SctpAssociation, type SctpCloseCause } from './sctp/SctpAssociation.js';

/** The label janus.js and Janus use when none is given. */
export const DEFAULT_CHANNEL_LABEL = 'JanusDataChannel';
/** RFC 8832 §5.1: label and protocol lengths are 16-bit. */
const MAX_LABEL_BYTES = 0xffff;

/**
 * - connecting: ferry sent DATA_CHANNEL_OPEN and waits for the ACK (it may already send, ordered);
 * - open: both sides use it;
 * - closing: ferry reset its outgoing stream (RFC 8831 §6.7) and waits for that to complete.
 * A channel whose reset completed is gone from the table.
 */
type ChannelState = 'connecting' | 'open' | 'closing';

interface Channel extends ChannelParameters {
  id: number;
  state: ChannelState;
  openedBy: 'peer' | 'ferry';
}

/** Counters over every PeerConnection's data channels (Admin `ferry_status`, tests, metrics). */
export class DataChannelStats {
  /** Associations existing now (started, not yet closed). */
  associations = 0;
  /** Channels existing now. */
  channels = 0;
  /** Timers armed now (at most one per association). */
  timers = 0;
  associationsOpened = 0;
  messagesIn = 0;
  messagesOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** Peer's SCTP packets or chunks refused (malformed, wrong tag, outside the windows). */
  sctpDrops = 0;
  /** Malformed or unexpected DCEP messages. */
  dcepDrops = 0;
  /** Messages on a stream no channel was opened on, or with a PPID data channels do not use. */
  unknownStreamDrops = 0;
  /** Messages a plugin asked to send that exceed the client's a=max-message-size or the send buffer. */
  oversizeRefused = 0;
  /** Messages refused because the association's send buffer was full, or it was not up. */
  sendRefused = 0;
  /** How associations ended, by cause. */
  readonly closed: Record<SctpCloseCause, number> = { local: 0, 'peer-abort': 0, 'peer-shutdown': 0, 'protocol-violation': 0, timeout: 0 };

  snapshot(): JsonObject {
    return {
      associations: this.associations,
      channels: this.channels,
      timers: this.timers,
      associations_opened: this.associationsOpened,
      messages_in: this.messagesIn,
      messages_out: this.messagesOut,
      bytes_in: this.bytesIn,
      bytes_out: this.bytesOut,
      sctp_drops: this.sctpDrops,
      dcep_drops: this.dcepDrops,
      unknown_stream_drops: this.unknownStreamDrops,
      oversize_refused: this.oversizeRefused,
      send_refused: this.sendRefused,
      closed: { ...this.closed },
    };
  }
}

export interface DataChannelsOptions {
  /** RFC 8841 a=sctp-port of each side. */
  localPort: number;
  remotePort: number;
  /** What ferry announced in a=max-message-size: the largest message it takes. */
  maxMessageSize: number;
  /** What the peer announced (0: no limit, RFC 8841 §6.1). */
  remoteMaxMessageSize: number;
  /** Bytes ferry queues per association before refusing to send more. */
  maxSendBuffer: number;
  /** ferry's DTLS role: the DTLS client opens even stream ids, the server odd ones (RFC 8832 §6). */
  dtlsRole: 'client' | 'server';
  /** One SCTP packet out, as one DTLS application-data record. */
  sendPacket(packet: Buffer): void;
  onMessage(message: DataMessage): void;
  /** The association is up, so messages can be sent (Janus `data_ready`). */
  onReady(): void;
  /** The association ended on its own (peer abort or shutdown, protocol violation, timeout). */
  onClosed(cause: SctpCloseCause, reason: string): void;
  stats: DataChannelStats;
  now?: () => number;
  log?: { debug(obj: object, msg: string): void };
}

export class DataChannels {
  private readonly association: SctpAssociation;
  private readonly channels = new Map<number, Channel>();
  private timer: NodeJS.Timeout | null = null;
  private timerAt = 0;
  private ready = false;
  private ended = false;
  private remoteMaxMessageSize: number;

  constructor(private readonly options: DataChannelsOptions) {
    this.remoteMaxMessageSize = options.remoteMaxMessageSize;
    const now = options.now ?? (() => performance.now());
    this.association = new SctpAssociation({
      localPort: options.localPort,
      remotePort: options.remotePort,
      maxMessageSize: options.maxMessageSize,
      // The window holds one whole message of the largest size, plus room for the next ones.
      receiveWindow: options.maxMessageSize + 256 * 1024,
      maxSendBuffer: options.maxSendBuffer,
      now,
      output: (packet) => options.sendPacket(packet),
      // ferry can open channels itself from here on (as Janus relays to a label nobody opened).
      onEstablished: () => this.markReady(),
      onMessage: (stream, ppid, data) => this.onSctpMessage(stream, ppid, data),
      onIncomingStreamsReset: (streams) => this.onIncomingReset(streams),
      onOutgoingStreamsReset: (streams) => this.onOutgoingReset(streams),
      onClosed: (cause, reason) => this.onAssociationClosed(cause, reason),
      onDrop: (reason) => {
        options.stats.sctpDrops++;
        options.log?.debug({ reason }, 'SCTP input dropped');
      },
    });
    options.stats.associations++;
    options.stats.associationsOpened++;
  }

  get state(): string {
    return this.association.state;
  }

  /** The peer's a=max-message-size after a renegotiation. */
  setRemoteMaxMessageSize(size: number): void {
    this.remoteMaxMessageSize = size;
  }

  /** One DTLS application-data record from the peer. */
  receive(packet: Buffer): void {
    if (this.ended) return;
    this.association.receive(packet);
    this.schedule();
  }

  send(message: OutgoingDataMessage): boolean {
    const stats = this.options.stats;
    if (this.ended || this.association.state !== 'established') {
      stats.sendRefused++;
      return false;
    }
    const text = typeof message.data === 'string';
    const data = typeof message.data === 'string' ? Buffer.from(message.data, 'utf8') : message.data;
    const binary = !text && message.binary === true;
    // Above what the peer takes, or what ferry would ever queue for one association.
    if ((this.remoteMaxMessageSize > 0 && data.length > this.remoteMaxMessageSize) || data.length > this.options.maxSendBuffer) {
      stats.oversizeRefused++;
      return false;
    }
    const channel = this.channelFor(message.label, message.protocol ?? '');
    if (!channel) {
      stats.sendRefused++;
      return false;
    }
    // RFC 8831 §6.6: an empty message is one byte under the "empty" PPID.
    const ppid = data.length === 0 ? (binary ? Ppid.BINARY_EMPTY : Ppid.STRING_EMPTY) : binary ? Ppid.BINARY : Ppid.STRING;
    const result = this.association.send(channel.id, ppid, data.length === 0 ? Buffer.alloc(1) : data, {
      // RFC 8832 §6: until the ACK comes, a channel ferry opened sends ordered.
      ordered: channel.ordered || channel.state === 'connecting',
      maxRetransmits: channel.maxRetransmits,
      lifetimeMs: channel.maxPacketLifeTime,
    });
    this.schedule();
    if (result !== 'queued') {
      stats.sendRefused++;
      return false;
    }
    stats.messagesOut++;
    stats.bytesOut += data.length;
    return true;
  }

  /** The channel a message goes on: by label, else the first open one, else a new one ferry opens. */
  private channelFor(label: string | undefined, protocol: string): Channel | null {
    for (const c of this.channels.values()) {
      if (c.state === 'closing') continue;
      if (label === undefined || c.label === label) return c;
    }
    return this.openChannel(label ?? DEFAULT_CHANNEL_LABEL, protocol);
  }

  /** RFC 8832 §6: DATA_CHANNEL_OPEN on a free stream of ferry's parity, reliable and ordered (as Janus opens them). */
  private openChannel(label: string, protocol: string): Channel | null {
    if (Buffer.byteLength(label) > MAX_LABEL_BYTES || Buffer.byteLength(protocol) > MAX_LABEL_BYTES) return null;
    const limit = this.association.streams.outbound;
    let id = this.options.dtlsRole === 'client' ? 0 : 1;
    while (id < limit && this.channels.has(id)) id += 2;
    if (id >= limit) return null;
    const channel: Channel = { id, label, protocol, ordered: true, maxRetransmits: null, maxPacketLifeTime: null, priority: 0, state: 'connecting', openedBy: 'ferry' };
    if (this.association.send(id, Ppid.DCEP, encodeOpen(channel), { ordered: true }) !== 'queued') return null;
    this.channels.set(id, channel);
    this.options.stats.channels++;
    return channel;
  }

  private onSctpMessage(stream: number, ppid: number, data: Buffer): void {
    const stats = this.options.stats;
    if (ppid === Ppid.DCEP) return this.onDcep(stream, data);
    const channel = this.channels.get(stream);
    if (!channel || channel.state === 'closing') {
      stats.unknownStreamDrops++;
      return;
    }
    let binary: boolean;
    let payload = data;
    switch (ppid) {
      case Ppid.STRING:
        binary = false;
        break;
      case Ppid.BINARY:
        binary = true;
        break;
      case Ppid.STRING_EMPTY:
      case Ppid.BINARY_EMPTY:
        binary = ppid === Ppid.BINARY_EMPTY;
        payload = Buffer.alloc(0);
        break;
      default:
        // Including the deprecated partial PPIDs 52 and 54 (RFC 8831 §8), which nobody sends now.
        stats.unknownStreamDrops++;
        return;
    }
    // RFC 8832 §6: data on a channel ferry opened means the peer took it, ACK or not.
    if (channel.state === 'connecting') this.opened(channel);
    stats.messagesIn++;
    stats.bytesIn += payload.length;
    this.options.onMessage({ label: channel.label, protocol: channel.protocol, binary, data: payload });
  }

  private onDcep(stream: number, data: Buffer): void {
    const stats = this.options.stats;
    const parsed = parseDcep(data);
    if (!parsed.ok) {
      stats.dcepDrops++;
      this.options.log?.debug({ stream, reason: parsed.reason }, 'DCEP message dropped');
      return;
    }
    const existing = this.channels.get(stream);
    if (parsed.message.type === 'ack') {
      if (existing?.openedBy === 'ferry' && existing.state === 'connecting') this.opened(existing);
      else stats.dcepDrops++;
      return;
    }
    // RFC 8832 §6 gives the peer the stream ids of its DTLS role's parity, but not every peer
    // follows it (werift picks by ICE role): any stream not in use is taken, as Janus does.
    if (existing) {
      stats.dcepDrops++;
      return;
    }
    const channel: Channel = { ...parsed.message.channel, id: stream, state: 'open', openedBy: 'peer' };
    if (this.association.send(stream, Ppid.DCEP, DCEP_ACK, { ordered: true }) !== 'queued') {
      stats.dcepDrops++;
      return;
    }
    this.channels.set(stream, channel);
    stats.channels++;
    this.markReady();
  }

  private opened(channel: Channel): void {
    channel.state = 'open';
    this.markReady();
  }

  private markReady(): void {
    if (this.ready) return;
    this.ready = true;
    this.options.onReady();
  }

  /** RFC 8831 §6.7: the peer closed channels; ferry resets its side of each too. */
  private onIncomingReset(streams: number[]): void {
    const ids = streams.length ? streams : [...this.channels.keys()];
    const mine: number[] = [];
    for (const id of ids) {
      const c = this.channels.get(id);
      if (!c || c.state === 'closing') continue;
      c.state = 'closing';
      mine.push(id);
    }
    if (mine.length) this.association.resetStreams(mine);
  }

  private onOutgoingReset(streams: number[]): void {
    for (const id of streams) {
      const c = this.channels.get(id);
      if (c?.state !== 'closing') continue;
      this.channels.delete(id);
      this.options.stats.channels--;
    }
  }

  private onAssociationClosed(cause: SctpCloseCause, reason: string): void {
    if (this.ended) return;
    this.release(cause);
    this.options.onClosed(cause, reason);
  }

  /** Gives back what the counters count. Runs once, whoever ended the association. */
  private release(cause: SctpCloseCause): void {
    this.ended = true;
    const stats = this.options.stats;
    stats.closed[cause]++;
    stats.associations--;
    stats.channels -= this.channels.size;
    this.channels.clear();
    this.clearTimer();
  }

  /** Ends the association from ferry's side (ABORT, RFC 4960 §9.1). Idempotent; nothing is reported after it. */
  close(reason: string): void {
    if (this.ended) return;
    this.release('local');
    this.association.close(reason);
  }

  /** One timer per association, at its earliest deadline. */
  private schedule(): void {
    if (this.ended) return;
    const deadline = this.association.deadline();
    if (deadline === null) {
      this.clearTimer();
      return;
    }
    // A timer due earlier stays: when it fires, this runs again for the later deadline.
    if (this.timer && this.timerAt <= deadline) return;
    this.clearTimer();
    const now = this.options.now?.() ?? performance.now();
    this.timerAt = deadline;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.options.stats.timers--;
      if (this.ended) return;
      this.association.handleTimeout();
      this.schedule();
    }, Math.max(0, Math.ceil(deadline - now)));
    this.timer.unref();
    this.options.stats.timers++;
  }

  private clearTimer(): void {
    if (!this.timer) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.options.stats.timers--;
  }

  describe(): JsonObject {
    return {
      sctp: this.association.describe(),
      'remote-max-message-size': this.remoteMaxMessageSize,
      channels: [...this.channels.values()].map((c) => ({
        id: c.id,
        label: c.label,
        protocol: c.protocol,
        ordered: c.ordered,
        'max-retransmits': c.maxRetransmits,
        'max-packet-life-time': c.maxPacketLifeTime,
        state: c.state,
        'opened-by': c.openedBy,
      })),
    };
  }
}
