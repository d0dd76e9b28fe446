/**
 * What the VideoRoom asks of a ferry cluster (src/cluster/VideoRoomCluster.ts implements it):
 * room requests through the shared directory, local participants made known to the other
 * nodes, and the cascades that follow what local subscribers consume. Without a cluster the
 * plugin holds none and behaves as a single Janus gateway.
 */
import type { JsonObject } from '../../core/Json.js';
import type { DataMessage } from '../../core/Media.js';
import type { Feed } from './Feed.js';
import type { Room } from './Room.js';

/** Room requests answered through the directory rather than this node's rooms alone. */
export const DIRECTORY_REQUESTS: ReadonlySet<string> = new Set(['create', 'edit', 'destroy', 'exists', 'list', 'allowed']);

/** What happened to a participant that joined on this node. */
export type LocalFeedChange = 'joined' | 'published' | 'unpublished' | 'left';

export interface VideoRoomClusterLink {
  /** Runs a DIRECTORY_REQUESTS request: `local` is the single-node run on this node's rooms. */
  roomRequest(name: string, body: JsonObject, local: () => JsonObject): Promise<JsonObject>;
  /** Makes sure a room the directory knows is known here (before a join names it). */
  ensureRoom(id: number): Promise<void>;
  /** A local participant joined, (un)published or left. */
  localFeed(room: Room, feed: Feed, change: LocalFeedChange): void;
  /** A data-channel message a local publisher published (relayed to the nodes that consume its feed). */
  localData(room: Room, feed: Feed, mid: string, message: DataMessage): void;
  /** Local subscribers of `room` changed what they consume: cascades follow. */
  demandChanged(room: Room): void;
  /** Kicks a participant of another node (through its node). */
  kickRemote(room: Room, feed: Feed): void;
}
