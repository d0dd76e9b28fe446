/**
 * REGISTER with a digest challenge against kamailio as registrar + outbound proxy
 * (test/sip/kamailio/registrar.cfg), which appends a Service-Route; then the
 * PJSIP #4066 outage scenario for real over TCP: kamailio is stopped (proxy
 * unreachable, the connection drops), restarted on the same port, and every
 * REGISTER — initial, recovery, retries — leaves via the proxy only, while the
 * next initial request carries Route: proxy, then Service-Route.
 * Missing kamailio is a failure (CI installs it with .ci/install-test-peers.sh).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { UserAgent } from '../../src/sip/UserAgent.js';
import type { SipMessage, SipRequest } from '../../src/sip/SipMessage.js';
import type { SipEndpoint } from '../../src/sip/SipTransport.js';
import { freePort, until, useKamailio, waitFor } from './helpers.js';


const test = suite('kamailio registrar ↔ UserAgent on 127.0.0.1');

let ua: UserAgent | undefined;

// Registered first, so the user agent closes while kamailio is still up.
test.after.each(async () => {
  await ua?.close();
  ua = undefined;
});

const kamailio = useKamailio(test, { dirPrefix: 'ferry-kamailio-', limitMs: 30_000 });
const startKamailio = kamailio.start;
const stopKamailio = kamailio.stop;

const REGISTERS = (sent: Array<{ m: SipMessage; to: SipEndpoint }>) =>
  sent.filter((s): s is { m: SipRequest; to: SipEndpoint } => s.m.kind === 'request' && s.m.method === 'REGISTER');

test('REGISTER over UDP: 401 challenge answered, 200 with Service-Route; wrong password fails', async () => {
  const port = await freePort();
  const servicePort = await freePort();
  await startKamailio(port, servicePort);
  ua = await UserAgent.create({ host: '127.0.0.1', user: 'alice' });
  const sent: Array<{ m: SipMessage; to: SipEndpoint }> = [];
  ua.on('sent', (m, to) => sent.push({ m, to }));
  const events: string[] = [];
  for (const e of ['registering', 'registered', 'registration_failed'] as const) ua.on(e, () => events.push(e));
  const registered = waitFor(ua, 'registered', 10_000);
  ua.register({ aor: 'sip:alice@ferry.test', outboundProxy: `sip:127.0.0.1:${port}`, credentials: { username: 'alice', password: 'ferry-secret' }, expires: 120 });
  const [info] = await registered;
  assert.equal(events, ['registering', 'registered']);
  assert.equal([...info.serviceRoute], [`sip:127.0.0.1:${servicePort};lr;transport=tcp`]);
  assert.ok(info.expires > 0 && info.expires <= 120);
  const regs = REGISTERS(sent);
  assert.is(regs.length, 2, 'one challenge, one authenticated REGISTER');
  assert.match(regs[1]!.m.headers.get('Authorization') ?? '', /qop=auth, nc=00000001/);
  for (const r of regs) {
    assert.equal(r.m.headers.getAll('Route'), [`<sip:127.0.0.1:${port};lr>`]);
    assert.is(r.to.port, port);
  }
  // An initial out-of-dialog request: Route = proxy first, then the Service-Route (kamailio echoes what it received).
  const out = await ua.message('sip:bob@ferry.test', 'text/plain', 'hi');
  assert.is(out.code, 404);
  const echoed = out.response?.headers.get('X-Ferry-Route') ?? '';
  assert.match(echoed, new RegExp(`^<sip:127\\.0\\.0\\.1:${port};lr>,\\s*<sip:127\\.0\\.0\\.1:${servicePort};lr;transport=tcp>$`));

  // Wrong password: the second 401 is not answered again → registration_failed.
  const bad = await UserAgent.create({ host: '127.0.0.1', user: 'mallory' });
  try {
    const failed = waitFor(bad, 'registration_failed', 10_000);
    bad.register({ aor: 'sip:mallory@ferry.test', outboundProxy: `sip:127.0.0.1:${port}`, credentials: { username: 'mallory', password: 'wrong' } });
    const [f] = await failed;
    assert.is(f.code, 401);
    assert.equal(bad.routes.serviceRoute, []);
  } finally {
    await bad.close();
  }
  ua.unregister();
  await waitFor(ua, 'unregistered', 5000);
  assert.equal(ua.routes.serviceRoute, [], 'Service-Route cleared on unregister');
});

test('PJSIP #4066 for real (TCP): proxy stops and comes back; every REGISTER goes via the proxy; INVITE Route = proxy, Service-Route', async () => {
  const port = await freePort();
  const servicePort = await freePort();
  let kam = await startKamailio(port, servicePort);
  ua = await UserAgent.create({ host: '127.0.0.1', user: 'alice', udpPort: null, tcpPort: 0 });
  const sent: Array<{ m: SipMessage; to: SipEndpoint }> = [];
  ua.on('sent', (m, to) => sent.push({ m, to }));
  const registered = waitFor(ua, 'registered', 10_000);
  ua.register({
    aor: 'sip:alice@ferry.test', outboundProxy: `sip:127.0.0.1:${port};transport=tcp`, transport: 'tcp',
    credentials: { username: 'alice', password: 'ferry-secret' }, expires: 300, backoffBaseMs: 200, backoffMaxMs: 800,
  });
  await registered;
  assert.is(ua.routes.serviceRoute.length, 1);

  // Outage: the proxy goes away; the TCP connection drops; the Service-Route is forgotten.
  const retrying = waitFor(ua, 'state', 10_000, (_f, _i, to) => to === 'retrying');
  await stopKamailio(kam, port);
  await retrying;
  assert.equal(ua.routes.serviceRoute, [], 'Service-Route cleared on transport loss');
  // Let a couple of retries fail against the closed port.
  await new Promise((r) => setTimeout(r, 700));
  // The proxy is back on the same port.
  const recovered = waitFor(ua, 'refreshed', 15_000);
  kam = await startKamailio(port, servicePort);
  const [info] = await recovered;
  assert.equal([...info.serviceRoute], [`sip:127.0.0.1:${servicePort};lr;transport=tcp`], 'Service-Route learned again');

  const regs = REGISTERS(sent);
  assert.ok(regs.length >= 5, `initial (2), failed retries, recovery (2): got ${regs.length}`);
  for (const r of regs) {
    assert.equal(r.m.headers.getAll('Route'), [`<sip:127.0.0.1:${port};transport=tcp;lr>`], 'REGISTER Route = proxy only');
    assert.is(r.to.port, port, 'REGISTER sent to the proxy');
  }
  // The next initial request: Route = proxy, then Service-Route.
  const out = await ua.message('sip:bob@ferry.test', 'text/plain', 'after outage');
  assert.is(out.code, 404);
  assert.match(out.response?.headers.get('X-Ferry-Route') ?? '', new RegExp(`^<sip:127\\.0\\.0\\.1:${port};transport=tcp;lr>,\\s*<sip:127\\.0\\.0\\.1:${servicePort};lr;transport=tcp>$`));
  const call = ua.invite('sip:bob@ferry.test', 'v=0\r\n');
  const [code] = await waitFor(call, 'failed', 10_000);
  assert.is(code, 404);
  const inv = sent.find((s) => s.m.kind === 'request' && s.m.method === 'INVITE');
  assert.equal(inv?.m.headers.getAll('Route'), [`<sip:127.0.0.1:${port};transport=tcp;lr>`, `<sip:127.0.0.1:${servicePort};lr;transport=tcp>`]);
  await stopKamailio(kam, port);
});

test.run();
