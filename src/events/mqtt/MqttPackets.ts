// MQTT 3.1.1 control packets (OASIS Standard, 29 October 2014), the few a publishing
// client and a test subscriber need: CONNECT/CONNACK, PUBLISH/PUBACK, SUBSCRIBE/SUBACK,
// PINGREQ/PINGRESP, DISCONNECT. Encoding builds whole packets; decoding takes a stream of
// bytes and returns each complete packet, or an error for bytes no broker may send.

/** Control packet types (§2.2.1). */
export const PacketType = {
  connect: 1,
  connack: 2,
  publish: 3,
  puback: 4,
  subscribe: 8,
  suback: 9,
  pingreq: 12,
  pingresp: 13,
  disconnect: 14,
} as const;

/** CONNACK return codes (§3.2.2.3), for the error a refusal gives. */
export const CONNACK_REFUSALS: Readonly<Record<number, string>> = {
  1: 'unacceptable protocol version',
  2: 'identifier rejected',
  3: 'server unavailable',
  4: 'bad user name or password',
  5: 'not authorized',
};

/** The largest remaining length four bytes encode (§2.2.3). */
const MAX_REMAINING_LENGTH = 268_435_455;

export class MqttProtocolError extends Error {}

/** Remaining Length (§2.2.3): 7 bits per byte, least significant first, high bit = more. */
function encodeRemainingLength(n: number): Buffer {
  if (n > MAX_REMAINING_LENGTH) throw new MqttProtocolError(`packet of ${n} bytes is larger than MQTT allows`);
  const bytes: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    bytes.push(b);
  } while (n > 0);
  return Buffer.from(bytes);
}

/** UTF-8 string with its two-byte length (§1.5.3). */
function utf8(s: string): Buffer {
  const body = Buffer.from(s, 'utf8');
  if (body.length > 0xffff) throw new MqttProtocolError('string longer than 65535 bytes');
  const out = Buffer.alloc(2 + body.length);
  out.writeUInt16BE(body.length, 0);
  body.copy(out, 2);
  return out;
}

function packet(firstByte: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([firstByte]), encodeRemainingLength(body.length), body]);
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n, 0);
  return b;
}

export interface ConnectOptions {
  clientId: string;
  keepAliveSeconds: number;
  username?: string | null;
  password?: string | null;
  /** Default true: nothing of an earlier connection is resumed (§3.1.2.4); false keeps subscriptions and queued QoS 1 messages. */
  cleanSession?: boolean;
}

/** CONNECT (§3.1). */
export function encodeConnect(o: ConnectOptions): Buffer {
  let flags = o.cleanSession === false ? 0 : 0x02;
  const payload = [utf8(o.clientId)];
  if (o.username !== undefined && o.username !== null) {
    flags |= 0x80;
    payload.push(utf8(o.username));
    if (o.password !== undefined && o.password !== null) {
      flags |= 0x40;
      payload.push(utf8(o.password));
    }
  }
  // Protocol name "MQTT", level 4 = 3.1.1 (§3.1.2.1, §3.1.2.2).
  return packet(PacketType.connect << 4, utf8('MQTT'), Buffer.from([4, flags]), u16(o.keepAliveSeconds), ...payload);
}

/** PUBLISH (§3.3): QoS 0 carries no packet id; QoS 1 does and is answered by PUBACK. */
export function encodePublish(topic: string, payload: Buffer, qos: 0 | 1, packetId: number): Buffer {
  const first = (PacketType.publish << 4) | (qos << 1);
  return qos === 0 ? packet(first, utf8(topic), payload) : packet(first, utf8(topic), u16(packetId), payload);
}

export function encodePuback(packetId: number): Buffer {
  return packet(PacketType.puback << 4, u16(packetId));
}

/** SUBSCRIBE (§3.8): its fixed-header flags must be 0010. */
export function encodeSubscribe(packetId: number, topicFilter: string, qos: 0 | 1): Buffer {
  return packet((PacketType.subscribe << 4) | 0x02, u16(packetId), utf8(topicFilter), Buffer.from([qos]));
}

export const PINGREQ = Buffer.from([PacketType.pingreq << 4, 0]);
export const DISCONNECT = Buffer.from([PacketType.disconnect << 4, 0]);

export type IncomingPacket =
  | { type: 'connack'; sessionPresent: boolean; returnCode: number }
  | { type: 'puback'; packetId: number }
  | { type: 'suback'; packetId: number; granted: number[] }
  | { type: 'publish'; topic: string; qos: number; packetId: number | null; payload: Buffer }
  | { type: 'pingresp' };

/**
 * Splits a byte stream into packets. Throws MqttProtocolError on a malformed or oversized
 * packet: the connection is then unusable and must be closed.
 */
export class PacketReader {
  private buffer: Buffer = Buffer.alloc(0);

  constructor(private readonly maxPacketBytes: number) {}

  push(chunk: Buffer): IncomingPacket[] {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const out: IncomingPacket[] = [];
    for (;;) {
      if (this.buffer.length < 2) break;
      let length = 0;
      let multiplier = 1;
      let offset = 1;
      let complete = false;
      for (; offset < this.buffer.length && offset <= 4; offset++) {
        const b = this.buffer[offset]!;
        length += (b & 0x7f) * multiplier;
        multiplier *= 128;
        if ((b & 0x80) === 0) {
          complete = true;
          offset++;
          break;
        }
      }
      if (!complete) {
        if (offset > 4) throw new MqttProtocolError('remaining length longer than four bytes');
        break;
      }
      if (length > this.maxPacketBytes) throw new MqttProtocolError(`packet of ${length} bytes is larger than the ${this.maxPacketBytes} accepted`);
      if (this.buffer.length < offset + length) break;
      const first = this.buffer[0]!;
      const body = this.buffer.subarray(offset, offset + length);
      this.buffer = this.buffer.subarray(offset + length);
      const decoded = decode(first, body);
      if (decoded) out.push(decoded);
    }
    return out;
  }
}

function need(body: Buffer, n: number, what: string): void {
  if (body.length < n) throw new MqttProtocolError(`${what} too short (${body.length} bytes)`);
}

/** One packet from its first byte and body; types a client never receives are errors (§4.8). */
function decode(first: number, body: Buffer): IncomingPacket | null {
  const type = first >> 4;
  switch (type) {
    case PacketType.connack:
      need(body, 2, 'CONNACK');
      return { type: 'connack', sessionPresent: (body[0]! & 1) === 1, returnCode: body[1]! };
    case PacketType.puback:
      need(body, 2, 'PUBACK');
      return { type: 'puback', packetId: body.readUInt16BE(0) };
    case PacketType.suback:
      need(body, 3, 'SUBACK');
      return { type: 'suback', packetId: body.readUInt16BE(0), granted: [...body.subarray(2)] };
    case PacketType.publish: {
      const qos = (first >> 1) & 0x03;
      if (qos === 3) throw new MqttProtocolError('PUBLISH with QoS 3');
      need(body, 2, 'PUBLISH');
      const topicLength = body.readUInt16BE(0);
      const idLength = qos > 0 ? 2 : 0;
      need(body, 2 + topicLength + idLength, 'PUBLISH');
      const topic = body.subarray(2, 2 + topicLength).toString('utf8');
      const packetId = qos > 0 ? body.readUInt16BE(2 + topicLength) : null;
      return { type: 'publish', topic, qos, packetId, payload: Buffer.from(body.subarray(2 + topicLength + idLength)) };
    }
    case PacketType.pingresp:
      return { type: 'pingresp' };
    default:
      throw new MqttProtocolError(`unexpected packet type ${type} from the broker`);
  }
}
