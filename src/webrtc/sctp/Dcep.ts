// The Data Channel Establishment Protocol (RFC 8832) and the payload protocol
// identifiers data channels use (RFC 8831 §8). Pure codecs: a malformed message
// is a reason string, never an exception.

/** RFC 8831 §8 / IANA SCTP PPIDs. */
export const Ppid = {
  DCEP: 50,
  STRING: 51,
  BINARY: 53,
  /** RFC 8831 §6.6: an empty message is sent as one byte with these. */
  STRING_EMPTY: 56,
  BINARY_EMPTY: 57,
} as const;

const MESSAGE_OPEN = 0x03;
const MESSAGE_ACK = 0x02;
const OPEN_FIXED_SIZE = 12;

/** RFC 8832 §5.1 channel types: bit 0x80 unordered, low bits the reliability policy. */
const RELIABLE = 0x00;
const PARTIAL_RELIABLE_REXMIT = 0x01;
const PARTIAL_RELIABLE_TIMED = 0x02;
const UNORDERED = 0x80;

export interface ChannelParameters {
  label: string;
  protocol: string;
  ordered: boolean;
  /** Retransmissions allowed (RFC 8832 §5.1 DATA_CHANNEL_PARTIAL_RELIABLE_REXMIT), else null. */
  maxRetransmits: number | null;
  /** Milliseconds a message may take (…_TIMED), else null. */
  maxPacketLifeTime: number | null;
  priority: number;
}

export type DcepMessage = { type: 'open'; channel: ChannelParameters } | { type: 'ack' };

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function parseDcep(data: Buffer): { ok: true; message: DcepMessage } | { ok: false; reason: string } {
  if (data.length === 0) return { ok: false, reason: 'empty DCEP message' };
  if (data[0] === MESSAGE_ACK) {
    return data.length === 1 ? { ok: true, message: { type: 'ack' } } : { ok: false, reason: 'DATA_CHANNEL_ACK with trailing bytes' };
  }
  if (data[0] !== MESSAGE_OPEN) return { ok: false, reason: `unknown DCEP message type ${data[0]}` };
  if (data.length < OPEN_FIXED_SIZE) return { ok: false, reason: 'DATA_CHANNEL_OPEN shorter than its fixed part' };
  const channelType = data[1]!;
  const priority = data.readUInt16BE(2);
  const reliability = data.readUInt32BE(4);
  const labelLength = data.readUInt16BE(8);
  const protocolLength = data.readUInt16BE(10);
  if (OPEN_FIXED_SIZE + labelLength + protocolLength !== data.length) {
    return { ok: false, reason: 'DATA_CHANNEL_OPEN label and protocol lengths do not match its size' };
  }
  const policy = channelType & ~UNORDERED;
  if (policy !== RELIABLE && policy !== PARTIAL_RELIABLE_REXMIT && policy !== PARTIAL_RELIABLE_TIMED) {
    return { ok: false, reason: `unknown DATA_CHANNEL_OPEN channel type 0x${channelType.toString(16)}` };
  }
  let label: string;
  let protocol: string;
  try {
    label = utf8.decode(data.subarray(OPEN_FIXED_SIZE, OPEN_FIXED_SIZE + labelLength));
    protocol = utf8.decode(data.subarray(OPEN_FIXED_SIZE + labelLength));
  } catch {
    return { ok: false, reason: 'DATA_CHANNEL_OPEN label or protocol is not UTF-8' };
  }
  return {
    ok: true,
    message: {
      type: 'open',
      channel: {
        label,
        protocol,
        ordered: (channelType & UNORDERED) === 0,
        maxRetransmits: policy === PARTIAL_RELIABLE_REXMIT ? reliability : null,
        maxPacketLifeTime: policy === PARTIAL_RELIABLE_TIMED ? reliability : null,
        priority,
      },
    },
  };
}

export function encodeOpen(channel: ChannelParameters): Buffer {
  const label = Buffer.from(channel.label, 'utf8');
  const protocol = Buffer.from(channel.protocol, 'utf8');
  const out = Buffer.alloc(OPEN_FIXED_SIZE + label.length + protocol.length);
  let type = channel.ordered ? 0 : UNORDERED;
  let reliability = 0;
  if (channel.maxRetransmits !== null) {
    type |= PARTIAL_RELIABLE_REXMIT;
    reliability = channel.maxRetransmits;
  } else if (channel.maxPacketLifeTime !== null) {
    type |= PARTIAL_RELIABLE_TIMED;
    reliability = channel.maxPacketLifeTime;
  }
  out[0] = MESSAGE_OPEN;
  out[1] = type;
  out.writeUInt16BE(channel.priority, 2);
  out.writeUInt32BE(reliability >>> 0, 4);
  out.writeUInt16BE(label.length, 8);
  out.writeUInt16BE(protocol.length, 10);
  label.copy(out, OPEN_FIXED_SIZE);
  protocol.copy(out, OPEN_FIXED_SIZE + label.length);
  return out;
}

export const DCEP_ACK = Buffer.from([MESSAGE_ACK]);
