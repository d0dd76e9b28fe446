/**
 * A node's heartbeat and its view of the others. Every tick the node writes
 * `ferry:node:<id>` (advertised address and load, PX lease TTL) and reads every node key: a
 * node whose key is gone has stopped (it deleted it) or is dead (it expired). A node heard
 * from otherwise (an RPC) counts as live for one TTL, so one that just started is not taken
 * for dead before the next read sees its key.
 */
import type { JsonObject } from '../core/Json.js';
import type { ClusterDirectory } from './ClusterDirectory.js';

/** What a node reports of its load in its heartbeat (the others read it, operators too). */
export interface NodeLoad {
  sessions: number;
  ports_free: number | null;
  /** Packets per second over all media threads, and the busiest thread's share of the last second. */
  media_load_pps: number;
  media_busy_max: number;
}

export interface NodeInfo {
  node_id: string;
  advertise: string;
  started: number;
  load: NodeLoad;
}

export class NodeHeartbeat {
  /** Live nodes, this one included, as last read. */
  nodes = new Map<string, NodeInfo>();
  private readonly heardAt = new Map<string, number>();
  private readonly started = Date.now();

  constructor(
    private readonly directory: ClusterDirectory,
    private readonly advertise: string,
    private readonly load: () => NodeLoad,
  ) {}

  /** Writes this node's heartbeat, then reads every node's. */
  async beat(): Promise<void> {
    const info: NodeInfo = { node_id: this.directory.nodeId, advertise: this.advertise, started: this.started, load: this.load() };
    await this.directory.heartbeat(info as unknown as JsonObject);
    const read = await this.directory.nodes();
    const nodes = new Map<string, NodeInfo>();
    for (const [id, value] of read) {
      if (typeof value['advertise'] === 'string') nodes.set(id, value as unknown as NodeInfo);
    }
    this.nodes = nodes;
    for (const [node, at] of this.heardAt) if (Date.now() - at >= this.directory.leaseTtlMs) this.heardAt.delete(node);
  }

  /** Another node made itself heard (an RPC): live until its key shows up or one TTL passes. */
  heard(node: string): void {
    this.heardAt.set(node, Date.now());
  }

  isLive(node: string): boolean {
    if (this.nodes.has(node)) return true;
    const at = this.heardAt.get(node);
    return at !== undefined && Date.now() - at < this.directory.leaseTtlMs;
  }

  /** Forgets a node that said it left. */
  left(node: string): void {
    this.nodes.delete(node);
    this.heardAt.delete(node);
  }

  /**
   * Which live node should take over a room without owner: the one with the fewest sessions,
   * then the least media load, then the smallest id, so takeovers spread and do not race.
   */
  preferredNode(): string {
    let best: NodeInfo | null = null;
    for (const n of this.nodes.values()) {
      if (!best) best = n;
      else if (n.load.sessions !== best.load.sessions) best = n.load.sessions < best.load.sessions ? n : best;
      else if (n.load.media_load_pps !== best.load.media_load_pps) best = n.load.media_load_pps < best.load.media_load_pps ? n : best;
      else if (n.node_id < best.node_id) best = n;
    }
    return best?.node_id ?? this.directory.nodeId;
  }
}
