/**
 * The UA's transport layer (RFC 3261 §18) over its UDP and/or TCP transport:
 * resolves next hops, adds our Via to what we send and stamps `received` /
 * `rport` on what arrives, answers what cannot be parsed, and remembers the
 * flow each request came from or went to, so that responses go back the same
 * way (§18.2.2) and transactions over a lost connection fail with it
 * (§17.1.4, §17.2.4). Parsed messages and what passes on the wire go to its
 * user, the UserAgent (`TransportUser`).
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { formatVia, makeResponse, newBranch, newTag, topVia, type SipMessage, type SipRequest, type SipResponse } from './SipMessage.js';
import { parseSipMessage, type SipParseError } from './SipParser.js';
import { serializeSipMessage } from './SipSerializer.js';
import type { SipEndpoint, SipFlow, SipTransport, TcpTransport, TlsTransport, TransportProtocol, UdpTransport } from './SipTransport.js';
import { parseSipUri, uriDestination } from './SipUri.js';
import type { ClientTransactionUser, ServerTransaction, ServerTransactionUser, TransactionLayer } from './Transactions.js';

/** What the transport layer hands up. */
export interface TransportUser {
  receiveRequest(req: SipRequest): void;
  receiveResponse(res: SipResponse): void;
  /** A connection (or the whole transport, `remote` undefined) failed; its transactions already did. */
  transportLost(): void;
  /** Wire taps, for tests and logs. */
  sent(msg: SipMessage, to: SipEndpoint, transport: TransportProtocol): void;
  received(msg: SipMessage, from: SipEndpoint, transport: TransportProtocol): void;
  parseError(error: SipParseError, from: SipEndpoint, answered: boolean): void;
}

export class TransportLayer {
  /** Where each request came from or was sent to. */
  private readonly flows = new WeakMap<SipRequest, SipFlow>();
  private closed = false;
  /** Keep-alive datagrams (line ends only) received and absorbed. */
  keepalivesReceived = 0;

