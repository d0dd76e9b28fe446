/** Continuity checks on what a werift subscriber received across switches. */
import * as assert from 'uvu/assert';
import type { RtpPacket } from 'werift';

import { serialAfter, type SentMedia, type WeriftSubscriber } from './harness.js';

/**
 * One SSRC; sequence numbers exactly +1 per packet (nothing lost on
 * loopback, so any gap is ferry's); timestamps strictly advancing in serial
 * arithmetic (RFC 3550 §A.1), including at every switch.
 */
export function assertContinuous(got: RtpPacket[], label: string): void {
  assert.ok(got.length > 0, `${label}: received something`);
  assert.is(new Set(got.map((p) => p.header.ssrc)).size, 1, `${label}: one SSRC for the whole stream`);
  for (let i = 1; i < got.length; i++) {
    const a = got[i - 1]!.header;
    const b = got[i]!.header;
    if (b.sequenceNumber !== ((a.sequenceNumber + 1) & 0xffff)) {
      assert.unreachable(`${label}: packet ${i} has seq ${b.sequenceNumber} after ${a.sequenceNumber}`);
    }
    if (!serialAfter(a.timestamp, b.timestamp, 32)) {
      assert.unreachable(`${label}: packet ${i} has timestamp ${b.timestamp} after ${a.timestamp}`);
    }
  }
}

/** Payloads received equal, in order, the payloads expected. */
export function assertPayloads(got: RtpPacket[], expected: Buffer[], label: string): void {
  assert.is(got.length, expected.length, `${label}: packet count`);
  for (let i = 0; i < expected.length; i++) {
    if (!got[i]!.payload.equals(expected[i]!)) assert.unreachable(`${label}: payload ${i} differs (got ${got[i]!.payload.subarray(0, 20).toString()})`);
  }
}

/**
 * The subscriber got exactly what was sent, audio on mid 0 and video on mid 1, in order and as
 * continuous streams, and werift authenticated every packet.
 */
export function assertReceivedAsSent(sub: WeriftSubscriber, sent: SentMedia): void {
  assert.is(sub.decryptFailures(), 0, 'zero SRTP failures at the subscriber');
  assertPayloads(sub.received.get('0')!, sent.audio, 'audio');
  assertPayloads(sub.received.get('1')!, sent.video, 'video');
  assertContinuous(sub.received.get('0')!, 'audio');
  assertContinuous(sub.received.get('1')!, 'video');
}
