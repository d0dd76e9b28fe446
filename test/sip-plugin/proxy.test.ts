/**
 * Issue 16: an offerless INVITE through a proxy that does not Record-Route.
 * kamailio (test/sip-plugin/kamailio/proxy-norr.cfg) is registrar and
 * outbound proxy; the plugin registers through it; sipp calls
 * sip:alice@ferry.test through it without SDP. ferry's 200 OK carries the
 * browser-side offer back through kamailio, and then, the route set being
 * empty (RFC 3261 §12.1.1, §12.1.2), the caller's ACK with the SDP answer and
 * every later request (INFO, re-INVITE, BYE) go straight to ferry's Contact,
 * while ferry's own in-dialog requests (MESSAGE, BYE) go straight to the
 * caller's Contact. The call must be accepted, carry RTP both ways and end by
 * a BYE from either side, leaving no port lease, call or PeerConnection.
 * Missing sipp or kamailio is a failure (.ci/install-test-peers.sh).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { Call } from '../../src/sip/Call.js';
import type { SipMessage } from '../../src/sip/SipMessage.js';
import { UserAgent } from '../../src/sip/UserAgent.js';
import type { SipEndpoint } from '../../src/sip/SipTransport.js';
import type { UdpPeer } from '../helpers/udp.js';
import type { loopbackPeer } from '../helpers/werift.js';
import { freePort, useKamailio, waitFor, type Peer } from '../sip/helpers.js';
import { SipClient, useSippRuns, expectSippSuccess, pluginScenario, sipp, until, type SipFerry } from './helpers.js';
import { acceptOfferlessWithMedia, hangUpAndCheck, withBrowserAndSink } from './media.js';

const test = suite('SIP plugin: offerless INVITE through a proxy that does not Record-Route');
const here = dirname(fileURLToPath(import.meta.url));

const sippRuns = useSippRuns(test, 'ferry-sip-proxy-');
const peers = sippRuns.peers;
const kamailio = useKamailio(test, { dirPrefix: 'ferry-sip-norr-', limitMs: 40_000, cfg: join(here, 'kamailio', 'proxy-norr.cfg') });

interface Registered {
  s: SipFerry;
  client: SipClient;
  proxyPort: number;
  sink: UdpPeer;
  /** Everything the account's UserAgent sent or received, with the peer address. */
  wire: Array<{ dir: 'sent' | 'received'; m: SipMessage; peer: SipEndpoint }>;
}

/** kamailio, a ferry with alice registered through it, a werift peer and an RTP sink; all released after. */
async function withRegisteredAlice(run: (r: Registered, pc: ReturnType<typeof loopbackPeer>) => Promise<void>, tcp = false): Promise<void> {
  const proxyPort = await freePort();
  await kamailio.start(proxyPort, await freePort());
  await withBrowserAndSink(async ({ s, client, sink, pc }) => {
    await client.send({
      request: 'register', username: 'sip:alice@ferry.test', secret: 'ferry-secret', register_ttl: 300,
      outbound_proxy: `sip:127.0.0.1:${proxyPort}${tcp ? ';transport=tcp' : ''}`, ...(tcp ? { force_tcp: true } : {}),
    });
    await client.event('registering');
    const account = s.sip.accountOf(client.handle);
    assert.ok(account);
    const wire: Registered['wire'] = [];
    account!.ua.on('sent', (m, peer) => wire.push({ dir: 'sent', m, peer }));
    account!.ua.on('received', (m, peer) => wire.push({ dir: 'received', m, peer }));
    await client.event('registered');
    await run({ s, client, proxyPort, sink, wire }, pc);
  });
}

/** sipp calls alice through the proxy with `scenario` (offerless, its RTP to the sink); the browser accepts, media checked both ways. */
async function sippCallsAlice(r: Registered, pc: ReturnType<typeof loopbackPeer>, scenario: string): Promise<{ caller: Peer; sippPort: number }> {
  const sippPort = await freePort();
  const caller = sipp(['-sf', pluginScenario(scenario), '-s', 'alice', '-key', 'sink_port', String(r.sink.port), '-p', String(sippPort), '-m', '1', `127.0.0.1:${r.proxyPort}`], sippRuns.workdir, 40_000);
  peers.push(caller);
  await acceptOfferlessWithMedia(r.s, r.client, r.sink, pc, /^sip:sipp@127\.0\.0\.1/);
  return { caller, sippPort };
}

const requests = (r: Registered, dir: 'sent' | 'received', method: string) =>
  r.wire.filter((w) => w.dir === dir && w.m.kind === 'request' && w.m.method === method);

