// Keeps a DTLS client's stale handshake records (RFC 6347 §4.2.4: retransmissions) from werift's
// server, which mishandles two kinds of them before the handshake ends.
//
// A repeated flight 5: werift handles a second ClientKeyExchange that arrives before its own
// flight 6 has gone out by deriving the master secret again, over a transcript that by then also
// holds CertificateVerify and Finished (RFC 7627 §4: the session hash must stop at
// ClientKeyExchange). Every record after that is decrypted with the wrong keys: DTLS is "up" and
// the peer's SCTP packets are silently lost, so its data channels never open. Chromium
// retransmits a flight after a timer as short as the ICE round trip, so a busy event loop is
// enough to hit it. The repeated messages carry nothing new (their first copy was fed); the
// Finished that comes with them (epoch 1) still reaches werift, which answers it by sending its
// flight 6 again when that was lost.
//
// A ClientHello older than one already passed (a lower message_seq, RFC 6347 §4.2.2: the first
// ClientHello is 0, the one with the cookie 1): werift answers any cookieless ClientHello with a
// new HelloVerifyRequest and draws a new random and key pair, even after its flight 4 has gone
// out with the old ones, so the client's ClientKeyExchange no longer fits. A ClientHello whose
// HelloVerifyRequest was lost is repeated with the same message_seq and still passes.
//
// Sans-IO: a datagram in, the datagram without the repeated records (or null) out.

/** RFC 6347 §4.1: type, version, epoch, sequence number, length. */
const RECORD_HEADER = 13;
/** RFC 6347 §4.2.2: msg_type, length, message_seq, fragment_offset, fragment_length. */
const HANDSHAKE_HEADER = 12;
const CONTENT_HANDSHAKE = 22;
/** RFC 5246 §7.4: the client's flight-5 messages sent in the clear (epoch 0). */
const CLIENT_FLIGHT5_PLAINTEXT = new Set([11 /* certificate */, 15 /* certificate_verify */, 16 /* client_key_exchange */]);
const CLIENT_HELLO = 1;

export class RepeatedFlightFilter {
  /** msg_type:message_seq:fragment_offset of each flight-5 fragment already passed on. */
  private readonly seen = new Set<string>();
  /** The highest message_seq of a ClientHello passed on. */
  private clientHelloSeq = -1;
  /** Records left out, for the logs. */
  dropped = 0;

  /** The datagram as it should reach the DTLS server; null when nothing of it is left. */
  filter(datagram: Buffer): Buffer | null {
    const kept: Buffer[] = [];
    let removed = false;
    let offset = 0;
    while (offset + RECORD_HEADER <= datagram.length) {
      const end = offset + RECORD_HEADER + datagram.readUInt16BE(offset + 11);
      if (end > datagram.length) break; // truncated: left to werift, which rejects it
      const record = datagram.subarray(offset, end);
      if (this.stale(record)) {
        removed = true;
        this.dropped++;
      } else {
        kept.push(record);
      }
      offset = end;
    }
    if (!removed) return datagram;
    if (offset < datagram.length) kept.push(datagram.subarray(offset));
    return kept.length === 0 ? null : Buffer.concat(kept);
  }

  /** Whether werift must not see this record; a flight-5 fragment or ClientHello passed on is remembered. */
  private stale(record: Buffer): boolean {
    const epoch = record.readUInt16BE(3);
    if (record[0] !== CONTENT_HANDSHAKE || epoch !== 0 || record.length < RECORD_HEADER + HANDSHAKE_HEADER) return false;
    const msgType = record[RECORD_HEADER]!;
    const messageSeq = record.readUInt16BE(RECORD_HEADER + 4);
    if (msgType === CLIENT_HELLO) {
      if (messageSeq < this.clientHelloSeq) return true;
      this.clientHelloSeq = messageSeq;
      return false;
    }
    if (!CLIENT_FLIGHT5_PLAINTEXT.has(msgType)) return false;
    const key = `${msgType}:${messageSeq}:${record.readUIntBE(RECORD_HEADER + 6, 3)}`;
    if (this.seen.has(key)) return true;
    this.seen.add(key);
    return false;
  }
}
