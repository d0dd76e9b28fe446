// What the parts of an SCTP association share: DATA chunk flags (RFC 4960
// §3.3.1), the counters, and the retransmission limits of §16 (RFC 9260).

export const FLAG_END = 1;
export const FLAG_BEGIN = 2;
export const FLAG_UNORDERED = 4;

/** Association.Max.Retrans (§16): consecutive timeouts before the peer is declared unreachable. */
export const MAX_RETRANSMISSIONS = 10;

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

export function newCounters(): SctpCounters {
  return { packetsIn: 0, packetsOut: 0, dataChunksIn: 0, dataChunksOut: 0, retransmissions: 0, fastRetransmits: 0, timeouts: 0, abandoned: 0, messagesIn: 0, messagesOut: 0 };
}
