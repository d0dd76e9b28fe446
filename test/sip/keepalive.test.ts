/**
 * Keep-alives (issue 16: registrations behind NAT). While registered, the UA
 * keeps the path to its registrar open: an OPTIONS along the REGISTER's path on
 * UDP (no answer re-registers), a double-CRLF ping on TCP (RFC 5626 §4.4.1).
 * The other way: a keep-alive datagram (line ends only) is absorbed without an
 * answer, a double CRLF on a connection gets a CRLF pong.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, createServer, type Socket } from 'node:net';

import { makeResponse, type SipRequest } from '../../src/sip/SipMessage.js';
import { parseSipMessage } from '../../src/sip/SipParser.js';
import { serializeSipMessage } from '../../src/sip/SipSerializer.js';
import { UserAgent } from '../../src/sip/UserAgent.js';
import { rawUdp, until } from './helpers.js';

const test = suite('SIP keep-alives');

function requestsIn(datagrams: Buffer[]): SipRequest[] {
  return datagrams.flatMap((d) => {
    const p = parseSipMessage(d);
    return p.ok && p.message.kind === 'request' ? [p.message] : [];
  });
}

test('UDP: OPTIONS to the registrar while registered; when they go unanswered, a new REGISTER', async () => {
  const registrar = await rawUdp();
  let answerOptions = true;
  registrar.socket.on('message', (data, rinfo) => {
    const p = parseSipMessage(data);
    if (!p.ok || p.message.kind !== 'request') return;
    if (p.message.method === 'OPTIONS' && !answerOptions) return;
    const res = makeResponse(p.message, 200, undefined, 'reg');
    if (p.message.method === 'REGISTER') res.headers.add('Contact', `${p.message.headers.get('Contact')};expires=3600`);
    registrar.socket.send(serializeSipMessage(res), rinfo.port, rinfo.address);
  });
  const ua = await UserAgent.create({ host: '127.0.0.1', user: 'alice', keepaliveIntervalMs: 50, timers: { t1: 10 } });
  try {
    ua.register({ aor: 'sip:alice@127.0.0.1', registrar: `sip:127.0.0.1:${registrar.port}`, expires: 3600 });
    await until(() => ua.registration?.state === 'registered', 3000, 'registered');
    await until(() => requestsIn(registrar.received).filter((r) => r.method === 'OPTIONS').length >= 2, 3000, 'two OPTIONS keep-alives');
    const options = requestsIn(registrar.received).find((r) => r.method === 'OPTIONS')!;
    assert.is(options.uri, `sip:127.0.0.1:${registrar.port}`, 'along the REGISTER\'s path, to the registrar');
    assert.match(options.headers.get('Via') ?? '', /;rport/, 'rport asked for (RFC 3581), so the NAT\'s mapping comes back');
    const registers = () => requestsIn(registrar.received).filter((r) => r.method === 'REGISTER').length;
    const before = registers();
    answerOptions = false;
    await until(() => registers() > before, 5000, 'a new REGISTER once the keep-alives went unanswered');
  } finally {
    await ua.close();
    registrar.close();
  }
});

test('TCP: double-CRLF pings on the registration\'s connection', async () => {
  const pings: number[] = [];
  let conn: Socket | undefined;
  const server = createServer((sock) => {
    conn = sock;
    let buffer = '';
    sock.on('data', (chunk) => {
      buffer += chunk.toString('latin1');
      for (let guard = 0; guard < 100; guard++) {
        if (buffer.startsWith('\r\n\r\n')) {
          pings.push(Date.now());
          buffer = buffer.slice(4);
          sock.write('\r\n');
          continue;
        }
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        const p = parseSipMessage(Buffer.from(buffer.slice(0, end + 4), 'latin1'));
        buffer = buffer.slice(end + 4);
        if (!p.ok || p.message.kind !== 'request') continue;
        const res = makeResponse(p.message, 200, undefined, 'reg');
        res.headers.add('Contact', `${p.message.headers.get('Contact')};expires=3600`);
        sock.write(serializeSipMessage(res));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  const ua = await UserAgent.create({ host: '127.0.0.1', udpPort: null, tcpPort: 0, user: 'alice', keepaliveIntervalMs: 50 });
  try {
    ua.register({ aor: 'sip:alice@127.0.0.1', registrar: `sip:127.0.0.1:${port};transport=tcp`, expires: 3600, transport: 'tcp' });
    await until(() => ua.registration?.state === 'registered', 3000, 'registered over TCP');
    await until(() => pings.length >= 2, 3000, 'two CRLF pings');
    assert.is(ua.keepalivesSent >= 2, true);
    assert.is(ua.tcp!.connectionCount, 1, 'on the one connection the REGISTER used');
  } finally {
    await ua.close();
    conn?.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test('incoming keep-alives: a CRLF datagram is absorbed without an answer, a double CRLF on TCP gets a CRLF pong', async () => {
  const ua = await UserAgent.create({ host: '127.0.0.1', tcpPort: 0, user: 'bob' });
  const raw = await rawUdp();
  let parseErrors = 0;
  ua.on('parseError', () => parseErrors++);
  try {
    raw.send('\r\n\r\n', ua.udp!.local.port);
    raw.send('\r\n', ua.udp!.local.port);
    const sock = connect(ua.tcp!.local.port, '127.0.0.1');
    const got: Buffer[] = [];
    sock.on('data', (d) => got.push(d));
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.write('\r\n\r\n');
    await until(() => Buffer.concat(got).toString() === '\r\n', 3000, 'the CRLF pong');
    await new Promise((r) => setTimeout(r, 100));
    assert.is(raw.received.length, 0, 'no answer to a keep-alive datagram');
    assert.is(parseErrors, 0, 'and no parse error');
    sock.destroy();
  } finally {
    raw.close();
    await ua.close();
  }
});

test.run();
