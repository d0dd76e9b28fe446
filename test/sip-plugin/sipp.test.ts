/**
 * The SIP plugin against sipp (a real SIP peer) with a werift browser through
 * the Janus API, media through ferry's native engine:
 * - an offerless INVITE gives `incomingcall` without jsep; the client accepts
 *   with a JSEP offer; sipp finds ferry's offer in the 200 OK and answers in
 *   the ACK, pointing media at a plain UDP socket of this test; RTP flows both
 *   ways and is checked at both ends;
 * - lessons §1 (Janus #3332): two offerless INVITEs declined (sipp demands
 *   603), then a third call is accepted and carries media.
 * Missing sipp is a failure (CI installs it with .ci/install-test-peers.sh).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

import { udpPeer } from '../helpers/udp.js';
import { loopbackPeer } from '../helpers/werift.js';
import { freePort, type Peer } from '../sip/helpers.js';
import { SipClient, registerGuest, useSippRuns, expectSippSuccess, pluginScenario, sipp, stackScenario, startSipFerry } from './helpers.js';
import { acceptOfferlessWithMedia, hangUpAndCheck, withBrowserAndSink } from './media.js';

const test = suite('SIP plugin ↔ sipp, media through the engine');
const sippRuns = useSippRuns(test, 'ferry-sip-plugin-');
const peers = sippRuns.peers;

async function guest(client: SipClient): Promise<number> {
  const registered = await registerGuest(client);
  assert.equal(registered['plugindata']['data']['result']['register_sent'], false);
  const port = (await client.info())['sip_udp_port'] as number;
  assert.ok(port > 0);
  return port;
}

interface GuestCall {
  s: Awaited<ReturnType<typeof startSipFerry>>;
  client: SipClient;
  uaPort: number;
  sink: Awaited<ReturnType<typeof udpPeer>>;
  pc: ReturnType<typeof loopbackPeer>;
}

/** A ferry, a guest SIP account on it, a werift peer and an RTP sink for one test; all released after. */
async function withGuest(run: (g: GuestCall) => Promise<void>): Promise<void> {
  await withBrowserAndSink(async (b) => {
    const uaPort = await guest(b.client);
    await run({ ...b, uaPort });
  });
}

/** sipp calls offerless; the call is accepted with the peer's offer, carries RTP both ways and is hung up. */
async function offerlessCallWithMedia(g: GuestCall, label: string): Promise<void> {
  const caller = sipp(['-sf', pluginScenario('uac-offerless-media.xml'), '-key', 'sink_port', String(g.sink.port), '-p', String(await freePort()), '-m', '1', `127.0.0.1:${g.uaPort}`], sippRuns.workdir);
  peers.push(caller);
  await acceptOfferlessWithMedia(g.s, g.client, g.sink, g.pc, /^sip:sipp@127\.0\.0\.1/);
  await hangUpAndCheck(g.s, g.client);
  await expectSippSuccess(caller, label);
}

test('offerless INVITE from sipp: incomingcall without jsep, accept with an offer, answer in the ACK, RTP both ways', () =>
  withGuest((g) => offerlessCallWithMedia(g, 'offerless media scenario')));

test('lessons §1: two offerless INVITEs declined (603 by default, checked by sipp), then a third call is accepted and carries media', () =>
  withGuest(async (g) => {
    const { s, client, uaPort } = g;
    const decliner = sipp(['-sf', stackScenario('uac-offerless-decline.xml'), '-p', String(await freePort()), '-m', '2', '-l', '1', `127.0.0.1:${uaPort}`], sippRuns.workdir);
    peers.push(decliner);
    for (let n = 0; n < 2; n++) {
      const incoming = await client.event('incomingcall');
      assert.is(incoming['jsep'], undefined, `INVITE ${n + 1} is offerless`);
      await client.send({ request: 'decline' });
      const declining = await client.event('declining');
      assert.is(declining['plugindata']['data']['result']['code'], 603, 'Janus #3339: 603 Decline by default');
      const hangup = await client.event('hangup');
      assert.is(hangup['plugindata']['data']['result']['code'], 603);
      assert.is(s.sip.stats().activeCalls, 0, `slot idle after decline ${n + 1}`);
      assert.is((await client.info())['slot'], 'idle');
    }
    await expectSippSuccess(decliner, 'decline scenario (sipp requires 603)');
    assert.is(s.f.ferry.leasedPorts(), 0, 'no port was ever leased for the declined offerless calls');

    // The third call is not answered "486 Busy" (the #3332 symptom): it is offered, accepted and carries media.
    await offerlessCallWithMedia(g, 'third call');
  }));

test.run();
