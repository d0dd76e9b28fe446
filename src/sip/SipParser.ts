/**
 * SIP message parser (RFC 3261 §7, grammar §25) and the stream framer for
 * connection-oriented transports (§18.3).
 *
 * Never throws: every input, however broken, yields either a message or a
 * typed `SipParseError`. When enough of a broken *request* was understood to
 * address a response (§8.2: Via, From, To, Call-ID, CSeq present), the error
 * carries that partial request so the UA can answer 400 instead of dropping.
 * Sizes are bounded so a peer cannot make the parser allocate without limit.
 */
import { parseSipUri } from './SipUri.js';
import {
  SipHeaders, canonicalHeaderName, isToken, parseCSeq, parseNameAddr, parseVia,
  type SipMessage, type SipRequest,
} from './SipMessage.js';

export const MAX_MESSAGE_BYTES = 64 * 1024;
export const MAX_HEADERS = 256;

export interface SipParseError {
  /** Status the UA should answer a request with: 400, 505 (version) or 513 (too large). */
  status: 400 | 505 | 513;
  reason: string;
  /** Present when the start line and the headers needed to address a response were understood. */
  partialRequest?: SipRequest;
}

export type SipParseResult = { ok: true; message: SipMessage } | { ok: false; error: SipParseError };

const fail = (status: SipParseError['status'], reason: string, partialRequest?: SipRequest): SipParseResult => {
  const error: SipParseError = { status, reason };
  if (partialRequest) error.partialRequest = partialRequest;
  return { ok: false, error };
};

/** Index of the blank line ending the header section and the length of its terminator. */
function findHeaderEnd(buf: Buffer, from: number): { index: number; length: number } | null {
  const crlf = buf.indexOf('\r\n\r\n', from, 'latin1');
  const lf = buf.indexOf('\n\n', from, 'latin1');
  if (crlf < 0 && lf < 0) return null;
  // A bare-LF message (tolerated, common in hand-written tests) has no \r\n\r\n before its \n\n.
  if (crlf >= 0 && (lf < 0 || crlf < lf)) return { index: crlf, length: 4 };
  return { index: lf, length: 2 };
}

function skipLeadingCrlf(buf: Buffer): number {
  let i = 0;
  // §7.5: CRLFs before the start line are ignored (stream keepalives).
  while (i < buf.length && (buf[i] === 0x0d || buf[i] === 0x0a)) i++;
  return i;
}

/** Parses one complete message (a UDP datagram, or a frame cut by `StreamFramer`). */
export function parseSipMessage(input: Buffer | string): SipParseResult {
  try {
    return parseUnsafe(typeof input === 'string' ? Buffer.from(input, 'utf8') : input);
  } catch (err) {
    // Defence in depth: a parser bug must not become an uncaught exception on network input.
    return fail(400, `parser error: ${String(err)}`);
  }
}

