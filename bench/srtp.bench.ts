// SRTP protect/unprotect throughput of one core: ferry (Rust, called once per
// run so the loop is native) beside werift-rtp (pure TypeScript) in the same run.
import { loadNative } from '../src/media/native.js';
import type { SrtpProfileName } from '../src/media/MediaEngine.js';
import { newKeys, payloadFor, rtpPacket, weriftSession, WERIFT_PROFILES } from '../test/helpers/rtp.js';
import type { Figures } from './figures.js';

const PROFILES: SrtpProfileName[] = ['AEAD_AES_128_GCM', 'AES_CM_128_HMAC_SHA1_80', 'AES_CM_128_HMAC_SHA1_32', 'AEAD_AES_256_GCM'];
export const PAYLOAD = 1200;

function ferryRate(profile: SrtpProfileName, op: 'protect' | 'protect_batch16' | 'unprotect', seconds: number): number {
  const native = loadNative();
  // Calibrate on a short run, then run for about `seconds`.
  const probe = native.benchSrtp(profile, op, PAYLOAD, 20_000);
  const perSecond = probe.packets / (probe.nanos / 1e9);
  const iterations = Math.max(20_000, Math.min(50_000_000, Math.round(perSecond * seconds)));
  const r = native.benchSrtp(profile, op, PAYLOAD, iterations);
  return r.packets / (r.nanos / 1e9);
}

function weriftRate(profile: SrtpProfileName, op: 'protect' | 'unprotect', seconds: number): number {
  const keys = newKeys(profile);
  const tx = weriftSession(profile, keys, keys);
  const rx = weriftSession(profile, keys, keys);
  const pkt = (i: number) => rtpPacket({ ssrc: 0x1234, seq: i & 0xffff, ts: i * 3000, payload: payloadFor(i, PAYLOAD) });
  if (op === 'protect') {
    let n = 0;
    const start = process.hrtime.bigint();
    const end = start + BigInt(Math.round(seconds * 1e9));
    let now = start;
    while (now < end) {
      for (let k = 0; k < 200; k++, n++) {
        const p = pkt(n);
        tx.encrypt(p.payload, p.header);
      }
      now = process.hrtime.bigint();
    }
    return n / (Number(now - start) / 1e9);
  }
  // Unprotect: encrypt a batch untimed, time only decryption.
  let n = 0;
  let nanos = 0;
  while (nanos < seconds * 1e9 && n < 60_000) {
    const batch: Buffer[] = [];
    for (let k = 0; k < 2000; k++) {
      const p = pkt(n + k);
      batch.push(tx.encrypt(p.payload, p.header));
    }
    const t0 = process.hrtime.bigint();
    for (const b of batch) rx.decrypt(b);
    nanos += Number(process.hrtime.bigint() - t0);
    n += batch.length;
  }
  return n / (nanos / 1e9);
}

export function benchSrtp(figures: Figures, seconds: number): void {
  for (const profile of PROFILES) {
    const key = profile.toLowerCase();
    for (const op of ['protect', 'unprotect'] as const) {
      const ferry = ferryRate(profile, op, seconds);
      figures.add(`srtp.${op}.${key}.ferry`, ferry, 'packets/s');
      if (WERIFT_PROFILES[profile]) {
        const werift = weriftRate(profile, op, seconds);
        figures.add(`srtp.${op}.${key}.werift`, werift, 'packets/s');
        figures.add(`srtp.${op}.${key}.speedup`, ferry / werift, 'x');
        // AES-CM: 16 packets protected, then their HMAC-SHA1 tags computed together (16
        // AVX-512 lanes where the CPU has them), as a media thread's fan-out does. Against
        // werift's protect measured just before.
        if (op === 'protect' && profile.startsWith('AES_CM')) {
          const batched = ferryRate(profile, 'protect_batch16', seconds);
          figures.add(`srtp.protect_batch16.${key}.ferry`, batched, 'packets/s');
          figures.add(`srtp.protect_batch16.${key}.speedup`, batched / werift, 'x');
        }
      }
    }
  }
}

/** The NACK generator's cost per received packet (1 % loss, polled every 10 packets). */
export function benchNackGenerator(figures: Figures, seconds: number): void {
  const native = loadNative();
  const probe = native.benchNackGenerator(200_000);
  const perSecond = probe.packets / (probe.nanos / 1e9);
  const r = native.benchNackGenerator(Math.min(2 ** 31, Math.max(200_000, Math.round(perSecond * seconds))));
  figures.add('rtp.nack_generator.us_per_packet', r.nanos / 1000 / r.packets, 'µs/packet');
}

/** The send-side bandwidth estimator's cost per transport-cc feedback (100 packets each). */
export function benchBweEstimator(figures: Figures, seconds: number): void {
  const native = loadNative();
  const r = native.benchBweEstimator(Math.max(200, Math.round(seconds * 2000)));
  figures.add('bwe.estimator.us_per_feedback', r.nanos / 1000 / r.packets, 'µs/feedback');
}
