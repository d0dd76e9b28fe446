// What werift subscribers of the VideoRoom benchmark received: distinct RTP
// packets (a retransmission answering a NACK is the same packet again) and
// the duplicates, per subscriber, counted and dropped as they come (the e2e
// harness keeps every packet it receives).
import type { WeriftSubscriber } from '../test/videoroom-e2e/harness.js';

export interface Received {
  /** Distinct packets (by RTP stream and extended sequence number). */
  packets: number;
  duplicates: number;
}

export class DeliveryCounter {
  readonly counts: Received = { packets: 0, duplicates: 0 };
  /** Per SSRC: the extended sequence number last seen at each 16-bit sequence number. */
  private readonly streams = new Map<number, { seen: Float64Array; highest: number }>();

  constructor(private readonly subscriber: WeriftSubscriber) {}

  drain(): Received {
    for (const list of this.subscriber.received.values()) {
      for (const p of list) this.count(p.header.ssrc, p.header.sequenceNumber);
      list.length = 0;
    }
    return this.counts;
  }

  private count(ssrc: number, seq: number): void {
    let s = this.streams.get(ssrc);
    if (!s) {
      s = { seen: new Float64Array(65536).fill(-1), highest: seq };
      this.streams.set(ssrc, s);
    }
    // RFC 3550 A.1: the extended sequence number closest to the highest seen.
    let ext = s.highest - (s.highest & 0xffff) + seq;
    if (ext < s.highest - 0x8000) ext += 0x10000;
    else if (ext > s.highest + 0x8000) ext -= 0x10000;
    if (ext > s.highest) s.highest = ext;
    if (s.seen[seq] === ext) {
      this.counts.duplicates++;
      return;
    }
    s.seen[seq] = ext;
    this.counts.packets++;
  }
}
