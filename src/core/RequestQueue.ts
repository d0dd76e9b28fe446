/**
 * A handle's asynchronous plugin requests, run one at a time in arrival order,
 * as each Janus plugin's message thread takes its queue (janus_videoroom.c,
 * janus_sip.c …): a request starts on a later turn of the event loop, so the
 * core's `ack` goes out first, and one that throws is answered through
 * `onError` (an error event with its transaction) without stopping the next.
 */
import type { PluginMessage } from './Plugin.js';

export class RequestQueue {
  private tail: Promise<void> = Promise.resolve();

  constructor(private readonly onError: (err: unknown, message: PluginMessage) => void) {}

  /** Runs `handle(message)` after every request queued before it has finished. */
  push(message: PluginMessage, handle: (message: PluginMessage) => Promise<void>): void {
    this.tail = this.tail
      .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
      .then(() => handle(message))
      .catch((err: unknown) => this.onError(err, message));
  }
}
