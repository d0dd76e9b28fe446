// A minimal STUN Binding request writer (RFC 8489 §14: USERNAME, ICE-CONTROLLING,
// USE-CANDIDATE, MESSAGE-INTEGRITY, FINGERPRINT) for tests that play an ICE
// peer with a raw UDP socket. Written independently of ferry's Rust codec.
import { createHmac, randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';

function attr(type: number, value: Buffer): Buffer {
  const pad = (4 - (value.length % 4)) % 4;
  const out = Buffer.alloc(4 + value.length + pad);
  out.writeUInt16BE(type, 0);
  out.writeUInt16BE(value.length, 2);
  value.copy(out, 4);
  return out;
}

export function bindingRequest(username: string, password: string, useCandidate = true): Buffer {
  const tid = randomBytes(12);
  const tie = randomBytes(8);
  let body = Buffer.concat([
    attr(0x0006, Buffer.from(username)),
    attr(0x802a, tie), // ICE-CONTROLLING
    attr(0x0024, Buffer.from([0x6e, 0x7f, 0x1e, 0xff])), // PRIORITY
    ...(useCandidate ? [attr(0x0025, Buffer.alloc(0))] : []),
  ]);
  const header = (len: number) => {
    const h = Buffer.alloc(20);
    h.writeUInt16BE(0x0001, 0);
    h.writeUInt16BE(len, 2);
    h.writeUInt32BE(0x2112a442, 4);
    tid.copy(h, 8);
    return h;
  };
  // MESSAGE-INTEGRITY over the message with the length covering it (§14.5).
  const mi = createHmac('sha1', password).update(Buffer.concat([header(body.length + 24), body])).digest();
  body = Buffer.concat([body, attr(0x0008, mi)]);
  const fp = Buffer.alloc(4);
  fp.writeUInt32BE((crc32(Buffer.concat([header(body.length + 8), body])) ^ 0x5354554e) >>> 0, 0);
  body = Buffer.concat([body, attr(0x8028, fp)]);
  return Buffer.concat([header(body.length), body]);
}

/** STUN message class from a response's type field: 0x0101 success, 0x0111 error. */
export function stunType(buf: Buffer): number {
  return buf.length >= 2 ? buf.readUInt16BE(0) : -1;
}

/** Error code of an error response (ERROR-CODE attribute), or null. */
export function stunErrorCode(buf: Buffer): number | null {
  let off = 20;
  while (off + 4 <= buf.length) {
    const type = buf.readUInt16BE(off);
    const len = buf.readUInt16BE(off + 2);
    if (type === 0x0009 && len >= 4) return buf[off + 6]! * 100 + buf[off + 7]!;
    off += 4 + len + ((4 - (len % 4)) % 4);
  }
  return null;
}
