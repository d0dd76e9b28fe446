/**
 * Fixes made to ferry's SIP stack while building the plugin, each shown on the wire.
 * - An INVITE retransmitted after the 2xx (its server transaction already ended,
 *   RFC 3261 §17.2.1) is not a new call; the same INVITE by another branch is a
 *   merged request and gets 482 (§8.2.2.2). Seen in the churn test with a short T1.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import type { Call } from '../../src/sip/Call.js';
import { UserAgent } from '../../src/sip/UserAgent.js';
import { rawUdp, SDP_ANSWER, until } from '../sip/helpers.js';

function invite(port: number, uaPort: number, branch: string): string {
  return [
    `INVITE sip:ferry@127.0.0.1:${uaPort} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${port};branch=${branch}`,
    'From: <sip:raw@127.0.0.1>;tag=rawtag',
    `To: <sip:ferry@127.0.0.1:${uaPort}>`,
    'Call-ID: retransmitted-invite@test',
    'CSeq: 1 INVITE',
    `Contact: <sip:raw@127.0.0.1:${port}>`,
    'Max-Forwards: 70',
    'Content-Length: 0',
    '', '',
  ].join('\r\n');
}

test('an INVITE arriving again after the 2xx is absorbed; by another branch it is 482', async () => {
  const ua = await UserAgent.create({ host: '127.0.0.1', user: 'ferry' });
  const raw = await rawUdp();
  try {
    const calls: Call[] = [];
    ua.on('incomingCall', (call) => {
      calls.push(call);
      ua.answer(call, 200, SDP_ANSWER);
    });
    const uaPort = ua.udp!.local.port;
    raw.send(invite(raw.port, uaPort, 'z9hG4bK-first'), uaPort);
    await until(() => raw.received.some((m) => m.toString().startsWith('SIP/2.0 200')), 3000, '200 OK');
    raw.send(invite(raw.port, uaPort, 'z9hG4bK-first'), uaPort);
    raw.send(invite(raw.port, uaPort, 'z9hG4bK-other'), uaPort);
    await until(() => raw.received.some((m) => m.toString().startsWith('SIP/2.0 482')), 3000, '482 for the merged request');
    await new Promise((r) => setTimeout(r, 100));
    assert.is(calls.length, 1, 'one call, not one per copy of the INVITE');
    assert.is(calls[0]!.state, 'accepting');
  } finally {
    raw.close();
    await ua.close();
  }
});

test.run();
