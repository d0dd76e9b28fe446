/**
 * SIP transports (RFC 3261 §18): UDP datagrams, and TCP or TLS (§26.2.1, on
 * node:tls) streams framed by Content-Length (§18.3). All are bound to a
 * configured local address.
 *
 * Transport loss is an event, because the UA must react to it (lessons §2:
 * a lost transport clears the learned Service-Route before re-registering):
 * a TCP connection closing or failing, or a UDP send failing (on Linux an
 * ICMP port-unreachable surfaces as ECONNREFUSED on the next send of a
 * connected socket only, so unconnected UDP detects loss by send errors).
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { isIP } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { Emitter } from './Emitter.js';
import { StreamFramer } from './SipParser.js';

export interface SipEndpoint {
  host: string;
  port: number;
}

export type TransportProtocol = 'udp' | 'tcp' | 'tls';

/** A TLS transport's certificate, and what it trusts of its peers' certificates. */
export interface TlsOptions {
  /** PEM certificate (chain) and private key ferry presents, as a server and as a client. */
  cert: string | Buffer;
  key: string | Buffer;
  /** PEM CA certificates to trust beyond the system's (a self-signed peer's own certificate). */
  ca?: string | Buffer;
  /** Check the peer's certificate when ferry connects (default true, RFC 5922 §7.2). */
  verifyPeer?: boolean;
}

export type TransportEvents = {
  /** One complete message (datagram or stream frame) from `from`. */
  message: [data: Buffer, from: SipEndpoint];
  /** The path to `remote` (or the whole transport when undefined) failed. */
  loss: [info: { remote?: SipEndpoint; error: string }];
};

export interface SipTransport extends Emitter<TransportEvents> {
  readonly protocol: TransportProtocol;
  /** Reliable transports skip retransmissions (§17.1.1.2 Timer A, §17.1.2.2 Timer E). */
  readonly reliable: boolean;
  readonly local: SipEndpoint;
  send(data: Buffer, to: SipEndpoint): void;
  close(): Promise<void>;
}

/** A transport and the peer at its other end: where a request came from, or where it was sent. */
export interface SipFlow {
  transport: SipTransport;
  remote: SipEndpoint;
}

const key = (e: SipEndpoint) => `${e.host}:${e.port}`;

export class UdpTransport extends Emitter<TransportEvents> implements SipTransport {
  readonly protocol = 'udp' as const;
  readonly reliable = false;
  private closed = false;

  private constructor(private readonly socket: UdpSocket, readonly local: SipEndpoint) {
    super();
    socket.on('message', (data, rinfo) => this.emit('message', data, { host: rinfo.address, port: rinfo.port }));
    socket.on('error', (err) => this.emit('loss', { error: err.message }));
  }

  static open(host: string, port = 0): Promise<UdpTransport> {
    return new Promise((resolve, reject) => {
      const socket = createSocket(isIP(host) === 6 ? 'udp6' : 'udp4');
      socket.once('error', reject);
      socket.bind(port, host, () => {
        socket.off('error', reject);
        const addr = socket.address();
        resolve(new UdpTransport(socket, { host: addr.address, port: addr.port }));
      });
    });
  }

  send(data: Buffer, to: SipEndpoint): void {
    if (this.closed) return;
    this.socket.send(data, to.port, to.host, (err) => {
      if (err && !this.closed) this.emit('loss', { remote: to, error: err.message });
    });
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve(); // already closed (e.g. by its owner's process shutting sockets down)
      }
    });
  }
}

/** Listens on `server` (already created) and resolves with its address. */
function listen(server: Server, host: string, port: number, what: string): Promise<SipEndpoint> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const addr = server.address();
      if (addr === null || typeof addr === 'string') return reject(new Error(`${what} listener has no address`));
      resolve({ host: addr.address, port: addr.port });
    });
  });
}

/**
 * A stream transport (TCP or TLS): one connection per peer, accepted or opened on
 * the first send (§18.1.1), messages framed by Content-Length (§18.3).
 */
abstract class StreamTransport extends Emitter<TransportEvents> implements SipTransport {
  abstract readonly protocol: 'tcp' | 'tls';
  readonly reliable = true;
  private readonly connections = new Map<string, Socket>();
  private closed = false;

  protected constructor(private readonly server: Server, readonly local: SipEndpoint) {
    super();
  }

