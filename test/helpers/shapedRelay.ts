// A UDP relay between browsers and ferry, on loopback, that caps what ferry sends each port.
//
// ferry binds its media ports on 127.0.0.1 and announces 127.0.0.2 as its candidate
// (`media.candidate_addresses`); the relay binds 127.0.0.2:<each port of ferry's range>
// (Linux routes all of 127/8 to lo). What a browser sends to 127.0.0.2:P goes to ferry's
// 127.0.0.1:P as it is, from a socket of the relay's own for that browser address (one per
// address, like a NAT), so ferry's replies on that socket go back to that address. ferry is
// ICE-lite and answers checks from wherever they come; the browser sees replies from the
// candidate it was given. The ferry→browser direction of each port can be capped at run
// time: a token bucket at the cap with a drop-tail queue of `queueMs` of data, the way a
// slow access link behaves (its queue builds up delay, then loses), which is what a
// send-side estimator reads.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';

export interface ShapedRelayOptions {
  /** Address the browsers send to (ferry's announced candidate). */
  listenAddress: string;
  /** Address ferry's media ports are bound to. */
  ferryAddress: string;
  /** ferry's media ports (`media.rtp_port_min..max`): the relay listens on each. */
  ports: number[];
  /** The capped queue holds at most this many milliseconds of data at the cap; more is dropped. */
  queueMs?: number;
  /** How often the queues are drained (ms). */
  tickMs?: number;
  /** Browser addresses relayed per port at most (ICE may try a few); more are dropped and counted. */
  maxPeersPerPort?: number;
}

/** What crossed one port so far. */
export interface PortTraffic {
  port: number;
  /** Browser → ferry. */
  upPackets: number;
  upBytes: number;
  /** ferry → browser, delivered. */
  downPackets: number;
  downBytes: number;
  /** ferry → browser, dropped by a full queue. */
  downDropped: number;
  /** ferry → browser, waiting in the queue now. */
  queuedBytes: number;
  /** The cap now (bits/s; null: none). */
  capBps: number | null;
  peers: number;
}

export interface ShapedRelay {
  /** Caps ferry → browser on `port` at `bps` (null lifts the cap; what is queued then goes at once). */
  setCap(port: number, bps: number | null): void;
  traffic(port: number): PortTraffic;
  trafficAll(): PortTraffic[];
  /** Packets dropped because a port had its most browser addresses already. */
  readonly peerOverflow: number;
  close(): Promise<void>;
}

interface Queued {
  data: Buffer;
  to: RemoteInfo;
}

/** The ferry → browser direction of one port: unlimited, or a token bucket with a bounded queue. */
class DownLink {
  capBps: number | null = null;
  private tokens = 0;
  private lastRefillNs = process.hrtime.bigint();
  private readonly queue: Queued[] = [];
  private queueHead = 0;
  queuedBytes = 0;
  packets = 0;
  bytes = 0;
  dropped = 0;

  constructor(
    private readonly socket: Socket,
    private readonly queueMs: number,
  ) {}

  setCap(bps: number | null): void {
    this.refill();
    this.capBps = bps;
    this.tokens = Math.min(this.tokens, this.depth());
    if (bps === null) this.drain();
  }

  /** Bytes the bucket may hold: about 10 ms at the cap, at least two full-size packets. */
  private depth(): number {
    return this.capBps === null ? Infinity : Math.max(3000, (this.capBps / 8) * 0.01);
  }

  private refill(): void {
    const now = process.hrtime.bigint();
    const elapsedS = Number(now - this.lastRefillNs) / 1e9;
    this.lastRefillNs = now;
    if (this.capBps !== null) this.tokens = Math.min(this.depth(), this.tokens + (this.capBps / 8) * elapsedS);
  }

  offer(data: Buffer, to: RemoteInfo): void {
    if (this.capBps === null && this.queued() === 0) {
      this.send(data, to);
      return;
    }
    const limit = this.capBps === null ? Infinity : Math.max(1500, (this.capBps / 8) * (this.queueMs / 1000));
    if (this.queuedBytes + data.length > limit) {
      this.dropped++;
      return;
    }
    this.queue.push({ data, to });
    this.queuedBytes += data.length;
    this.drain();
  }

