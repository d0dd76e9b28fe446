// A small MQTT 3.1.1 client over TCP: connects with a clean session, publishes at QoS 0 or 1
// (a QoS 1 publish settles on the broker's PUBACK, §4.3.2), subscribes (for tests and
// tools), keeps the connection alive with PINGREQ (§3.1.2.10) and reconnects with back-off
// whenever the connection is lost. Publishing while disconnected fails at once: the caller
// (the MQTT event handler) keeps its events in its bounded backlog and tries again.
import net from 'node:net';

import {
  CONNACK_REFUSALS,
  DISCONNECT,
  MqttProtocolError,
  PINGREQ,
  PacketReader,
  encodeConnect,
  encodePuback,
  encodePublish,
  encodeSubscribe,
  type IncomingPacket,
} from './MqttPackets.js';

const INITIAL_RECONNECT_MS = 100;
const MAX_RECONNECT_MS = 5000;
/** A PUBACK or SUBACK later than this fails its publish or subscribe (the connection may still live). */
const ACK_TIMEOUT_MS = 10_000;
/** The most a broker's packet may be (events are published, rarely received). */
const MAX_INCOMING_PACKET_BYTES = 16 * 1024 * 1024;

/**
 * Connection states:
 * - disconnected: no socket; a reconnect is scheduled (unless never started).
 * - connecting: TCP connecting or CONNECT sent, waiting for CONNACK.
 * - connected: CONNACK accepted; publishes go out.
 * - closed: terminal (close()).
 */
export type MqttClientState = 'disconnected' | 'connecting' | 'connected' | 'closed';
type MqttClientInput = 'connect' | 'accepted' | 'lost' | 'close';

const CLIENT_TRANSITIONS: Readonly<Record<MqttClientState, Readonly<Partial<Record<MqttClientInput, MqttClientState>>>>> = {
  disconnected: { connect: 'connecting', close: 'closed' },
  connecting: { accepted: 'connected', lost: 'disconnected', close: 'closed' },
  connected: { lost: 'disconnected', close: 'closed' },
  closed: {},
};

export interface MqttClientOptions {
  host: string;
  port: number;
  clientId: string;
  username?: string | null;
  password?: string | null;
  keepAliveSeconds?: number;
  /** Default true (the event handler publishes only); false lets a subscriber's session outlive a broker restart. */
  cleanSession?: boolean;
  /** A message on a subscribed topic. */
  onMessage?: (topic: string, payload: Buffer) => void;
  /** Each lost or refused connection, with why (the client reconnects by itself). */
  onConnectionLost?: (reason: string) => void;
}

