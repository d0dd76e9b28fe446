/**
 * Serialises a SIP message (RFC 3261 §7). Content-Length is always written
 * from the body's BYTE length (§20.14; a UTF-8 body has more bytes than
 * characters), replacing any Content-Length the caller set, so the header can
 * never disagree with the body. Header names are written in long form.
 */
import type { SipMessage } from './SipMessage.js';

export function serializeSipMessage(msg: SipMessage): Buffer {
  const startLine = msg.kind === 'request' ? `${msg.method} ${msg.uri} SIP/2.0` : `SIP/2.0 ${msg.status} ${msg.reason}`;
  let head = startLine + '\r\n';
  for (const h of msg.headers.list) {
    if (h.name === 'Content-Length') continue;
    // A value must not smuggle a line break: that would inject headers (§7.3.1 allows none unfolded).
    head += `${h.name}: ${h.value.replace(/[\r\n]+/g, ' ')}\r\n`;
  }
  head += `Content-Length: ${msg.body.length}\r\n\r\n`;
  return msg.body.length === 0 ? Buffer.from(head, 'utf8') : Buffer.concat([Buffer.from(head, 'utf8'), msg.body]);
}