  private queued(): number {
    return this.queue.length - this.queueHead;
  }

  /** Sends what the bucket allows (everything when uncapped). Bounded by the queue's length. */
  drain(): void {
    this.refill();
    while (this.queueHead < this.queue.length) {
      const next = this.queue[this.queueHead]!;
      if (this.capBps !== null) {
        if (this.tokens < next.data.length) break;
        this.tokens -= next.data.length;
      }
      this.queueHead++;
      this.queuedBytes -= next.data.length;
      this.send(next.data, next.to);
    }
    if (this.queueHead > 256 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
  }

  private send(data: Buffer, to: RemoteInfo): void {
    this.packets++;
    this.bytes += data.length;
    this.socket.send(data, to.port, to.address);
  }
}

interface RelayPort {
  port: number;
  outer: Socket;
  down: DownLink;
  /** Browser address → the relay's socket toward ferry for it. */
  peers: Map<string, Promise<Socket | undefined>>;
  upPackets: number;
  upBytes: number;
}

function bindSocket(address: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.bind(port, address, () => {
      socket.off('error', reject);
      // A send error on loopback (the browser went away) is not the test's failure.
      socket.on('error', () => undefined);
      resolve(socket);
    });
  });
}

export async function startShapedRelay(options: ShapedRelayOptions): Promise<ShapedRelay> {
  for (const address of [options.listenAddress, options.ferryAddress]) {
    if (!/^127\.0\.0\.\d{1,3}$/.test(address)) throw new Error(`the relay stays on loopback: ${address} is not 127.0.0.x`);
  }
  const queueMs = options.queueMs ?? 150;
  const maxPeers = options.maxPeersPerPort ?? 8;
  const ports = new Map<number, RelayPort>();
  let peerOverflow = 0;
  let closed = false;

  /** The relay's socket toward ferry for one browser address (bound before the first send). */
  const peerSocket = (rp: RelayPort, from: RemoteInfo): Promise<Socket | undefined> | undefined => {
    const key = `${from.address}:${from.port}`;
    const known = rp.peers.get(key);
    if (known) return known;
    if (rp.peers.size >= maxPeers) {
      peerOverflow++;
      return undefined;
    }
    const upstream = bindSocket(options.ferryAddress, 0).then(
      (socket) => {
        socket.on('message', (data) => rp.down.offer(data, from));
        return socket;
      },
      () => undefined,
    );
    rp.peers.set(key, upstream);
    return upstream;
  };

  try {
    for (const port of options.ports) {
      const outer = await bindSocket(options.listenAddress, port);
      const rp: RelayPort = { port, outer, down: new DownLink(outer, queueMs), peers: new Map(), upPackets: 0, upBytes: 0 };
      ports.set(port, rp);
      outer.on('message', (data, from) => {
        rp.upPackets++;
        rp.upBytes += data.length;
        void peerSocket(rp, from)?.then((upstream) => {
          if (upstream && !closed) upstream.send(data, port, options.ferryAddress);
        });
      });
    }
  } catch (err) {
    for (const rp of ports.values()) rp.outer.close();
    throw err;
  }

  const timer = setInterval(() => {
    for (const rp of ports.values()) rp.down.drain();
  }, options.tickMs ?? 4);

  const portOf = (port: number): RelayPort => {
    const rp = ports.get(port);
    if (!rp) throw new Error(`the relay does not listen on port ${port}`);
    return rp;
  };
  const traffic = (rp: RelayPort): PortTraffic => ({
    port: rp.port,
    upPackets: rp.upPackets,
    upBytes: rp.upBytes,
    downPackets: rp.down.packets,
    downBytes: rp.down.bytes,
    downDropped: rp.down.dropped,
    queuedBytes: rp.down.queuedBytes,
    capBps: rp.down.capBps,
    peers: rp.peers.size,
  });

  return {
    setCap: (port, bps) => portOf(port).down.setCap(bps),
    traffic: (port) => traffic(portOf(port)),
    trafficAll: () => [...ports.values()].map(traffic),
    get peerOverflow() {
      return peerOverflow;
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      const sockets = [...ports.values()].map((rp) => rp.outer);
      for (const rp of ports.values()) for (const s of await Promise.all(rp.peers.values())) if (s) sockets.push(s);
      await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    },
  };
}
