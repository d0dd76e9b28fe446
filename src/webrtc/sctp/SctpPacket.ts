// SCTP packets (RFC 4960 §3): the 12-byte common header, the CRC32c checksum
// (§6.8) and the chunks (§3.2), read strictly. Anything malformed is refused
// with a reason, for the association to count and drop: a peer's bytes never
// throw out of here. Chunk bodies are views into the packet (no copies).
import { crc32cUpdate } from './Crc32c.js';

export const COMMON_HEADER_SIZE = 12;
const CHUNK_HEADER_SIZE = 4;

/** Chunk types ferry reads or writes (RFC 4960 §3.2, RFC 3758 §3.2, RFC 6525 §3.1). */
export const ChunkType = {
  DATA: 0,
  INIT: 1,
  INIT_ACK: 2,
  SACK: 3,
  HEARTBEAT: 4,
  HEARTBEAT_ACK: 5,
  ABORT: 6,
  SHUTDOWN: 7,
  SHUTDOWN_ACK: 8,
  ERROR: 9,
  COOKIE_ECHO: 10,
  COOKIE_ACK: 11,
  SHUTDOWN_COMPLETE: 14,
  RE_CONFIG: 130,
  FORWARD_TSN: 192,
} as const;

export interface Chunk {
  type: number;
  flags: number;
  /** The chunk's value (after its 4-byte header, without padding). */
  body: Buffer;
}

export interface SctpPacket {
  sourcePort: number;
  destinationPort: number;
  verificationTag: number;
  chunks: Chunk[];
}

export type ParseResult = { ok: true; packet: SctpPacket } | { ok: false; reason: string };

function padded(length: number): number {
  return (length + 3) & ~3;
}

/** The CRC32c of a packet as RFC 4960 §6.8 computes it: over the whole packet with the checksum field zero. */
export function packetChecksum(packet: Uint8Array): number {
  let crc = crc32cUpdate(0xffffffff, packet, 0, 8);
  crc = crc32cUpdate(crc, ZERO_CHECKSUM, 0, 4);
  crc = crc32cUpdate(crc, packet, COMMON_HEADER_SIZE, packet.length);
  return (crc ^ 0xffffffff) >>> 0;
}
const ZERO_CHECKSUM = new Uint8Array(4);

/** Reads one packet; a refusal says why (counted by the caller, never thrown). */
export function parsePacket(data: Buffer): ParseResult {
  if (data.length < COMMON_HEADER_SIZE + CHUNK_HEADER_SIZE) return { ok: false, reason: 'packet shorter than a header and one chunk' };
  // Appendix B: the checksum is carried in the byte order the reflected algorithm produces it.
  if (data.readUInt32LE(8) !== packetChecksum(data)) return { ok: false, reason: 'bad checksum' };
  const chunks: Chunk[] = [];
  let pos = COMMON_HEADER_SIZE;
  while (pos + CHUNK_HEADER_SIZE <= data.length) {
    const type = data[pos]!;
    const flags = data[pos + 1]!;
    const length = data.readUInt16BE(pos + 2);
    if (length < CHUNK_HEADER_SIZE) return { ok: false, reason: `chunk type ${type} with length ${length}` };
    if (pos + length > data.length) return { ok: false, reason: `chunk type ${type} runs past the packet` };
    chunks.push({ type, flags, body: data.subarray(pos + CHUNK_HEADER_SIZE, pos + length) });
    // §3.2: chunks are padded to 4 bytes; the last one's padding may be left out.
    pos += padded(length);
  }
  if (pos < data.length) return { ok: false, reason: 'trailing bytes after the last chunk' };
  return {
    ok: true,
    packet: { sourcePort: data.readUInt16BE(0), destinationPort: data.readUInt16BE(2), verificationTag: data.readUInt32BE(4), chunks },
  };
}

/** One chunk as it goes on the wire: header, value and zero padding to 4 bytes (§3.2). */
export function encodeChunk(type: number, flags: number, ...parts: Buffer[]): Buffer {
  const valueLength = parts.reduce((n, p) => n + p.length, 0);
  const length = CHUNK_HEADER_SIZE + valueLength;
  const out = Buffer.alloc(padded(length));
  out[0] = type;
  out[1] = flags;
  out.writeUInt16BE(length, 2);
  let pos = CHUNK_HEADER_SIZE;
  for (const p of parts) {
    p.copy(out, pos);
    pos += p.length;
  }
  return out;
}

/** A packet of already encoded chunks, with its checksum. */
export function encodePacket(sourcePort: number, destinationPort: number, verificationTag: number, chunks: readonly Buffer[]): Buffer {
  const size = COMMON_HEADER_SIZE + chunks.reduce((n, c) => n + c.length, 0);
  const out = Buffer.allocUnsafe(size);
  out.writeUInt16BE(sourcePort, 0);
  out.writeUInt16BE(destinationPort, 2);
  out.writeUInt32BE(verificationTag >>> 0, 4);
  out.writeUInt32LE(0, 8);
  let pos = COMMON_HEADER_SIZE;
  for (const c of chunks) {
    c.copy(out, pos);
    pos += c.length;
  }
  out.writeUInt32LE(packetChecksum(out), 8);
  return out;
}

/** A parameter of INIT, INIT ACK, HEARTBEAT, RE-CONFIG or an error cause (§3.2.1: type, length, value, padding). */
export interface Parameter {
  type: number;
  value: Buffer;
}

/** Reads a parameter list; null when a parameter runs past the end (the chunk is malformed). */
export function parseParameters(data: Buffer): Parameter[] | null {
  const out: Parameter[] = [];
  let pos = 0;
  while (pos + 4 <= data.length) {
    const type = data.readUInt16BE(pos);
    const length = data.readUInt16BE(pos + 2);
    if (length < 4 || pos + length > data.length) return null;
    out.push({ type, value: data.subarray(pos + 4, pos + length) });
    pos += padded(length);
  }
  return out;
}

export function encodeParameter(type: number, value: Buffer): Buffer {
  const length = 4 + value.length;
  const out = Buffer.alloc(padded(length));
  out.writeUInt16BE(type, 0);
  out.writeUInt16BE(length, 2);
  value.copy(out, 4);
  return out;
}
