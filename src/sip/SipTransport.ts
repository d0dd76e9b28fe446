/**
 * SIP transports (RFC 3261 §18): UDP datagrams and TCP streams framed by
 * Content-Length (§18.3). Both are bound to a configured local address.
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
import { Emitter } from './Emitter.js';
import { StreamFramer } from './SipParser.js';

export interface SipEndpoint {
  host: string;
  port: number;
}

export type TransportProtocol = 'udp' | 'tcp';

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

export class TcpTransport extends Emitter<TransportEvents> implements SipTransport {
  readonly protocol = 'tcp' as const;
  readonly reliable = true;
  private readonly connections = new Map<string, Socket>();
  private closed = false;

  private constructor(private readonly server: Server, readonly local: SipEndpoint) {
    super();
    server.on('connection', (sock) => {
      const remote = { host: sock.remoteAddress ?? '', port: sock.remotePort ?? 0 };
      this.adopt(sock, remote);
    });
  }

  static open(host: string, port = 0): Promise<TcpTransport> {
    return new Promise((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        const addr = server.address();
        if (addr === null || typeof addr === 'string') return reject(new Error('TCP listener has no address'));
        resolve(new TcpTransport(server, { host: addr.address, port: addr.port }));
      });
    });
  }

  /** Number of open connections (tests check that nothing leaks). */
  get connectionCount(): number {
    return this.connections.size;
  }

  private adopt(sock: Socket, remote: SipEndpoint): void {
    const k = key(remote);
    this.connections.set(k, sock);
    const framer = new StreamFramer();
    sock.setNoDelay(true);
    sock.on('data', (chunk) => {
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
      sock = connect({ host: to.host, port: to.port, localAddress: this.local.host });
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