function parseUnsafe(buf: Buffer): SipParseResult {
  if (buf.length > MAX_MESSAGE_BYTES) return fail(513, 'Message Too Large');
  const start = skipLeadingCrlf(buf);
  const end = findHeaderEnd(buf, start);
  if (!end) return fail(400, 'no end of headers');
  const head = buf.toString('utf8', start, end.index);
  if (head.includes('\0')) return fail(400, 'NUL in header section');
  const rawLines = head.split(/\r?\n/);

  // Unfold continuation lines (§7.3.1: a line starting with SP/HTAB continues the previous one).
  const lines: string[] = [];
  for (const line of rawLines) {
    if ((line.startsWith(' ') || line.startsWith('\t')) && lines.length > 1) {
      lines[lines.length - 1] += ' ' + line.trim();
    } else if (line.startsWith(' ') || line.startsWith('\t')) {
      return fail(400, 'continuation line without a header');
    } else lines.push(line);
  }
  const startLine = lines[0] ?? '';
  if (lines.length - 1 > MAX_HEADERS) return fail(400, 'too many headers');

  const headers = new SipHeaders();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const colon = line.indexOf(':');
    if (colon <= 0) return fail(400, 'header line without a colon');
    const name = line.slice(0, colon).replace(/[ \t]+$/, '');
    if (!isToken(name)) return fail(400, `bad header name ${JSON.stringify(name.slice(0, 40))}`);
    headers.add(name, line.slice(colon + 1).trim());
  }

  // Content-Length counts bytes of the body (§20.14), not characters.
  const bodyStart = end.index + end.length;
  const available = buf.length - bodyStart;
  const clValues = headers.getAll('Content-Length');
  let contentLength: number | undefined;
  let bodyError: string | undefined;
  for (const v of clValues) {
    if (!/^\d{1,10}$/.test(v)) { bodyError = 'malformed Content-Length'; break; }
    const n = Number(v);
    if (contentLength !== undefined && contentLength !== n) { bodyError = 'conflicting Content-Length'; break; }
    contentLength = n;
  }
  if (!bodyError && contentLength !== undefined && contentLength > available) bodyError = 'body shorter than Content-Length';
  // §18.3: over a datagram, bytes beyond Content-Length are discarded; without the header the rest is the body.
  const body = Buffer.from(buf.subarray(bodyStart, bodyStart + (bodyError ? 0 : contentLength ?? available)));

  const sp1 = startLine.indexOf(' ');
  if (startLine.startsWith('SIP/')) return parseResponse(startLine, headers, body, bodyError);
  if (sp1 <= 0) return fail(400, 'malformed start line');
  return parseRequest(startLine, headers, body, bodyError);
}

function parseResponse(startLine: string, headers: SipHeaders, body: Buffer, bodyError?: string): SipParseResult {
  const m = /^SIP\/2\.0 ([1-6]\d\d) (.*)$/.exec(startLine);
  if (!m) return fail(400, 'malformed status line');
  if (bodyError) return fail(400, bodyError);
  if (!parseVia(headers.getAll('Via')[0] ?? '')) return fail(400, 'missing or malformed Via');
  const cseq = parseCSeq(headers.get('CSeq') ?? '');
  if (!cseq) return fail(400, 'missing or malformed CSeq');
  if (!headers.get('Call-ID')) return fail(400, 'missing Call-ID');
  if (!parseNameAddr(headers.get('From') ?? '') || !parseNameAddr(headers.get('To') ?? '')) return fail(400, 'missing or malformed From/To');
  return { ok: true, message: { kind: 'response', status: Number(m[1]), reason: m[2] ?? '', headers, body } };
}

