// Janus's sampleevh done for ferry: events POSTed as JSON to a collector, a batch per request
// (a JSON array) when grouping, else one event per request. Any answer but 2xx, a refused
// connection or a timeout is a failed attempt: the events stay in the backlog and are sent
// again after a back-off (QueuedEventHandler).
import http from 'node:http';
import https from 'node:https';

import type { Logger } from 'pino';

import { QueuedEventHandler, type DeliveryResult } from './QueuedEventHandler.js';

/** One POST may take this long before it counts as failed. */
const REQUEST_TIMEOUT_MS = 10_000;

export interface HttpEventHandlerOptions {
  url: string;
  mask: number;
  grouping: boolean;
  maxBacklog: number;
  /** HTTP basic authentication (RFC 7617), when the collector wants it. */
  username: string | null;
  password: string | null;
  logger: Logger;
}

export class HttpEventHandler extends QueuedEventHandler {
  private readonly url: URL;
  private readonly agent: http.Agent;
  private readonly headers: Record<string, string>;
  private readonly inFlight = new Set<http.ClientRequest>();

  constructor(options: HttpEventHandlerOptions) {
    const url = new URL(options.url);
    url.username = '';
    url.password = '';
    super({ handler: 'http', target: url.toString(), mask: options.mask, grouping: options.grouping, maxBacklog: options.maxBacklog, logger: options.logger });
    this.url = url;
    const secure = url.protocol === 'https:';
    this.agent = secure ? new https.Agent({ keepAlive: true, maxSockets: 1 }) : new http.Agent({ keepAlive: true, maxSockets: 1 });
    this.headers = { 'content-type': 'application/json' };
    if (options.username !== null) {
      this.headers['authorization'] = `Basic ${Buffer.from(`${options.username}:${options.password ?? ''}`).toString('base64')}`;
    }
  }

  protected async deliver(batch: string[], grouping: boolean): Promise<DeliveryResult> {
    if (grouping) {
      const error = await this.post(`[${batch.join(',')}]`);
      return error === null ? { delivered: batch.length } : { delivered: 0, error };
    }
    for (let i = 0; i < batch.length; i++) {
      const error = await this.post(batch[i]!);
      if (error !== null) return { delivered: i, error };
    }
    return { delivered: batch.length };
  }

  /** One POST; null when the collector answered 2xx, else why not. */
  private post(body: string): Promise<string | null> {
    return new Promise((resolve) => {
      const send = this.url.protocol === 'https:' ? https.request : http.request;
      let settled = false;
      const done = (error: string | null) => {
        if (settled) return;
        settled = true;
        this.inFlight.delete(req);
        resolve(error);
      };
      const req = send(this.url, { method: 'POST', agent: this.agent, headers: { ...this.headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
        res.resume(); // the answer's body is not read, only drained so the socket can be reused
        const status = res.statusCode ?? 0;
        res.on('end', () => done(status >= 200 && status < 300 ? null : `HTTP ${status}`));
        res.on('error', (err) => done(err.message));
      });
      this.inFlight.add(req);
      req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
      req.on('error', (err) => done(err.message));
      req.end(body);
    });
  }

  protected abort(): void {
    for (const req of this.inFlight) req.destroy();
    this.inFlight.clear();
    this.agent.destroy();
  }
}
