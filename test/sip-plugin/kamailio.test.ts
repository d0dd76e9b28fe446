/**
 * Lessons §2 (PJSIP #4066) through the plugin: kamailio (test/sip/kamailio/
 * registrar.cfg) is registrar and outbound proxy and adds a Service-Route.
 * The plugin registers via the proxy (TCP, digest challenge); the proxy is
 * stopped (the connection drops, refreshes fail: `registration_failed`),
 * then comes back (`registered` again). Every REGISTER left via the proxy
 * only; the next INVITE carries Route: proxy, then the Service-Route — seen
 * on the wire and echoed back by kamailio in a header the plugin hands to
 * the client through `incoming_header_prefixes`.
 * Missing kamailio is a failure (CI installs it with .ci/install-test-peers.sh).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

import type { SipMessage, SipRequest } from '../../src/sip/SipMessage.js';
import type { SipEndpoint } from '../../src/sip/SipTransport.js';
import { freePort, useKamailio } from '../sip/helpers.js';
import { SipClient, startSipFerry, until, webrtcSdp } from './helpers.js';

const test = suite('SIP plugin ↔ kamailio registrar/proxy with Service-Route');

const kamailio = useKamailio(test, { dirPrefix: 'ferry-sip-plugin-kam-', limitMs: 40_000 });
const startKamailio = kamailio.start;
const stopKamailio = kamailio.stop;

test('register via the proxy, outage and recovery, every REGISTER via the proxy; INVITE Route = proxy, Service-Route', async () => {
  const port = await freePort();
  const servicePort = await freePort();
  let kam = await startKamailio(port, servicePort);
  const s = await startSipFerry({ registration_backoff_ms: { base: 200, max: 800 } });
  let client: SipClient | undefined;
  try {
    client = await SipClient.open(s.f);
    const proxy = `<sip:127.0.0.1:${port};transport=tcp;lr>`;
    await client.send({
      request: 'register', username: 'sip:alice@ferry.test', secret: 'ferry-secret', force_tcp: true,
      outbound_proxy: `sip:127.0.0.1:${port};transport=tcp`, register_ttl: 300, incoming_header_prefixes: ['X-Ferry'],
    });
    await client.event('registering');
    // The wire tap: every message the account's UserAgent sends.
    const account = s.sip.accountOf(client.handle);
    assert.ok(account, 'the handle has an account');
    const sent: Array<{ m: SipMessage; to: SipEndpoint }> = [];
    account!.ua.on('sent', (m, to) => sent.push({ m, to }));
    const registered = await client.event('registered');
    assert.equal(registered['plugindata']['data']['result']['register_sent'], true);
    assert.equal([...account!.ua.routes.serviceRoute], [`sip:127.0.0.1:${servicePort};lr;transport=tcp`]);

    // Outage: the proxy stops, the TCP connection drops, refreshes fail.
    const registerCount = () => sent.filter((x) => x.m.kind === 'request' && x.m.method === 'REGISTER').length;
    const beforeOutage = registerCount();
    await stopKamailio(kam, port);
    const failed = await client.event('registration_failed', 10_000);
    assert.is(failed['plugindata']['data']['result']['code'], 503);
    assert.equal(account!.ua.routes.serviceRoute, [], 'Service-Route forgotten on transport loss');
    await until(() => registerCount() >= beforeOutage + 2, 5000, 'two refresh attempts while the proxy is down');
    assert.is(account!.status, 'registering', 'still not registered while the proxy is down');
    // The proxy is back on the same port: the registration recovers.
    kam = await startKamailio(port, servicePort);
    await client.event('registered', 15_000);
    assert.equal([...account!.ua.routes.serviceRoute], [`sip:127.0.0.1:${servicePort};lr;transport=tcp`], 'Service-Route learned again');

    const registers = sent.filter((x): x is { m: SipRequest; to: SipEndpoint } => x.m.kind === 'request' && x.m.method === 'REGISTER');
    assert.ok(registers.length >= 3, `failed refreshes and the recovery (with its challenge): ${registers.length}`);
    for (const r of registers) {
      assert.equal(r.m.headers.getAll('Route'), [proxy], 'REGISTER Route = the configured proxy only');
      assert.is(r.to.port, port, 'REGISTER sent to the proxy');
    }

    // The next INVITE: Route = proxy first, then the Service-Route (kamailio answers 404 and echoes the Route set).
    await client.send({ request: 'call', uri: 'sip:bob@ferry.test' }, { type: 'offer', sdp: webrtcSdp('offer') });
    await client.event('calling');
    const hangup = await client.event('hangup', 10_000);
    const result = hangup['plugindata']['data']['result'];
    assert.is(result['code'], 404);
    assert.match(result['headers']?.['X-Ferry-Route'] ?? '', new RegExp(`^<sip:127\\.0\\.0\\.1:${port};transport=tcp;lr>,\\s*<sip:127\\.0\\.0\\.1:${servicePort};lr;transport=tcp>$`));
    const invite = sent.find((x) => x.m.kind === 'request' && x.m.method === 'INVITE');
    assert.equal(invite?.m.headers.getAll('Route'), [proxy, `<sip:127.0.0.1:${servicePort};lr;transport=tcp>`]);
    await until(() => s.f.ferry.leasedPorts() === 0, 5000, 'ports released after the failed call');
    assert.is(s.sip.stats().activeCalls, 0);

    await client.send({ request: 'unregister' });
    await client.event('unregistering');
    await client.event('unregistered', 10_000);
    await until(() => s.sip.stats().accounts === 0, 5000, 'account closed after unregister');
    await stopKamailio(kam, port);
  } finally {
    await client?.close().catch(() => undefined);
    await s.f.stop();
  }
});

test.run();
