// What the gateway reports of its parts, in Admin `ferry_status` and /metrics.

export type MediaThreadStatus = {
  thread: number;
  /** Packets received and sent per second over the last second. */
  load_pps: number;
  /** Share of the last second the thread worked (0..1). */
  busy: number;
  endpoints: number;
  packets_in: number;
  packets_out: number;
  /** Packets dropped on this thread's endpoints and outputs, every reason together. */
  drops: number;
  /** Packets from other threads waiting in this thread's queue. */
  queue_depth: number;
  /** Packets this thread could not hand to another because that one's queue was full. */
  queue_overflows: number;
  /** The thread wakes itself every millisecond instead of being woken per hand-over (busy hand-over traffic; at most 1 ms added). */
  coalescing_wakes: boolean;
  /** Packets handed to / received from other threads. */
  cross_sent: number;
  cross_received: number;
  /** Sources of other threads this thread receives, and (source, thread) pairs it feeds. */
  remote_feeds: number;
  subscriptions: number;
};
