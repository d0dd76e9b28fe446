// Plain UDP sockets for tests: bound to 127.0.0.1 only, with a bounded wait for datagrams.
import { createSocket, type Socket } from 'node:dgram';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

export interface UdpPeer {
  socket: Socket;
  port: number;
  received: Buffer[];
  send(data: Buffer, port: number): Promise<void>;
  /** Resolves when `count` datagrams have arrived, or after `timeoutMs` with what arrived. */
  waitFor(count: number, timeoutMs?: number): Promise<Buffer[]>;
  close(): Promise<void>;
}

export async function udpPeer(): Promise<UdpPeer> {
  const socket = createSocket('udp4');
  const received: Buffer[] = [];
  let waiter: (() => void) | undefined;
  socket.on('message', (msg) => {
    received.push(msg);
    waiter?.();
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  // A test process that other suites starve of CPU for a moment must not lose what arrived
  // meanwhile: the default 208 KiB holds only about 90 packets of 1 KB (the kernel capped at rmem_max).
  socket.setRecvBufferSize(4 * 1024 * 1024);
  const port = socket.address().port;
  return {
    socket,
    port,
    received,
    send: (data, to) =>
      new Promise<void>((resolve, reject) => socket.send(data, to, '127.0.0.1', (err) => (err ? reject(err) : resolve()))),
    waitFor(count, timeoutMs = 3000) {
      return new Promise((resolve) => {
        const done = () => {
          clearTimeout(timer);
          waiter = undefined;
          resolve(received.slice());
        };
        const timer = setTimeout(done, timeoutMs);
        waiter = () => {
          if (received.length >= count) done();
        };
        waiter();
      });
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

/** Sends packets with a small pause every `burst` packets so loopback buffers never overflow. */
export async function sendPaced(peer: UdpPeer, packets: Buffer[], port: number, burst = 50): Promise<void> {
  for (let i = 0; i < packets.length; i++) {
    await peer.send(packets[i]!, port);
    if (i % burst === burst - 1) await new Promise((r) => setTimeout(r, 2));
  }
}

/** One UDP socket of /proc/net/udp{,6}: its local port and its inode (proc(5)). */
export interface UdpSocketEntry {
  port: number;
  inode: string;
}

/**
 * UDP sockets bound right now, from /proc/net/udp{,6}. With `pid`, only the sockets that
 * process holds (matched by inode through /proc/<pid>/fd): other suites, Chromium and the
 * kernel's ephemeral ports share the machine and may hold any port of a test's range.
 */
export function udpSockets(options: { pid?: number } = {}): UdpSocketEntry[] {
  const owned = options.pid === undefined ? undefined : socketInodesOf(options.pid);
  const sockets: UdpSocketEntry[] = [];
  for (const file of ['/proc/net/udp', '/proc/net/udp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const local = fields[1];
      const inode = fields[9];
      if (!local || inode === undefined) continue;
      if (owned && !owned.has(inode)) continue;
      sockets.push({ port: parseInt(local.split(':')[1]!, 16), inode });
    }
  }
  return sockets;
}

/** `udpSockets` counted by local port. */
export function udpSocketsByPort(options: { pid?: number } = {}): Map<number, number> {
  const counts = new Map<number, number>();
  for (const { port } of udpSockets(options)) counts.set(port, (counts.get(port) ?? 0) + 1);
  return counts;
}

/** Inodes of the sockets a process holds open: its fds that link to `socket:[inode]`. */
function socketInodesOf(pid: number): Set<string> {
  const inodes = new Set<string>();
  let fds: string[] = [];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return inodes;
  }
  for (const fd of fds) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match) inodes.add(match[1]!);
    } catch {
      // The fd closed between readdir and readlink.
    }
  }
  return inodes;
}

/** Local UDP ports bound right now (by `pid` only, when given): proof a socket really closed. */
export function boundUdpPorts(options: { pid?: number } = {}): Set<number> {
  return new Set(udpSocketsByPort(options).keys());
}

/** `n` distinct UDP ports free on this host right now (bound on 0.0.0.0 and released). */
export async function freeUdpPorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  for (let tries = 0; ports.length < n && tries < 100 * n; tries++) {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '0.0.0.0', resolve));
    const { port } = socket.address();
    await new Promise<void>((resolve) => socket.close(() => resolve()));
    if (!ports.includes(port)) ports.push(port);
  }
  return ports;
}
