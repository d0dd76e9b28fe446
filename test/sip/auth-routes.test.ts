/** Digest auth vectors and flows; route-set rules; the registration state table incl. the PJSIP #4066 scenario. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { ManualClock } from '../../src/time/Clock.js';
import { answerChallenges, buildAuthorization, digestResponse, parseAuthParams, parseDigestChallenge } from '../../src/sip/DigestAuth.js';
import { AccountRoutes, applyRoutes } from '../../src/sip/RouteSet.js';
import { REGISTRATION_TABLE, Registration, type RegisterOutcome, type RegistrationState } from '../../src/sip/Registration.js';
import { Dialog } from '../../src/sip/Dialog.js';
import { makeResponse, type SipRequest, type SipResponse } from '../../src/sip/SipMessage.js';
import { parseSipMessage } from '../../src/sip/SipParser.js';

const md5 = (s: string) => createHash('md5').update(s).digest('hex');

const digest = suite('digest (RFC 2617 / RFC 3261 §22)');

digest('RFC 2617 §3.5 example vector (password and precomputed HA1)', () => {
  const ch = parseDigestChallenge('Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"');
  assert.ok(ch);
  const input = { method: 'GET', uri: '/dir/index.html', cnonce: '0a4f113b', nc: 1 };
  assert.is(digestResponse(ch!, { username: 'Mufasa', password: 'Circle Of Life' }, input), '6629fae49393a05397450978507c4ef1');
  const ha1 = md5('Mufasa:testrealm@host.com:Circle Of Life');
  assert.is(digestResponse(ch!, { username: 'Mufasa', ha1 }, input), '6629fae49393a05397450978507c4ef1');
  const header = buildAuthorization(ch!, { username: 'Mufasa', password: 'Circle Of Life' }, input) ?? '';
  const params = parseAuthParams(header.replace(/^Digest /, ''));
  assert.is(params?.get('response'), '6629fae49393a05397450978507c4ef1');
  assert.is(params?.get('nc'), '00000001');
  assert.is(params?.get('qop'), 'auth');
  assert.is(params?.get('opaque'), '5ccc069c403ebaf9f0171e9517f40e41');
});

digest('no qop (RFC 2069 form), SHA-256, unknown algorithm refused', () => {
  const ch = parseDigestChallenge('Digest realm="r", nonce="n"')!;
  const creds = { username: 'u', password: 'p' };
  assert.is(digestResponse(ch, creds, { method: 'REGISTER', uri: 'sip:r', cnonce: 'c', nc: 1 }), md5(`${md5('u:r:p')}:n:${md5('REGISTER:sip:r')}`));
  const sha = parseDigestChallenge('Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth"')!;
  assert.is(digestResponse(sha, creds, { method: 'REGISTER', uri: 'sip:r', cnonce: 'c', nc: 1 })?.length, 64);
  assert.is(digestResponse(sha, { username: 'u', ha1: md5('u:r:p') }, { method: 'REGISTER', uri: 'sip:r', cnonce: 'c', nc: 1 }), null, 'an MD5 HA1 cannot answer SHA-256');
  assert.is(digestResponse(parseDigestChallenge('Digest realm="r", nonce="n", algorithm=AKAv1-MD5')!, creds, { method: 'X', uri: 'u', cnonce: 'c', nc: 1 }), null);
  assert.is(parseDigestChallenge('Basic realm="r"'), null);
});

digest('401 → Authorization, 407 → Proxy-Authorization (one per challenge)', () => {
  const reg = registerRequest();
  const r401 = makeResponse(reg, 401, undefined, 't');
  r401.headers.add('WWW-Authenticate', 'Digest realm="ferry.test", nonce="abc", qop="auth", algorithm=MD5');
  const a = answerChallenges(r401, { username: 'alice', password: 'pw' }, 'REGISTER', reg.uri);
  assert.is(a.length, 1);
  assert.is(a[0]?.header, 'Authorization');
  assert.match(a[0]?.value ?? '', /uri="sip:ferry.test"/);
  const r407 = makeResponse(reg, 407, undefined, 't');
  r407.headers.add('Proxy-Authenticate', 'Digest realm="p1", nonce="1"');
  r407.headers.add('Proxy-Authenticate', 'Digest realm="p2", nonce="2"');
  const b = answerChallenges(r407, { username: 'alice', password: 'pw' }, 'INVITE', 'sip:bob@ferry.test');
  assert.equal(b.map((x) => [x.header, x.realm]), [['Proxy-Authorization', 'p1'], ['Proxy-Authorization', 'p2']]);
});

digest.run();

function registerRequest(): SipRequest {
  const r = parseSipMessage('REGISTER sip:ferry.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKr\r\nFrom: <sip:alice@ferry.test>;tag=1\r\nTo: <sip:alice@ferry.test>\r\nCall-ID: r\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n');
  if (!r.ok || r.message.kind !== 'request') throw new Error('fixture');
  return r.message;
}

const routes = suite('route sets (RFC 3261 §8.1.2, §12.2.1.1; RFC 3608 §6.1)');

const P = 'sip:127.0.0.1:5070';
const S1 = 'sip:s1.ferry.test;lr';
const S2 = 'sip:s2.ferry.test;lr';

function ok(serviceRoutes: string[]): SipResponse {
  const res = makeResponse(registerRequest(), 200, undefined, 't');
  for (const s of serviceRoutes) res.headers.add('Service-Route', `<${s}>`);
  return res;
}

routes('REGISTER uses the proxy only; initial requests: proxy then Service-Route in order; proxy gets lr', () => {
  const r = new AccountRoutes(P);
  assert.equal(r.forRegister(), ['sip:127.0.0.1:5070;lr']);
  r.updateFromRegisterOk(ok([S1, S2]));
  assert.equal(r.forRegister(), ['sip:127.0.0.1:5070;lr'], 'Service-Route never in REGISTER');
  assert.equal(r.forInitialRequest(), ['sip:127.0.0.1:5070;lr', S1, S2]);
  const none = new AccountRoutes();
  none.updateFromRegisterOk(ok([S1]));
  assert.equal(none.forRegister(), []);
  assert.equal(none.forInitialRequest(), [S1]);
});

routes('Service-Route replaced on each 2xx, cleared by a 2xx without one and by explicit clears', () => {
  const r = new AccountRoutes(P);
  r.updateFromRegisterOk(ok([S1, S2]));
  r.updateFromRegisterOk(ok([S2]));
  assert.equal(r.serviceRoute, [S2]);
  r.updateFromRegisterOk(ok([]));
  assert.equal(r.serviceRoute, []);
  assert.is(r.lastClearReason, 'no-service-route-in-2xx');
  r.updateFromRegisterOk(ok([S1]));
  r.clearServiceRoute('transport-lost');
  assert.equal(r.forInitialRequest(), ['sip:127.0.0.1:5070;lr']);
  assert.throws(() => r.setOutboundProxy('not a uri'));
});

routes('applyRoutes: loose vs strict first hop; in-dialog route set is Record-Route reversed for the UAC', () => {
  const loose = applyRoutes('sip:bob@10.0.0.9', ['sip:p1;lr', 'sip:p2;lr']);
  assert.is(loose.requestUri, 'sip:bob@10.0.0.9');
  assert.equal(loose.routeHeaders, ['<sip:p1;lr>', '<sip:p2;lr>']);
  assert.is(loose.nextHop, 'sip:p1;lr');
  const strict = applyRoutes('sip:bob@10.0.0.9', ['sip:strict.example', 'sip:p2;lr']);
  assert.is(strict.requestUri, 'sip:strict.example');
  assert.equal(strict.routeHeaders, ['<sip:p2;lr>', '<sip:bob@10.0.0.9>']);
  assert.is(applyRoutes('sip:bob@h', []).nextHop, 'sip:bob@h');

  const invite = parseSipMessage('INVITE sip:bob@b.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKi\r\nFrom: <sip:alice@a.test>;tag=la\r\nTo: <sip:bob@b.test>\r\nCall-ID: d1\r\nCSeq: 5 INVITE\r\nContact: <sip:alice@127.0.0.1>\r\nContent-Length: 0\r\n\r\n');
  if (!invite.ok || invite.message.kind !== 'request') throw new Error('fixture');
  const res = makeResponse(invite.message, 200, undefined, 'rb');
  res.headers.add('Record-Route', '<sip:p1.test;lr>, <sip:p2.test;lr>');
  res.headers.add('Contact', '<sip:bob@10.0.0.9:5080>');
  const d = Dialog.asUac(invite.message, res, '<sip:alice@127.0.0.1>');
  assert.ok(d);
  assert.equal(d!.routeSet, ['sip:p2.test;lr', 'sip:p1.test;lr']);
  const bye = d!.createRequest('BYE');
  assert.is(bye.request.uri, 'sip:bob@10.0.0.9:5080');
  assert.equal(bye.request.headers.getAll('Route'), ['<sip:p2.test;lr>', '<sip:p1.test;lr>']);
  assert.is(bye.request.headers.get('CSeq'), '6 BYE');
  assert.match(bye.request.headers.get('To') ?? '', /tag=rb/);
  assert.is(d!.createAck(5).request.headers.get('CSeq'), '5 ACK');
  const uas = Dialog.asUas(invite.message, 'lt', '<sip:bob@127.0.0.1>', 'early');
  assert.ok(uas);
  const req2 = parseSipMessage('BYE sip:bob@b.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKj\r\nFrom: <sip:alice@a.test>;tag=la\r\nTo: <sip:bob@b.test>;tag=lt\r\nCall-ID: d1\r\nCSeq: 4 BYE\r\nContent-Length: 0\r\n\r\n');
  if (!req2.ok || req2.message.kind !== 'request') throw new Error('fixture');
  assert.not.ok(uas!.acceptRemoteCseq(req2.message), 'lower CSeq is out of order (§12.2.2)');
});

routes.run();

// ---------------------------------------------------------------- registration state machine
interface Sent { request: SipRequest; nextHop: string; done: (o: RegisterOutcome) => void }

function harness(opts: { credentials?: boolean; expires?: number } = {}) {
  const clock = new ManualClock();
  const routesP = new AccountRoutes(P);
  const sent: Sent[] = [];
  const reg = new Registration(
    { aor: 'sip:alice@ferry.test', contact: '<sip:alice@127.0.0.1:5062>', expires: opts.expires ?? 600, backoffBaseMs: 1000, backoffMaxMs: 8000, ...(opts.credentials ? { credentials: { username: 'alice', password: 'pw' } } : {}) },
    routesP, (request, nextHop, done) => sent.push({ request, nextHop, done }), clock,
  );
  const events: string[] = [];
  for (const e of ['registering', 'registered', 'refreshed', 'registration_failed', 'unregistering', 'unregistered'] as const) {
    reg.on(e, () => events.push(e));
  }
  const last = () => { const s = sent.at(-1); if (!s) throw new Error('nothing sent'); return s; };
  const reply = (status: number, extra: Array<[string, string]> = []) => {
    const s = last();
    const res = makeResponse(s.request, status, undefined, 'regtag');
    for (const [n, v] of extra) res.headers.add(n, v);
    s.done({ kind: 'response', response: res });
  };
  return { clock, routes: routesP, sent, reg, events, last, reply };
}

const routeOf = (r: SipRequest) => r.headers.getAll('Route');
const PROXY_ROUTE = ['<sip:127.0.0.1:5070;lr>'];

const registration = suite('registration state table (RFC 3261 §10.2, lessons §2)');

registration('every state lists its inputs explicitly; failure paths clear the Service-Route', () => {
  const states = Object.keys(REGISTRATION_TABLE) as RegistrationState[];
  assert.equal(states.sort(), ['failed', 'refreshing', 'registered', 'registering', 'retrying', 'unregistered', 'unregistering']);
  for (const s of states) {
    for (const [input, row] of Object.entries(REGISTRATION_TABLE[s])) {
      if (row.to === 'failed' || row.to === 'unregistered' || input === 'transportLost' || input === 'expired') {
        if (s !== 'unregistered' && s !== 'failed') assert.ok(row.do.includes('clearServiceRoute'), `${s} --${input}--> ${row.to} clears the Service-Route`);
      }
    }
  }
});

registration('401 challenge answered once; second 401 (not stale) fails; events as Janus', () => {
  const h = harness({ credentials: true });
  h.reg.register();
  h.reply(401, [['WWW-Authenticate', 'Digest realm="ferry.test", nonce="n1", qop="auth"']]);
  assert.is(h.sent.length, 2);
  assert.ok(h.last().request.headers.get('Authorization'));
  assert.is(h.last().request.headers.get('CSeq'), '2 REGISTER');
  assert.is(h.last().request.headers.get('Call-ID'), h.sent[0]?.request.headers.get('Call-ID'));
  h.reply(401, [['WWW-Authenticate', 'Digest realm="ferry.test", nonce="n2", qop="auth"']]);
  assert.is(h.sent.length, 2, 'no third attempt');
  assert.is(h.reg.state, 'failed');
  assert.equal(h.events, ['registering', 'registration_failed']);
});

registration('407 challenge → Proxy-Authorization; stale nonce retried; refresh at expires/2; unregister', () => {
  const h = harness({ credentials: true, expires: 600 });
  h.reg.register();
  h.reply(407, [['Proxy-Authenticate', 'Digest realm="p", nonce="n1"']]);
  assert.ok(h.last().request.headers.get('Proxy-Authorization'));
  h.reply(407, [['Proxy-Authenticate', 'Digest realm="p", nonce="n2", stale=true']]);
  assert.is(h.sent.length, 3, 'stale nonce: answered again');
  h.reply(200, [['Contact', '<sip:alice@127.0.0.1:5062>;expires=300'], ['Service-Route', `<${S1}>`]]);
  assert.is(h.reg.state, 'registered');
  assert.is(h.reg.expires, 300);
  h.clock.advance(150_000 - 1);
  assert.is(h.sent.length, 3);
  h.clock.advance(1);
  assert.is(h.sent.length, 4, 'refresh at expires/2');
  assert.is(h.reg.state, 'refreshing');
  h.reply(200, [['Expires', '300']]);
  assert.equal(h.routes.serviceRoute, [], '2xx without Service-Route clears it');
  h.reg.unregister();
  assert.is(h.last().request.headers.get('Expires'), '0');
  h.reply(200);
  assert.is(h.reg.state, 'unregistered');
  assert.equal(h.events, ['registering', 'registered', 'refreshed', 'unregistering', 'unregistered']);
  assert.is(h.clock.pendingTimers, 0);
});

registration('PJSIP #4066: after transport loss every REGISTER goes via P only; next INVITE Route is P then S', () => {
  const h = harness();
  h.reg.register();
  assert.equal(routeOf(h.last().request), PROXY_ROUTE);
  assert.is(h.last().nextHop, 'sip:127.0.0.1:5070;lr');
  h.reply(200, [['Service-Route', `<${S1}>`]]);
  assert.equal(h.routes.forInitialRequest(), ['sip:127.0.0.1:5070;lr', S1]);

  // Outage: the transport to P is lost.
  h.reg.transportLost();
  assert.equal(h.routes.serviceRoute, [], 'Service-Route cleared on transport loss');
  assert.is(h.routes.lastClearReason, 'transport-lost');
  assert.is(h.reg.state, 'refreshing');
  // The recovery REGISTERs fail while P is unreachable: bounded exponential backoff.
  const retryTimes: number[] = [];
  const t0 = h.clock.now();
  for (let i = 0; i < 6; i++) {
    h.last().done({ kind: 'transportError' });
    assert.is(h.reg.state, 'retrying');
    const before = h.sent.length;
    for (let guard = 0; guard < 100 && h.sent.length === before; guard++) h.clock.advance(250);
    retryTimes.push(h.clock.now() - t0);
  }
  const gaps = retryTimes.map((t, i) => t - (retryTimes[i - 1] ?? 0));
  assert.equal(gaps, [1000, 2000, 4000, 8000, 8000, 8000], 'backoff doubles and is capped');
  // P is back.
  h.reply(200, [['Service-Route', `<${S2}>`]]);
  assert.is(h.reg.state, 'registered');
  // Then a timed refresh.
  h.clock.advance(300_000);
  h.reply(200, [['Service-Route', `<${S2}>`]]);
  for (const s of h.sent) {
    assert.equal(routeOf(s.request), PROXY_ROUTE, 'REGISTER routed via the configured proxy only');
    assert.is(s.nextHop, 'sip:127.0.0.1:5070;lr');
  }
  assert.ok(h.sent.length >= 9);
  // The next initial INVITE: P first, then the current Service-Route.
  assert.equal(applyRoutes('sip:bob@ferry.test', h.routes.forInitialRequest()).routeHeaders, ['<sip:127.0.0.1:5070;lr>', `<${S2}>`]);
  assert.equal(h.events, ['registering', 'registered', 'refreshed', 'refreshed']);
});

registration('failure and expiry clear the Service-Route; a stale outcome is ignored', () => {
  const h = harness();
  h.reg.register();
  h.reply(200, [['Service-Route', `<${S1}>`]]);
  h.clock.advance(300_000); // refresh sent
  const refresh = h.last();
  h.reg.transportLost(); // the refresh in flight is given up, a retry is scheduled
  assert.is(h.reg.state, 'retrying');
  refresh.done({ kind: 'response', response: makeResponse(refresh.request, 200, undefined, 'x') });
  assert.is(h.reg.state, 'retrying', 'outcome of a given-up REGISTER ignored');
  h.clock.advance(1000);
  assert.is(h.reg.state, 'refreshing');
  h.reply(403);
  assert.is(h.reg.state, 'failed');
  assert.equal(h.routes.serviceRoute, []);
  assert.is(h.routes.lastClearReason, 'register-failed');
  assert.is(h.clock.pendingTimers, 0);

  const e = harness({ expires: 60 });
  e.reg.register();
  e.reply(200, [['Service-Route', `<${S1}>`]]);
  e.clock.advance(30_000);
  e.last().done({ kind: 'timeout' }); // refresh timed out → retrying
  assert.is(e.reg.state, 'retrying');
  e.routes.updateFromRegisterOk(ok([S1])); // (pretend something re-learned it)
  e.clock.advance(30_000);
  assert.equal(e.routes.serviceRoute, [], 'expiry clears the Service-Route');
});

registration.run();