interface PendingAck {
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class MqttClient {
  private state: MqttClientState = 'disconnected';
  private socket: net.Socket | null = null;
  private reader: PacketReader | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private reconnectMs = INITIAL_RECONNECT_MS;
  private pingTimer: NodeJS.Timeout | null = null;
  private awaitingPingResponse = false;
  private nextPacketId = 1;
  private readonly pending = new Map<number, PendingAck>();
  private readonly subscriptions: Array<{ topic: string; qos: 0 | 1 }> = [];
  private connectedWaiters: Array<() => void> = [];
  private readonly keepAliveSeconds: number;
  /** Why the last connection ended (null while connected or never tried). */
  lastError: string | null = null;

  constructor(private readonly options: MqttClientOptions) {
    this.keepAliveSeconds = options.keepAliveSeconds ?? 30;
  }

  get currentState(): MqttClientState {
    return this.state;
  }

  get connected(): boolean {
    return this.state === 'connected';
  }

  private apply(input: MqttClientInput): boolean {
    const next = CLIENT_TRANSITIONS[this.state][input];
    if (next === undefined) return false;
    this.state = next;
    return true;
  }

  start(): void {
    if (!this.apply('connect')) return;
    const socket = net.connect({ host: this.options.host, port: this.options.port });
    this.socket = socket;
    this.reader = new PacketReader(MAX_INCOMING_PACKET_BYTES);
    socket.setNoDelay(true);
    socket.on('connect', () => {
      socket.write(
        encodeConnect({
          clientId: this.options.clientId,
          keepAliveSeconds: this.keepAliveSeconds,
          username: this.options.username,
          password: this.options.password,
          cleanSession: this.options.cleanSession ?? true,
        }),
      );
    });
    socket.on('data', (chunk: Buffer) => {
      if (this.socket !== socket) return;
      let packets: IncomingPacket[];
      try {
        packets = this.reader!.push(chunk);
      } catch (err) {
        this.lose(err instanceof MqttProtocolError ? `protocol error: ${err.message}` : String(err));
        return;
      }
      for (const p of packets) this.onPacket(p);
    });
    // Only this socket's own ending counts: a late event of an earlier one must not end a newer connection.
    socket.on('error', (err) => {
      if (this.socket === socket) this.lose(err.message);
    });
    socket.on('close', () => {
      if (this.socket === socket) this.lose('connection closed');
    });
  }

  /** Resolves once connected (now, or later); rejects after `timeoutMs`. */
  whenConnected(timeoutMs: number): Promise<void> {
    if (this.state === 'connected') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.connectedWaiters = this.connectedWaiters.filter((w) => w !== done);
        reject(new Error(`MQTT: not connected within ${timeoutMs} ms (${this.lastError ?? 'no answer'})`));
      }, timeoutMs);
      timer.unref();
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.connectedWaiters.push(done);
    });
  }

  /** Publishes; QoS 1 resolves on the broker's PUBACK. Rejects at once when not connected. */
  publish(topic: string, payload: Buffer | string, qos: 0 | 1): Promise<void> {
    const socket = this.socket;
    if (this.state !== 'connected' || !socket) return Promise.reject(new Error(`MQTT: not connected (${this.lastError ?? 'connecting'})`));
    const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
    if (qos === 0) {
      socket.write(encodePublish(topic, body, 0, 0));
      return Promise.resolve();
    }
    return this.withAck((id) => socket.write(encodePublish(topic, body, 1, id)), 'PUBACK');
  }

  /** Subscribes now (when connected) and again after every reconnect (a clean session forgets). */
  subscribe(topic: string, qos: 0 | 1): Promise<void> {
    this.subscriptions.push({ topic, qos });
    const socket = this.socket;
    if (this.state !== 'connected' || !socket) return Promise.resolve();
    return this.withAck((id) => socket.write(encodeSubscribe(id, topic, qos)), 'SUBACK');
  }

  /** A packet id no pending exchange uses (§2.3.1: non-zero). */
  private takePacketId(): number | null {
    for (let tries = 0; tries < 0xffff; tries++) {
      const id = this.nextPacketId;
      this.nextPacketId = id === 0xffff ? 1 : id + 1;
      if (!this.pending.has(id)) return id;
    }
    return null;
  }

  private withAck(send: (packetId: number) => void, what: string): Promise<void> {
    const id = this.takePacketId();
    if (id === null) return Promise.reject(new Error('MQTT: every packet id is waiting for an acknowledgement'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`MQTT: no ${what} within ${ACK_TIMEOUT_MS} ms`));
      }, ACK_TIMEOUT_MS);
      timer.unref();
      this.pending.set(id, { resolve, reject, timer });
      send(id);
    });
  }

  private settle(packetId: number): void {
    const p = this.pending.get(packetId);
    if (!p) return;
    this.pending.delete(packetId);
    clearTimeout(p.timer);
    p.resolve();
  }

  private onPacket(p: IncomingPacket): void {
    switch (p.type) {
      case 'connack':
        if (p.returnCode !== 0) {
          this.lose(`broker refused the connection: ${CONNACK_REFUSALS[p.returnCode] ?? `code ${p.returnCode}`}`);
          return;
        }
        if (!this.apply('accepted')) return;
        this.lastError = null;
        this.reconnectMs = INITIAL_RECONNECT_MS;
        this.startKeepAlive();
        for (const s of this.subscriptions) {
          const id = this.takePacketId();
          if (id !== null) this.socket?.write(encodeSubscribe(id, s.topic, s.qos));
        }
        for (const w of this.connectedWaiters.splice(0)) w();
        break;
      case 'puback':
      case 'suback':
        this.settle(p.packetId);
        break;
      case 'publish':
        if (p.qos === 1 && p.packetId !== null) this.socket?.write(encodePuback(p.packetId));
        this.options.onMessage?.(p.topic, p.payload);
        break;
      case 'pingresp':
        this.awaitingPingResponse = false;
        break;
    }
  }

  /** PINGREQ at half the keep-alive; a broker that has not answered the previous one is gone (§3.1.2.10). */
  private startKeepAlive(): void {
    this.awaitingPingResponse = false;
    this.pingTimer = setInterval(() => {
      if (this.awaitingPingResponse) {
        this.lose('no PINGRESP from the broker');
        return;
      }
      this.awaitingPingResponse = true;
      this.socket?.write(PINGREQ);
    }, (this.keepAliveSeconds * 1000) / 2);
    this.pingTimer.unref();
  }

  /** The connection is gone: fail what waits on it and reconnect after a back-off. */
  private lose(reason: string): void {
    const socket = this.socket;
    if (!socket) return;
    this.socket = null;
    this.reader = null;
    socket.destroy();
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new Error(`MQTT: ${reason}`));
    }
    this.pending.clear();
    if (!this.apply('lost')) return; // closed
    this.lastError = reason;
    this.options.onConnectionLost?.(reason);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.start();
    }, this.reconnectMs);
    this.reconnectTimer.unref();
    this.reconnectMs = Math.min(MAX_RECONNECT_MS, this.reconnectMs * 2);
  }

  /** Ends the connection (DISCONNECT when connected, §3.14) and stops reconnecting. Idempotent. */
  close(): void {
    const socket = this.socket;
    const wasConnected = this.state === 'connected';
    if (!this.apply('close')) return;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
    this.socket = null;
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new Error('MQTT: client closed'));
    }
    this.pending.clear();
    if (socket) {
      if (wasConnected) socket.end(DISCONNECT);
      else socket.destroy();
      socket.unref();
    }
  }
}