  constructor(
    private readonly udp: UdpTransport | undefined,
    private readonly tcp: TcpTransport | undefined,
    private readonly tls: TlsTransport | undefined,
    private readonly transactions: TransactionLayer,
    /** Our User-Agent / Server header value, if any. */
    private readonly userAgent: string | undefined,
    private readonly user: TransportUser,
  ) {
    for (const t of [udp, tcp, tls]) {
      if (!t) continue;
      t.on('message', (data, from) => this.receive(data, { transport: t, remote: from }));
      t.on('loss', (info) => this.onLoss(t, info.remote));
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  transportFor(protocol: TransportProtocol): SipTransport {
    // TLS is never replaced by a plain transport: a sips/transport=tls destination without one fails.
    const t = protocol === 'tls' ? this.tls : protocol === 'tcp' ? this.tcp ?? this.udp ?? this.tls : this.udp ?? this.tcp ?? this.tls;
    if (!t) throw new Error(`no ${protocol} transport`);
    return t;
  }

  private transportOrNull(protocol: TransportProtocol): SipTransport | null {
    try {
      return this.transportFor(protocol);
    } catch {
      return null;
    }
  }

  /** The flow a request came from or was sent to (known once it was sent). */
  flowOf(req: SipRequest): SipFlow | undefined {
    return this.flows.get(req);
  }

  reliableFor(req: SipRequest): boolean {
    return this.flows.get(req)?.transport.reliable ?? false;
  }

  private onLoss(t: SipTransport, remote: SipEndpoint | undefined): void {
    if (this.closed) return;
    // §17.1.4 / §17.2.4: transactions over a lost TCP connection fail now rather than by timeout.
    if (t.reliable && remote) {
      this.transactions.failAll((tx) => {
        const src = this.flows.get(tx.request);
        return !!src && src.transport === t && src.remote.host === remote.host && src.remote.port === remote.port;
      });
    }
    this.user.transportLost();
  }

  // ------------------------------------------------------------------ sending
  private async resolve(uri: string, fallback: TransportProtocol): Promise<{ endpoint: SipEndpoint; protocol: TransportProtocol } | null> {
    const parsed = parseSipUri(uri);
    if (!parsed) return null;
    const dest = uriDestination(parsed);
    const protocol = parsed.params.has('transport') || parsed.scheme === 'sips' ? dest.transport : fallback;
    let host = dest.host;
    if (isIP(host) === 0) {
      try {
        host = (await lookup(host, { family: 4 })).address;
      } catch {
        return null;
      }
    }
    return { endpoint: { host, port: dest.port }, protocol };
  }

  private transmit(msg: SipMessage, source: SipFlow): void {
    if (this.closed) return;
    source.transport.send(serializeSipMessage(msg), source.remote);
    this.user.sent(msg, source.remote, source.transport.protocol);
  }

  /**
   * Sends a request in a new client transaction (§8.1.2, §18.1.1): adds Via
   * (new branch, rport per RFC 3581), Max-Forwards and User-Agent, resolves the
   * next hop and reports through `tu`. Failure to resolve is a transport error.
   */
  sendRequest(req: SipRequest, nextHop: string, fallback: TransportProtocol, tu: ClientTransactionUser, branch?: string): void {
    void this.resolve(nextHop, fallback).then((dest) => {
      if (this.closed) return;
      const transport = dest ? this.transportOrNull(dest.protocol) : null;
      if (!dest || !transport) return tu.onTransportError();
      const source: SipFlow = { transport, remote: dest.endpoint };
      this.prepare(req, transport, branch);
      this.flows.set(req, source);
      this.transactions.sendRequest(req, (m) => this.transmit(m, source), transport.reliable, tu);
    });
  }

  private prepare(req: SipRequest, transport: SipTransport, branch?: string): void {
    const host = transport.local.host.includes(':') ? `[${transport.local.host}]` : transport.local.host;
    req.headers.remove('Via');
    req.headers.prepend('Via', `SIP/2.0/${transport.protocol.toUpperCase()} ${host}:${transport.local.port};branch=${branch ?? newBranch()};rport`);
    if (!req.headers.has('Max-Forwards')) req.headers.add('Max-Forwards', '70');
    if (this.userAgent && !req.headers.has('User-Agent')) req.headers.add('User-Agent', this.userAgent);
  }

  /** ACK for a 2xx is sent outside any transaction (§13.2.2.4, §17.1.1.3). */
  sendAck(ack: { request: SipRequest; nextHop: string }, fallback: TransportProtocol): void {
    void this.resolve(ack.nextHop, fallback).then((dest) => {
      const transport = dest && !this.closed ? this.transportOrNull(dest.protocol) : null;
      if (!dest || !transport) return;
      if (!ack.request.headers.has('Via')) this.prepare(ack.request, transport);
      this.transmit(ack.request, { transport, remote: dest.endpoint });
    });
  }

  /** §18.2.2: responses go back over the request's connection, or to its source address/port (rport). */
  respond(req: SipRequest, res: SipResponse): void {
    const src = this.flows.get(req);
    if (!src) return;
    if (this.userAgent && !res.headers.has('Server')) res.headers.add('Server', this.userAgent);
    this.transmit(res, src);
  }

  /** A server transaction for `req`, answering back where it came from (§18.2.2). */
  serverTransaction(req: SipRequest, tu: ServerTransactionUser = { onFailure: () => {} }): ServerTransaction {
    return this.transactions.createServer(req, (m) => this.respond(req, m), this.reliableFor(req), tu);
  }

  // ------------------------------------------------------------------ receiving
  private receive(data: Buffer, source: SipFlow): void {
    if (this.closed) return;
    // A datagram of line ends only is a peer's keep-alive (RFC 5626 §4.4.1 style, common on UDP): no reply.
    if (data.length <= 4 && /^[\r\n]+$/.test(data.toString('latin1'))) {
      this.keepalivesReceived++;
      return;
    }
    const parsed = parseSipMessage(data);
    if (!parsed.ok) {
      const partial = parsed.error.partialRequest;
      // Answer 400 (or 505/513) when enough was understood to address a response (§8.2, RFC 4475 §3.1.2).
      if (partial) {
        this.flows.set(partial, source);
        this.stampVia(partial, source);
        const status = parsed.error.status;
        this.respond(partial, makeResponse(partial, status, status === 400 ? `Bad Request (${parsed.error.reason})` : undefined, newTag()));
      }
      this.user.parseError(parsed.error, source.remote, !!partial);
      return;
    }
    const msg = parsed.message;
    this.user.received(msg, source.remote, source.transport.protocol);
    if (msg.kind === 'response') return this.user.receiveResponse(msg);
    this.flows.set(msg, source);
    this.stampVia(msg, source);
    this.user.receiveRequest(msg);
  }

  /** RFC 3261 §18.2.1 `received`, RFC 3581 §4 `rport`: record where the request really came from. */
  private stampVia(req: SipRequest, source: SipFlow): void {
    const via = topVia(req);
    if (!via) return;
    if (via.host !== source.remote.host) via.params.set('received', source.remote.host);
    if (via.params.has('rport')) {
      via.params.set('rport', String(source.remote.port));
      if (!via.params.has('received')) via.params.set('received', source.remote.host);
    }
    // Rewrite the Via lines as one value per line (equivalent, §7.3.1) with the top one stamped.
    const values = req.headers.getAll('Via');
    const first = req.headers.list.findIndex((h) => h.name === 'Via');
    const others = req.headers.list.filter((h) => h.name !== 'Via');
    const rebuilt = [formatVia(via), ...values.slice(1)].map((value) => ({ name: 'Via', value }));
    req.headers.list.splice(0, req.headers.list.length, ...others.slice(0, first), ...rebuilt, ...others.slice(first));
  }

  /** Sends nothing more from now on, and closes the sockets. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([this.udp?.close(), this.tcp?.close(), this.tls?.close()]);
  }
}
