// The event handlers the configuration asks for, on one bus. `events.enabled: false`, or no
// handler URL, gives the empty bus: nothing runs and every emit is a bit test.
import type { Logger } from 'pino';

import type { FerryConfig } from '../config/Config.js';
import { EventBus, NO_EVENTS, type EventHandler } from './EventBus.js';
import { HttpEventHandler } from './HttpEventHandler.js';
import { parseEventMask } from './JanusEvents.js';
import { MqttEventHandler } from './MqttEventHandler.js';

/** Throws ConfigError for a filter naming an unknown type. */
export function createEventBus(config: FerryConfig, logger: Logger): EventBus {
  const c = config.events;
  if (!c.enabled) return NO_EVENTS;
  const log = logger.child({ component: 'events' });
  const handlers: EventHandler[] = [];
  if (c.http_url !== null) {
    handlers.push(
      new HttpEventHandler({
        url: c.http_url,
        mask: parseEventMask(c.http_events, 'events.http_events'),
        grouping: c.http_grouping,
        maxBacklog: c.http_max_backlog,
        username: c.http_username,
        password: c.http_password,
        logger: log,
      }),
    );
  }
  if (c.mqtt_url !== null) {
    handlers.push(
      new MqttEventHandler({
        url: c.mqtt_url,
        topic: c.mqtt_topic,
        mask: parseEventMask(c.mqtt_events, 'events.mqtt_events'),
        grouping: c.mqtt_grouping,
        maxBacklog: c.mqtt_max_backlog,
        username: c.mqtt_username,
        password: c.mqtt_password,
        clientId: c.mqtt_client_id,
        logger: log,
      }),
    );
  }
  if (handlers.length === 0) {
    log.warn('events.enabled is true but neither events.http_url nor events.mqtt_url is set: no event handler runs');
    return NO_EVENTS;
  }
  return new EventBus(config.general.server_name, handlers);
}
