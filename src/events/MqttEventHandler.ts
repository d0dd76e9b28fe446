// Events to an MQTT broker (Janus's mqttevh does the same): each batch is one message on the
// configured topic (a JSON array when grouping, else one message per event), published at
// QoS 1 so an event leaves the backlog only once the broker has acknowledged it (MQTT 3.1.1
// §4.3.2). While the broker is away the client reconnects with back-off and the events wait
// in the bounded backlog; beyond it they are dropped and counted.
import { randomBytes } from 'node:crypto';

import type { Logger } from 'pino';

import { MqttClient } from './mqtt/MqttClient.js';
import { QueuedEventHandler, type DeliveryResult } from './QueuedEventHandler.js';

export interface MqttEventHandlerOptions {
  /** mqtt://host[:port] (1883 when left out). */
  url: string;
  topic: string;
  mask: number;
  grouping: boolean;
  maxBacklog: number;
  username: string | null;
  password: string | null;
  /** null: ferry-<random>, new for each process. */
  clientId: string | null;
  logger: Logger;
}

const DEFAULT_MQTT_PORT = 1883;

export class MqttEventHandler extends QueuedEventHandler {
  private readonly client: MqttClient;
  private readonly topic: string;

  constructor(options: MqttEventHandlerOptions) {
    const url = new URL(options.url);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const port = url.port ? Number(url.port) : DEFAULT_MQTT_PORT;
    super({
      handler: 'mqtt',
      target: `mqtt://${url.host}/${options.topic}`,
      mask: options.mask,
      grouping: options.grouping,
      maxBacklog: options.maxBacklog,
      logger: options.logger,
    });
    this.topic = options.topic;
    this.client = new MqttClient({
      host,
      port,
      clientId: options.clientId ?? `ferry-${randomBytes(6).toString('hex')}`,
      username: options.username,
      password: options.password,
      onConnectionLost: (reason) => this.logger.debug({ handler: 'mqtt', reason }, 'MQTT broker connection lost; reconnecting'),
    });
  }

  override start(): void {
    this.client.start();
  }

  protected override reachable(): boolean {
    return this.client.connected;
  }

  protected async deliver(batch: string[], grouping: boolean): Promise<DeliveryResult> {
    if (!this.client.connected) return { delivered: 0, error: `broker not connected (${this.client.lastError ?? 'connecting'})` };
    if (grouping) {
      try {
        await this.client.publish(this.topic, `[${batch.join(',')}]`, 1);
        return { delivered: batch.length };
      } catch (err) {
        return { delivered: 0, error: err instanceof Error ? err.message : String(err) };
      }
    }
    // All at once (QoS 1 keeps them in order on one connection); what counts is the prefix acknowledged.
    const results = await Promise.allSettled(batch.map((event) => this.client.publish(this.topic, event, 1)));
    const firstFailure = results.findIndex((r) => r.status === 'rejected');
    if (firstFailure < 0) return { delivered: batch.length };
    const reason = (results[firstFailure] as PromiseRejectedResult).reason;
    return { delivered: firstFailure, error: reason instanceof Error ? reason.message : String(reason) };
  }

  protected abort(): void {
    this.client.close();
  }
}