  /** Opens a connection to `to` from our address (writes queue until it is up). */
  protected abstract connectTo(to: SipEndpoint): Socket;

  /** Number of open connections (tests check that nothing leaks). */
  get connectionCount(): number {
    return this.connections.size;
  }

  protected adopt(sock: Socket, remote: SipEndpoint): void {
    const k = key(remote);
    this.connections.set(k, sock);
    const framer = new StreamFramer();
    sock.setNoDelay(true);
    sock.on('data', (chunk) => {
      // RFC 5626 §4.4.1: a double-CRLF ping between messages is answered with a single CRLF pong.
      if (framer.idle && chunk.length === 4 && chunk.toString('latin1') === '\r\n\r\n') {
        sock.write('\r\n');
        return;
      }
      const { frames, error } = framer.push(chunk);
      for (const f of frames) this.emit('message', f, remote);
      // Framing lost: nothing after this point can be delimited, so drop the connection (§18.3).
      if (error) sock.destroy(new Error(error));
    });
    let reported = false;
    const lost = (why: string) => {
      if (this.connections.get(k) === sock) this.connections.delete(k);
      if (!reported && !this.closed) {
        reported = true;
        this.emit('loss', { remote, error: why });
      }
    };
    sock.on('error', (err) => lost(err.message));
    sock.on('close', () => lost('connection closed'));
  }

  send(data: Buffer, to: SipEndpoint): void {
    if (this.closed) return;
    let sock = this.connections.get(key(to));
    if (!sock || sock.destroyed) {
      // §18.1.1: open a connection to the destination when none exists; writes queue until it connects.
      sock = this.connectTo(to);
      this.adopt(sock, to);
    }
    sock.write(data);
  }

  /** Drops the connection to `to` (tests simulate a network outage with it). */
  dropConnection(to: SipEndpoint): void {
    this.connections.get(key(to))?.destroy();
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    for (const s of this.connections.values()) s.destroy();
    this.connections.clear();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

export class TcpTransport extends StreamTransport {
  readonly protocol = 'tcp' as const;

  private constructor(server: Server, local: SipEndpoint) {
    super(server, local);
    server.on('connection', (sock) => this.adopt(sock, { host: sock.remoteAddress ?? '', port: sock.remotePort ?? 0 }));
  }

  static async open(host: string, port = 0): Promise<TcpTransport> {
    const server = createServer();
    return new TcpTransport(server, await listen(server, host, port, 'TCP'));
  }

  protected connectTo(to: SipEndpoint): Socket {
    return connect({ host: to.host, port: to.port, localAddress: this.local.host });
  }
}

/**
 * SIP over TLS (RFC 3261 §26.2.1, RFC 5630): the same framing on node:tls. As a
 * client ferry checks the server's certificate against `ca` (and the system's)
 * and the host it connects to (RFC 5922 §7.2), unless `verifyPeer` is false;
 * as a server it does not ask clients for certificates (§26.3.2.1: clients
 * authenticate with digest). A handshake that fails is a transport loss.
 */
export class TlsTransport extends StreamTransport {
  readonly protocol = 'tls' as const;

  private constructor(server: Server, local: SipEndpoint, private readonly tls: TlsOptions) {
    super(server, local);
    server.on('secureConnection', (sock: TLSSocket) => this.adopt(sock, { host: sock.remoteAddress ?? '', port: sock.remotePort ?? 0 }));
    // A client that fails its handshake never becomes a connection: nothing to report.
    server.on('tlsClientError', () => {});
  }

  static async open(host: string, port: number, tls: TlsOptions): Promise<TlsTransport> {
    const server = createTlsServer({ cert: tls.cert, key: tls.key, ...(tls.ca ? { ca: tls.ca } : {}) });
    return new TlsTransport(server, await listen(server, host, port, 'TLS'), tls);
  }

  protected connectTo(to: SipEndpoint): Socket {
    return tlsConnect({
      // From our own address (the TCP connection beneath), checked against `host`.
      socket: connect({ host: to.host, port: to.port, localAddress: this.local.host }),
      host: to.host,
      cert: this.tls.cert,
      key: this.tls.key,
      ...(this.tls.ca ? { ca: this.tls.ca } : {}),
      rejectUnauthorized: this.tls.verifyPeer !== false,
      // SNI names hosts, never addresses (RFC 6066 §3).
      ...(isIP(to.host) === 0 ? { servername: to.host } : {}),
    });
  }
}