function parseRequest(startLine: string, headers: SipHeaders, body: Buffer, bodyError?: string): SipParseResult {
  // Request-Line = Method SP Request-URI SP SIP-Version (§7.1): exactly single spaces, no LWS in the URI.
  const parts = startLine.split(' ');
  if (parts.length !== 3) return fail(400, 'malformed request line');
  const [method = '', uri = '', version = ''] = parts;
  if (!isToken(method)) return fail(400, 'bad method');

  const partial: SipRequest = { kind: 'request', method, uri, headers, body };
  // Only offer a partial request if a response could be routed back and matched (§8.2.6).
  const addressable =
    parseVia(headers.getAll('Via')[0] ?? '') !== null &&
    headers.get('Call-ID') !== undefined && headers.get('CSeq') !== undefined &&
    headers.get('From') !== undefined && headers.get('To') !== undefined;
  const bad = (status: SipParseError['status'], reason: string) => fail(status, reason, addressable && method !== 'ACK' ? partial : undefined);

  if (!/^SIP\/\d+\.\d+$/i.test(version)) return bad(400, 'malformed SIP version');
  if (version.toUpperCase() !== 'SIP/2.0') return bad(505, 'Version Not Supported');
  if (!/^[A-Za-z][A-Za-z0-9+\-.]*:[^\s]+$/.test(uri)) return bad(400, 'malformed Request-URI');
  const scheme = uri.slice(0, uri.indexOf(':')).toLowerCase();
  if ((scheme === 'sip' || scheme === 'sips') && !parseSipUri(uri)) return bad(400, 'malformed SIP Request-URI');
  if (bodyError) return bad(400, bodyError);
  if (!addressable) return fail(400, 'missing Via, From, To, Call-ID or CSeq');

  const cseq = parseCSeq(headers.get('CSeq') ?? '');
  if (!cseq) return bad(400, 'malformed CSeq');
  // §8.2: the CSeq method must match the request method.
  if (cseq.method !== method) return bad(400, 'CSeq method does not match the request');
  if (headers.getAll('Call-ID').length !== 1 || headers.getAll('From').length !== 1 || headers.getAll('To').length !== 1 || headers.getAll('CSeq').length !== 1) {
    return bad(400, 'duplicated single-valued header');
  }
  if (!parseNameAddr(headers.get('From') ?? '') || !parseNameAddr(headers.get('To') ?? '')) return bad(400, 'malformed From/To');
  for (const via of headers.getAll('Via')) if (!parseVia(via)) return bad(400, 'malformed Via');
  const mf = headers.getAll('Max-Forwards');
  if (mf.length > 1 || (mf[0] !== undefined && !/^\d{1,3}$/.test(mf[0]))) return bad(400, 'malformed Max-Forwards');
  for (const c of headers.getAll('Contact')) if (!parseNameAddr(c)) return bad(400, 'malformed Contact');
  return { ok: true, message: { kind: 'request', method, uri, headers, body } };
}

/**
 * Frames a byte stream into messages by Content-Length (§18.3). A header
 * section above the size bound, or a missing/bad Content-Length (mandatory on
 * streams), is unrecoverable: the framer reports `error` and the transport
 * must close the connection, since the message boundary is lost.
 */
export class StreamFramer {
  private buffer: Buffer = Buffer.alloc(0);
  private broken = false;

  /** Between messages: nothing of a next one has arrived. */
  get idle(): boolean {
    return this.buffer.length === 0 && !this.broken;
  }

  /** Feeds bytes; returns complete frames, or an error once framing is lost. */
  push(chunk: Buffer): { frames: Buffer[]; error?: string } {
    const frames: Buffer[] = [];
    if (this.broken) return { frames, error: 'stream already broken' };
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    for (let guard = 0; guard < 10_000; guard++) {
      const skip = skipLeadingCrlf(this.buffer);
      if (skip > 0) this.buffer = this.buffer.subarray(skip);
      if (this.buffer.length === 0) break;
      const end = findHeaderEnd(this.buffer, 0);
      if (!end) {
        if (this.buffer.length > MAX_MESSAGE_BYTES) return this.breakWith(frames, 'header section too large');
        break;
      }
      const head = this.buffer.toString('latin1', 0, end.index);
      const m = /(?:^|\n)(?:content-length|l)[ \t]*:[ \t]*(\d{1,10})[ \t]*\r?(?:\n|$)/i.exec(head);
      if (!m) return this.breakWith(frames, 'missing Content-Length on a stream');
      const total = end.index + end.length + Number(m[1]);
      if (total > MAX_MESSAGE_BYTES) return this.breakWith(frames, 'message too large');
      if (this.buffer.length < total) break;
      frames.push(Buffer.from(this.buffer.subarray(0, total)));
      this.buffer = this.buffer.subarray(total);
    }
    return { frames };
  }

  private breakWith(frames: Buffer[], error: string): { frames: Buffer[]; error: string } {
    this.broken = true;
    this.buffer = Buffer.alloc(0);
    return { frames, error };
  }
}

/** Header name as it would be looked up (exported for tests of compact forms). */
export { canonicalHeaderName };
