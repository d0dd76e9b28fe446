/**
 * Reading Janus `.mjr` recordings (version 2, as ferry's engine writes them: see
 * native/crates/engine/src/mjr.rs for the layout), sans-IO: bytes in, the header's info and
 * the frames out. A file cut short ends at its last whole frame, as janus-pp-rec reads it.
 */

/** The header's JSON info. */
export interface MjrInfo {
  /** a(udio), v(ideo) or d(ata). */
  t: 'a' | 'v' | 'd';
  /** Janus's codec name (opus, vp8, …). */
  c: string;
  /** Created, µs since the Unix epoch. */
  s: number;
  /** First packet written, µs since the Unix epoch. */
  u: number;
  /** RTP header extensions: id → URI. */
  x?: Record<string, string>;
  f?: string;
}

export interface MjrFrame {
  /** ms after the first packet. */
  ms: number;
  packet: Buffer;
}

export interface MjrRecording {
  info: MjrInfo;
  frames: MjrFrame[];
}

const MAGIC = 'MJR00002';
const FRAME = 'MEET';

export function readMjr(bytes: Buffer): MjrRecording {
  if (bytes.length < 10 || bytes.toString('latin1', 0, 8) !== MAGIC) throw new Error('not a .mjr file of version 2 (MJR00002)');
  const infoLength = bytes.readUInt16BE(8);
  if (bytes.length < 10 + infoLength) throw new Error('.mjr header cut short');
  const info = JSON.parse(bytes.toString('utf8', 10, 10 + infoLength)) as MjrInfo;
  if (!['a', 'v', 'd'].includes(info.t) || typeof info.c !== 'string' || typeof info.u !== 'number') throw new Error(`.mjr info lacks t, c or u: ${JSON.stringify(info)}`);
  const frames: MjrFrame[] = [];
  let at = 10 + infoLength;
  while (at + 10 <= bytes.length) {
    if (bytes.toString('latin1', at, at + 4) !== FRAME) throw new Error(`.mjr: no frame at byte ${at}`);
    const ms = bytes.readUInt32BE(at + 4);
    const length = bytes.readUInt16BE(at + 8);
    if (at + 10 + length > bytes.length) break;
    frames.push({ ms, packet: bytes.subarray(at + 10, at + 10 + length) });
    at += 10 + length;
  }
  return { info, frames };
}
