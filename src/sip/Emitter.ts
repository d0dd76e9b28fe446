/**
 * A tiny typed event emitter. The SIP stack's objects report through it so
 * that listener signatures are checked by the compiler; a throwing listener
 * is isolated (reported via `onListenerError`) so one bad listener cannot
 * break protocol processing of a message already half-handled.
 */
export type EventMap = Record<string, unknown[]>;

export class Emitter<E extends EventMap> {
  private readonly listeners = new Map<keyof E, Array<(...args: unknown[]) => void>>();
  onListenerError: (err: unknown) => void = () => {};
  /** Type-only: lets helpers infer a subclass's event map (`EventsOf<T>`); never set at run time. */
  declare readonly eventTypes?: E;

  on<K extends keyof E>(event: K, fn: (...args: E[K]) => void): this {
    const list = this.listeners.get(event) ?? [];
    list.push(fn as unknown as (...args: unknown[]) => void);
    this.listeners.set(event, list);
    return this;
  }

  once<K extends keyof E>(event: K, fn: (...args: E[K]) => void): this {
    const wrapper = (...args: E[K]) => {
      this.off(event, wrapper);
      fn(...args);
    };
    return this.on(event, wrapper);
  }

  off<K extends keyof E>(event: K, fn: (...args: E[K]) => void): this {
    const list = this.listeners.get(event);
    if (list) {
      const i = list.indexOf(fn as unknown as (...args: unknown[]) => void);
      if (i >= 0) list.splice(i, 1);
    }
    return this;
  }

  listenerCount<K extends keyof E>(event: K): number {
    return this.listeners.get(event)?.length ?? 0;
  }

  emit<K extends keyof E>(event: K, ...args: E[K]): boolean {
    const list = this.listeners.get(event);
    if (!list || list.length === 0) return false;
    for (const fn of [...list]) {
      try {
        (fn as unknown as (...a: E[K]) => void)(...args);
      } catch (err) {
        this.onListenerError(err);
      }
    }
    return true;
  }
}

/** The event map of an emitter type (for generic helpers such as test waits). */
export type EventsOf<T> = T extends { eventTypes?: infer E } ? (E extends EventMap ? E : never) : never;