test('the caller hangs up: ACK with the answer, INFO, re-INVITE and BYE reach the Contact directly; MESSAGE from ferry goes to the caller directly', () =>
  withRegisteredAlice(async (r, pc) => {
    const { caller, sippPort } = await sippCallsAlice(r, pc, 'uac-offerless-via-proxy.xml');
    const invite = requests(r, 'received', 'INVITE')[0]!;
    assert.is(invite.peer.port, r.proxyPort, 'the INVITE came through the proxy');
    assert.equal(invite.m.headers.getAll('Record-Route'), [], 'the proxy did not Record-Route');
    const ack = requests(r, 'received', 'ACK')[0]!;
    assert.is(ack.peer.port, sippPort, 'the ACK came straight from the caller');

    // A MESSAGE in the dialog goes straight to the caller's Contact; it is also sipp's cue to go on.
    await r.client.send({ request: 'message', content: 'media checked' });
    await r.client.event('messagesent');
    const delivery = await r.client.event('messagedelivery');
    assert.is(delivery['plugindata']['data']['result']['code'], 200);
    assert.is(requests(r, 'sent', 'MESSAGE')[0]!.peer.port, sippPort);

    const dtmf = await r.client.event('dtmf');
    assert.is(dtmf['plugindata']['data']['result']['signal'], '5', 'INFO straight to the Contact raised dtmf');
    const hangup = await r.client.event('hangup', 15_000);
    assert.is(hangup['plugindata']['data']['result']['code'], 200, 'BYE straight to the Contact ended the call');
    await until(() => r.s.f.ferry.leasedPorts() === 0, 5000, 'ports released');
    assert.is(r.s.sip.stats().activeCalls, 0);
    await expectSippSuccess(caller, 'offerless via proxy, caller hangs up (re-INVITE answered recvonly)');
    assert.is(requests(r, 'received', 'BYE')[0]!.peer.port, sippPort);
    const okSent = r.wire.filter((w) => w.dir === 'sent' && w.m.kind === 'response' && w.m.status === 200 && w.m.headers.get('CSeq') === '1 INVITE');
    assert.ok(okSent.length >= 1 && okSent.length <= 3, `the 200 OK stopped being retransmitted once the ACK came (${okSent.length} sent)`);
  }));

test('ferry hangs up: its BYE goes straight to the caller', () =>
  withRegisteredAlice(async (r, pc) => {
    const { caller, sippPort } = await sippCallsAlice(r, pc, 'uac-offerless-via-proxy-ferry-bye.xml');
    await hangUpAndCheck(r.s, r.client);
    await expectSippSuccess(caller, 'offerless via proxy, ferry hangs up');
    assert.is(requests(r, 'sent', 'BYE')[0]!.peer.port, sippPort, 'BYE to the caller\'s Contact, not the proxy');
  }));

test('over TCP: a caller through the proxy ACKs and hangs up on a connection of its own to ferry\'s Contact', () =>
  withRegisteredAlice(async (r, pc) => {
    const caller = await UserAgent.create({ host: '127.0.0.1', udpPort: null, tcpPort: 0, user: 'bob', outboundProxy: `sip:127.0.0.1:${r.proxyPort};transport=tcp` });
    try {
      const answer = ['v=0', 'o=bob 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', `m=audio ${r.sink.port} RTP/AVP 0`, 'a=rtpmap:0 PCMU/8000', 'a=sendrecv', ''].join('\r\n');
      let call: Call | undefined;
      const acked = new Promise<void>((resolve) => {
        call = caller.invite('sip:alice@ferry.test', null, { from: 'sip:sipp@127.0.0.1' });
        call.on('accepted', (_res, offer) => {
          assert.match(offer ?? '', /m=audio \d+ RTP\/AVP/, 'ferry\'s 200 OK carries its offer');
          caller.ack(call!, answer);
          resolve();
        });
      });
      await acceptOfferlessWithMedia(r.s, r.client, r.sink, pc, /^sip:sipp@127\.0\.0\.1/);
      await acked;
      // kamailio opens its own connection to a TCP Contact: the Vias tell which way each request came.
      const invite = requests(r, 'received', 'INVITE')[0]!;
      assert.is(invite.m.headers.getAll('Via').length, 2, 'the INVITE came through the proxy');
      const ack = requests(r, 'received', 'ACK')[0]!;
      assert.is(ack.m.headers.getAll('Via').length, 1, 'the ACK came straight from the caller');
      const ended = waitFor(call!, 'terminated', 5000);
      caller.bye(call!);
      await ended;
      const hangup = await r.client.event('hangup');
      assert.is(hangup['plugindata']['data']['result']['code'], 200);
      await until(() => r.s.f.ferry.leasedPorts() === 0, 5000, 'ports released');
      assert.is(r.s.sip.stats().activeCalls, 0);
    } finally {
      await caller.close();
    }
  }, true));

test.run();
