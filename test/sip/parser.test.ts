/** SIP parser/serializer/URI unit tests, RFC 4475-style torture cases (own messages), and a parser fuzz. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MAX_HEADERS, StreamFramer, parseSipMessage } from '../../src/sip/SipParser.js';
import { serializeSipMessage } from '../../src/sip/SipSerializer.js';
import {
  SipHeaders, formatNameAddr, parseCSeq, parseNameAddr, parseVia, splitList, type SipRequest, type SipResponse,
} from '../../src/sip/SipMessage.js';
import { formatSipUri, parseSipUri } from '../../src/sip/SipUri.js';
import { rng } from '../helpers/rng.js';

const crlf = (lines: string[], body = '') => lines.join('\r\n') + '\r\n\r\n' + body;

const BASE = [
  'INVITE sip:bob@example.com SIP/2.0',
  'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds',
  'Max-Forwards: 70',
  'To: Bob <sip:bob@example.com>',
  'From: Alice <sip:alice@example.org>;tag=1928301774',
  'Call-ID: a84b4c76e66710@pc33.example.org',
  'CSeq: 314159 INVITE',
  'Contact: <sip:alice@192.0.2.1>',
];

function request(text: string | Buffer): SipRequest {
  const r = parseSipMessage(text);
  if (!r.ok) throw new Error(`expected ok, got ${r.error.status} ${r.error.reason}`);
  if (r.message.kind !== 'request') throw new Error('expected a request');
  return r.message;
}

const parse = suite('parser: valid messages');

parse('basic INVITE with SDP body; Content-Length in bytes', () => {
  const sdp = 'v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n';
  const req = request(crlf([...BASE, 'Content-Type: application/sdp', `Content-Length: ${Buffer.byteLength(sdp)}`], sdp));
  assert.is(req.method, 'INVITE');
  assert.is(req.uri, 'sip:bob@example.com');
  assert.is(req.body.toString(), sdp);
  assert.equal(parseCSeq(req.headers.get('CSeq') ?? ''), { seq: 314159, method: 'INVITE' });
});

parse('compact header forms expand to long names', () => {
  const req = request(crlf([
    'MESSAGE sip:bob@example.com SIP/2.0',
    'v: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKa',
    't: <sip:bob@example.com>', 'f: <sip:alice@example.org>;tag=x', 'i: cid-1', 'CSeq: 1 MESSAGE',
    'm: <sip:alice@192.0.2.1;transport=tcp>', 'c: text/plain', 'k: timer, path', 'e: gzip', 's: hi',
    'o: presence', 'u: refer', 'r: <sip:carol@example.net>', 'x: 1800', 'l: 2',
  ], 'hi'));
  assert.is(req.headers.get('Call-ID'), 'cid-1');
  assert.is(req.headers.get('Content-Type'), 'text/plain');
  assert.equal(req.headers.getAll('Supported'), ['timer', 'path']);
  for (const n of ['Via', 'To', 'From', 'Contact', 'Content-Encoding', 'Subject', 'Event', 'Allow-Events', 'Refer-To', 'Session-Expires']) {
    assert.ok(req.headers.has(n), n);
  }
  assert.is(req.headers.get('i'), 'cid-1', 'lookup by compact name works too');
  assert.is(req.body.toString(), 'hi');
});

parse('multi-value headers split outside quotes and angle brackets; repeated lines combine', () => {
  const req = request(crlf([
    ...BASE,
    'Route: <sip:p1.example.com;lr>, "Proxy, Two" <sip:p2.example.com;lr>',
    'Route: <sip:p3.example.com;lr;foo="a,b">',
    'Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK2',
    'Content-Length: 0',
  ]));
  const routes = req.headers.getAll('Route');
  assert.is(routes.length, 3);
  assert.is(parseNameAddr(routes[1] ?? '')?.display, 'Proxy, Two');
  assert.is(parseNameAddr(routes[2] ?? '')?.uri, 'sip:p3.example.com;lr;foo="a,b"');
  assert.is(req.headers.getAll('Via').length, 3);
  assert.equal(splitList('a, "b,c" <sip:x>, <sip:y;p=1,2>'), ['a', '"b,c" <sip:x>', '<sip:y;p=1,2>']);
  // WWW-Authenticate is not a list header: its params hold commas.
  const h = new SipHeaders([['WWW-Authenticate', 'Digest realm="r", nonce="n"']]);
  assert.is(h.getAll('WWW-Authenticate').length, 1);
});

parse('header folding, odd whitespace around the colon, case-insensitive names', () => {
  const req = request(crlf([
    'OPTIONS sip:bob@example.com SIP/2.0',
    'VIA   :   SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKfold',
    'Subject: first part',
    '   continued here',
    '\tand here',
    'to: <sip:bob@example.com>', 'FROM: <sip:a@example.org>;tag=1', 'call-id: c', 'cseq: 2 OPTIONS', 'content-length: 0',
  ]));
  assert.is(req.headers.get('Subject'), 'first part continued here and here');
  assert.is(parseVia(req.headers.get('Via') ?? '')?.params.get('branch'), 'z9hG4bKfold');
});

parse('UTF-8 body: Content-Length counts bytes; serializer writes byte length', () => {
  const body = 'héllo wörld ✓ 日本';
  assert.ok(Buffer.byteLength(body) > body.length);
  const req = request(crlf([...BASE.slice(0, 7).map((l) => l.replace('INVITE', 'MESSAGE')), 'Content-Type: text/plain;charset=utf-8', `Content-Length: ${Buffer.byteLength(body)}`], body));
  assert.is(req.body.toString('utf8'), body);
  const wire = serializeSipMessage({ ...req, headers: req.headers.clone().set('Content-Length', '3') });
  assert.match(wire.toString('utf8'), new RegExp(`Content-Length: ${Buffer.byteLength(body)}\\r\\n`));
  const again = request(wire);
  assert.is(again.body.toString('utf8'), body);
  // A wrong (character-counted) Content-Length is detected as a short body.
  const bad = parseSipMessage(crlf([...BASE.slice(0, 7).map((l) => l.replace('INVITE', 'MESSAGE')), `Content-Length: ${body.length + 10}`], body));
  assert.not.ok(bad.ok);
});

parse('datagram: bytes after Content-Length are discarded (two messages in one packet)', () => {
  const req = request(crlf([...BASE, 'Content-Length: 4'], 'abcdINVITE sip:x@y SIP/2.0\r\n'));
  assert.is(req.body.toString(), 'abcd');
});

parse('unusual but valid: method token, escaped URI, empty reason phrase, UTF-8 reason, IPv6, params', () => {
  const odd = request(crlf([
    '!interesting-Method0123456789_*+`.%indeed\'~ sip:1_unusual.URI~(to-be!sure)&isn\'t+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn\'t-it)@example.com SIP/2.0',
    'Via: SIP/2.0/TCP [2001:db8::9:1]:5070;branch=z9hG4bK-odd;received=[2001:db8::9:255]',
    'To: "BEL:\\\u0007 NUL:\\\u0000 DEL:\\\u007f" <sip:1_unusual.URI~(to-be!sure)&isn\'t+it$/crazy?,/;;*@example.com>',
    'From: token1~` token2\'+_ token3*%!.- <sip:mundane@example.com>;fromParam\'\'~+*_!.-%="\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439";tag=_token~1\'+`*%!-.',
    'Call-ID: intmeth.word%ZK-!.*_+\'@word`~)(><:\\/"][?}{',
    'CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed\'~',
    'Max-Forwards: 255', 'Content-Length: 0',
  ].map((l) => l.replace(/\u0000/g, '0'))));
  assert.is(odd.method, "!interesting-Method0123456789_*+`.%indeed'~");
  const uri = parseSipUri(odd.uri);
  assert.ok(uri);
  assert.is(uri?.password, "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)");
  assert.is(parseVia(odd.headers.get('Via') ?? '')?.host, '2001:db8::9:1');
  const esc = request(crlf(['INVITE sip:sips%3Auser%40example.com@example.net;p=%41 SIP/2.0', ...BASE.slice(1), 'Content-Length: 0']));
  assert.is(parseSipUri(esc.uri)?.user, 'sips%3Auser%40example.com');
  const noReason = parseSipMessage(crlf(['SIP/2.0 100 ', ...BASE.slice(1, 7), 'Content-Length: 0']));
  assert.ok(noReason.ok && noReason.message.kind === 'response' && noReason.message.reason === '');
  const utfReason = parseSipMessage(crlf(['SIP/2.0 200 Всё хорошо', ...BASE.slice(1, 7), 'Content-Length: 0']));
  assert.ok(utfReason.ok && utfReason.message.kind === 'response' && utfReason.message.reason === 'Всё хорошо');
});

parse('leading CRLFs (keepalives) before the start line are ignored (§7.5)', () => {
  assert.is(request('\r\n\r\n' + crlf([...BASE, 'Content-Length: 0'])).method, 'INVITE');
});

parse.run();

const invalid = suite('parser: invalid messages (typed errors, partial request for 400)');

function expectError(text: string, status: number, partial: boolean, why: string) {
  const r = parseSipMessage(text);
  assert.not.ok(r.ok, `${why}: should fail`);
  if (r.ok) return;
  assert.is(r.error.status, status, `${why}: status (${r.error.reason})`);
  assert.is(!!r.error.partialRequest, partial, `${why}: partial`);
}

invalid('torture-style broken requests', () => {
  const noCl = BASE.filter((l) => !l.startsWith('Content-Length'));
  expectError(crlf([...noCl, 'Content-Length: 9999'], 'short'), 400, true, 'Content-Length larger than the body');
  expectError(crlf([...noCl, 'Content-Length: -5'], ''), 400, true, 'negative Content-Length');
  expectError(crlf([...noCl, 'Content-Length: 99999999999999999999'], ''), 400, true, 'huge Content-Length');
  expectError(crlf(['INVITE <sip:bob@example.com> SIP/2.0', ...BASE.slice(1), 'Content-Length: 0']), 400, true, 'angle brackets around the Request-URI');
  expectError(crlf(['INVITE sip:bob@example.com;lr SIP/2.0 extra', ...BASE.slice(1), 'Content-Length: 0']), 400, false, 'extra token: not a request line');
  expectError(crlf(['INVITE sip:bob @example.com SIP/2.0', ...BASE.slice(1), 'Content-Length: 0']), 400, false, 'whitespace inside the Request-URI');
  expectError(crlf(['INVITE sip:bob@example.com SIP/7.0', ...BASE.slice(1), 'Content-Length: 0']), 505, true, 'unknown SIP version');
  expectError(crlf([...BASE.map((l) => l.replace('314159 INVITE', '314159 OPTIONS')), 'Content-Length: 0']), 400, true, 'CSeq method mismatch');
  expectError(crlf([...BASE.map((l) => l.replace('To: Bob <sip:bob@example.com>', 'To: "Bob <sip:bob@example.com>')), 'Content-Length: 0']), 400, true, 'unterminated quote in To');
  expectError(crlf([...BASE, 'Call-ID: second', 'Content-Length: 0']), 400, true, 'two Call-IDs');
  expectError(crlf([...BASE.filter((l) => !l.startsWith('Call-ID')), 'Content-Length: 0']), 400, false, 'missing Call-ID');
  expectError(crlf([...BASE.filter((l) => !l.startsWith('Via')), 'Content-Length: 0']), 400, false, 'missing Via');
  expectError(crlf([...BASE, 'Max-Forwards: many', 'Content-Length: 0']), 400, true, 'bad Max-Forwards');
  expectError(crlf([...BASE, 'Bad Header: x']), 400, false, 'space in a header name');
  expectError(crlf([...BASE.map((l) => l.replace('CSeq: 314159', 'CSeq: 9999999999')), 'Content-Length: 0']), 400, true, 'CSeq over 2**31');
  expectError('INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n', 400, false, 'no end of headers');
  expectError(crlf([...BASE.slice(0, 1), ...Array.from({ length: MAX_HEADERS + 1 }, (_, i) => `X-H${i}: v`)]), 400, false, 'too many headers');
  expectError('X'.repeat(70_000), 513, false, 'over the size bound');
  expectError(crlf(['SIP/2.0 2000 OK', ...BASE.slice(1), 'Content-Length: 0']), 400, false, 'bad status code');
});

invalid.run();

const uri = suite('SIP URIs, name-addr, Via');

uri('parse/format round trip with user, password, port, params and headers', () => {
  const text = 'sips:alice:secret@example.com:5071;transport=tcp;lr?subject=hi&priority=urgent';
  const u = parseSipUri(text);
  assert.ok(u);
  assert.is(u?.scheme, 'sips');
  assert.is(u?.user, 'alice');
  assert.is(u?.password, 'secret');
  assert.is(u?.port, 5071);
  assert.is(u?.params.get('transport'), 'tcp');
  assert.is(u?.params.get('lr'), null);
  assert.is(u?.headers.get('priority'), 'urgent');
  assert.is(formatSipUri(u!), text);
  assert.is(parseSipUri('sip:[2001:db8::1]:5060')?.host, '2001:db8::1');
  assert.is(parseSipUri('sip:127.0.0.1')?.port, undefined);
  for (const bad of ['tel:+1', 'sip:', 'sip:a@', 'sip:host:99999', 'sip:ho st', 'sip:a@b;;', 'sip:999.1.1.1']) {
    assert.is(parseSipUri(bad), null, bad);
  }
});

uri('addr-spec params belong to the header (§20.10); name-addr keeps URI params', () => {
  const a = parseNameAddr('sip:alice@example.com;tag=abc');
  assert.is(a?.uri, 'sip:alice@example.com');
  assert.is(a?.params.get('tag'), 'abc');
  const b = parseNameAddr('"Alice \\"A\\"" <sip:alice@example.com;transport=tcp>;tag=1;expires=60');
  assert.is(b?.display, 'Alice "A"');
  assert.is(b?.uri, 'sip:alice@example.com;transport=tcp');
  assert.is(b?.params.get('expires'), '60');
  assert.is(parseNameAddr(formatNameAddr(b!))?.display, 'Alice "A"');
  assert.is(parseNameAddr('<sip:x@y'), null);
});

uri('Via with rport and received (RFC 3581)', () => {
  const v = parseVia('SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bKx;rport;received=192.0.2.7');
  assert.is(v?.transport, 'UDP');
  assert.is(v?.port, 5062);
  assert.is(v?.params.get('rport'), null);
  assert.is(v?.params.get('received'), '192.0.2.7');
  assert.is(parseVia('SIP/2.0/UDP host;rport=abc'), null);
  assert.is(parseVia('garbage'), null);
});

uri('serializer: round trip keeps order and writes long names', () => {
  const res: SipResponse = { kind: 'response', status: 180, reason: 'Ringing', headers: new SipHeaders([['v', 'SIP/2.0/UDP h;branch=z9hG4bK1'], ['f', '<sip:a@b>;tag=1'], ['t', '<sip:c@d>;tag=2'], ['i', 'id'], ['CSeq', '1 INVITE']]), body: Buffer.alloc(0) };
  const text = serializeSipMessage(res).toString();
  assert.ok(text.startsWith('SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: '));
  assert.ok(text.endsWith('Content-Length: 0\r\n\r\n'));
  const injected = serializeSipMessage({ ...res, headers: res.headers.clone().add('Subject', 'a\r\nEvil: 1') }).toString();
  assert.not.ok(/\r\nEvil:/.test(injected), 'no header injection through a value');
});

uri.run();

const framing = suite('stream framing (§18.3)');

framing('frames split and coalesced messages by Content-Length, skips keepalive CRLFs', () => {
  const one = crlf([...BASE, 'Content-Length: 5'], 'hello');
  const two = crlf([...BASE, 'l: 3'], 'abc');
  const all = Buffer.from('\r\n\r\n' + one + two, 'utf8');
  const f = new StreamFramer();
  const frames: Buffer[] = [];
  for (let i = 0; i < all.length; i += 7) frames.push(...f.push(all.subarray(i, i + 7)).frames);
  assert.is(frames.length, 2);
  assert.is(request(frames[0]!).body.toString(), 'hello');
  assert.is(request(frames[1]!).body.toString(), 'abc');
  const g = new StreamFramer();
  assert.ok(g.push(Buffer.from(crlf(BASE))).error, 'missing Content-Length on a stream breaks framing');
  assert.ok(new StreamFramer().push(Buffer.alloc(70_000, 0x41)).error, 'oversized header section');
});

framing.run();

const fuzz = suite('fuzz');


fuzz('>= 10^4 random and mutated messages never throw; valid results stay well-formed', () => {
  const rand = rng(0x5eed);
  const seeds = [
    Buffer.from(crlf([...BASE, 'Content-Type: application/sdp', 'Content-Length: 13'], 'v=0\r\ns=x\r\nt=0')),
    Buffer.from(crlf(['SIP/2.0 200 OK', ...BASE.slice(1), 'Record-Route: <sip:p;lr>, <sip:q;lr>', 'l: 0'])),
    Buffer.from(crlf(['REGISTER sip:example.com SIP/2.0', 'v: SIP/2.0/TCP h:1;branch=z9hG4bKr;rport', 'f: <sip:a@example.com>;tag=1', 't: <sip:a@example.com>', 'i: r1', 'CSeq: 1 REGISTER', 'm: "A" <sip:a@h:1>;expires=60', 'Authorization: Digest username="a", realm="r", nonce="n", uri="sip:example.com", response="0"', 'l: 0'])),
  ];
  const alphabet = Buffer.from(' \t\r\n:;,<>"\\@=%/[]?&0123456789abcZ\u00ff\u0000', 'latin1');
  let ok = 0;
  let failed = 0;
  let partial = 0;
  for (let i = 0; i < 12_000; i++) {
    let buf: Buffer;
    if (i % 6 === 0) {
      buf = Buffer.alloc(Math.floor(rand() * 400));
      for (let j = 0; j < buf.length; j++) buf[j] = Math.floor(rand() * 256);
    } else {
      buf = Buffer.from(seeds[i % seeds.length]!);
      const edits = 1 + Math.floor(rand() * 6);
      for (let e = 0; e < edits; e++) {
        const pos = Math.floor(rand() * buf.length);
        const op = rand();
        if (op < 0.4) buf[pos] = alphabet[Math.floor(rand() * alphabet.length)]!;
        else if (op < 0.6) buf = Buffer.concat([buf.subarray(0, pos), buf.subarray(Math.min(buf.length, pos + 1 + Math.floor(rand() * 20)))]);
        else if (op < 0.8) buf = Buffer.concat([buf.subarray(0, pos), Buffer.from(buf.subarray(Math.floor(rand() * buf.length)).subarray(0, 30)), buf.subarray(pos)]);
        else buf = buf.subarray(0, pos);
      }
    }
    const r = parseSipMessage(buf);
    if (r.ok) {
      ok++;
      // Anything accepted must serialise and re-parse to the same kind.
      const again = parseSipMessage(serializeSipMessage(r.message));
      assert.ok(again.ok, 'accepted message re-parses after serialisation');
    } else {
      failed++;
      if (r.error.partialRequest) partial++;
    }
  }
  assert.ok(ok > 100 && failed > 1000 && partial > 100, `a mix of outcomes: ok=${ok} failed=${failed} partial=${partial}`);
});

fuzz.run();
