/**
 * A recorded stream's RTP packets turned back into codec frames, sans-IO: packets ordered by
 * their (extended) sequence numbers with repeats dropped, then Opus frames (RFC 7587 §4.2: one
 * per packet) or VP8 frames (RFC 7741 §4: the payload descriptor stripped, the partitions of
 * one timestamp joined). A VP8 frame with a missing packet is dropped, not passed on broken.
 * Times are in the stream's RTP clock, extended past 32-bit wrap-around.
 */

export interface RtpView {
  /** Sequence number extended past 16-bit wrap-around (RFC 3550 §A.1). */
  seq: number;
  /** Timestamp extended past 32-bit wrap-around. */
  ts: number;
  marker: boolean;
  payloadType: number;
  ssrc: number;
  payload: Buffer;
  /** Arrival, ms after the recording's first packet. */
  ms: number;
}

export interface Frame {
  /** RTP clock ticks (extended). */
  ts: number;
  data: Buffer;
  key: boolean;
  /** VP8 keyframes: the picture size from the frame header (RFC 6386 §9.1). */
  width?: number;
  height?: number;
}

/** RFC 3550 §5.1 header; null for what is not RTP. */
function parseRtp(packet: Buffer): Omit<RtpView, 'seq' | 'ts' | 'ms'> & { seq16: number; ts32: number } | null {
  if (packet.length < 12 || packet[0]! >> 6 !== 2) return null;
  const csrcs = packet[0]! & 0x0f;
  let offset = 12 + 4 * csrcs;
  if (packet[0]! & 0x10) {
    // RFC 3550 §5.3.1: 4-byte extension header, then its length in 32-bit words.
    if (packet.length < offset + 4) return null;
    offset += 4 + 4 * packet.readUInt16BE(offset + 2);
  }
  let end = packet.length;
  if (packet[0]! & 0x20) end -= packet[packet.length - 1]!;
  if (end < offset) return null;
  return {
    seq16: packet.readUInt16BE(2),
    ts32: packet.readUInt32BE(4),
    marker: (packet[1]! & 0x80) !== 0,
    payloadType: packet[1]! & 0x7f,
    ssrc: packet.readUInt32BE(8),
    payload: packet.subarray(offset, end),
  };
}

/**
 * The packets of the first SSRC (as janus-pp-rec keeps only it), with extended numbers,
 * in sequence order, each sequence number once (a retransmission repeats one).
 */
export function orderPackets(frames: ReadonlyArray<{ ms: number; packet: Buffer }>): RtpView[] {
  const out: RtpView[] = [];
  let ssrc: number | null = null;
  let lastSeq: number | null = null;
  let lastTs: number | null = null;
  for (const f of frames) {
    const p = parseRtp(f.packet);
    if (!p) continue;
    ssrc ??= p.ssrc;
    if (p.ssrc !== ssrc) continue;
    // The nearest extended value to the last one: a step of less than half the range either way.
    const seq: number = lastSeq === null ? p.seq16 : lastSeq + ((((p.seq16 - lastSeq) % 65536) + 98304) % 65536) - 32768;
    const ts: number = lastTs === null ? p.ts32 : lastTs + ((((p.ts32 - lastTs) % 2 ** 32) + 3 * 2 ** 31) % 2 ** 32) - 2 ** 31;
    lastSeq = seq;
    lastTs = ts;
    out.push({ seq, ts, marker: p.marker, payloadType: p.payloadType, ssrc: p.ssrc, payload: p.payload, ms: f.ms });
  }
  out.sort((a, b) => a.seq - b.seq);
  return out.filter((p, i) => i === 0 || p.seq !== out[i - 1]!.seq);
}

/** Opus: each non-empty payload is one frame (RFC 7587 §4.2). */
export function opusFrames(packets: RtpView[]): Frame[] {
  return packets.filter((p) => p.payload.length > 0).map((p) => ({ ts: p.ts, data: p.payload, key: true }));
}

/** RFC 7741 §4.2 payload descriptor: its length, and whether this packet starts the frame. */
function vp8Descriptor(payload: Buffer): { length: number; start: boolean } | null {
  if (payload.length < 1) return null;
  let length = 1;
  if (payload[0]! & 0x80) {
    if (payload.length < 2) return null;
    const x = payload[1]!;
    length = 2;
    if (x & 0x80) length += payload.length > 2 && payload[2]! & 0x80 ? 2 : 1; // PictureID, 7 or 15 bits
    if (x & 0x40) length += 1; // TL0PICIDX
    if (x & 0x30) length += 1; // TID/Y/KEYIDX
  }
  if (payload.length <= length) return null;
  // S (start of a partition) with partition index 0 starts the frame.
  return { length, start: (payload[0]! & 0x10) !== 0 && (payload[0]! & 0x07) === 0 };
}

/** VP8 frames: the packets of one timestamp, complete (a start, no gap, the marker), joined. */
export function vp8Frames(packets: RtpView[]): Frame[] {
  const out: Frame[] = [];
  let i = 0;
  while (i < packets.length) {
    let j = i;
    while (j + 1 < packets.length && packets[j + 1]!.ts === packets[i]!.ts) j++;
    const run = packets.slice(i, j + 1);
    i = j + 1;
    const descriptors = run.map((p) => vp8Descriptor(p.payload));
    const contiguous = run.every((p, k) => k === 0 || p.seq === run[k - 1]!.seq + 1);
    if (!contiguous || !descriptors[0]?.start || !run[run.length - 1]!.marker || descriptors.some((d) => d === null)) continue;
    const data = Buffer.concat(run.map((p, k) => p.payload.subarray(descriptors[k]!.length)));
    // RFC 6386 §9.1: P bit 0 is a keyframe, whose header carries the start code and the size.
    const key = (data[0]! & 0x01) === 0;
    const frame: Frame = { ts: run[0]!.ts, data, key };
    if (key && data.length >= 10 && data[3] === 0x9d && data[4] === 0x01 && data[5] === 0x2a) {
      frame.width = data.readUInt16LE(6) & 0x3fff;
      frame.height = data.readUInt16LE(8) & 0x3fff;
    }
    out.push(frame);
  }
  return out;
}
