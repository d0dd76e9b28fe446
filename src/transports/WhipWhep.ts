/**
 * WHIP (RFC 9725) and WHEP on the Janus HTTP listener:
 *
 *   POST   <whip>/endpoint/<room>         SDP offer → 201, SDP answer, Location: <whip>/resource/<id>
 *   POST   <whep>/endpoint/<id>           the same for a player: a Streaming mountpoint <id>, else VideoRoom room <id>
 *   PATCH  <whip|whep>/resource/<id>      application/trickle-ice-sdpfrag (RFC 8840): candidates (204), ICE restart (200)
 *   DELETE <whip|whep>/resource/<id>      ends the session (200)
 *   OPTIONS on both                       CORS preflight, Accept-Post / Accept-Patch
 *
 * A resource is a Janus session of ferry's own (InternalClient) with one
 * handle: a WHIP publisher is a VideoRoom publisher (janus.js subscribers see
 * it like any other), a WHEP player is a Streaming viewer or a VideoRoom
 * subscriber. Nothing here touches media: the plugins and the core do, as for
 * any client. A resource whose PeerConnection ends by itself (ICE consent
 * lost, never connected: media.consent_timeout / connect_timeout) ends its
 * session through the core's one ending, so a client that vanishes without
 * DELETE leaves nothing behind.
 *
 * `Authorization: Bearer <token>` (RFC 6750): the token is the room's or
 * mountpoint's secret (checked with a request the plugin guards by that
 * secret), and is also given as its PIN. Where the room or mountpoint has no
 * secret and the Janus API requires `api_secret` or a token, the bearer token
 * must be one of those.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { isJanusError } from '../core/JanusError.js';
import type { JsonObject } from '../core/Json.js';
import type { Jsep, TrickleCandidate } from '../core/Media.js';
import type { PluginRegistry } from '../core/PluginRegistry.js';
import { clientKey } from '../core/Quotas.js';
import type { SessionRegistry } from '../core/SessionRegistry.js';
import type { RequestAuth } from '../core/auth/RequestAuth.js';
import { InternalClient, InternalSink } from './InternalClient.js';

const VIDEOROOM = 'janus.plugin.videoroom';
const STREAMING = 'janus.plugin.streaming';
const SDP = 'application/sdp';
const SDPFRAG = 'application/trickle-ice-sdpfrag';
/** Headers a cross-origin page must be able to read from our answers (Fetch CORS). */
const EXPOSED = 'Location, ETag, Link, Accept-Patch, Accept-Post';

export interface WhipWhepOptions {
  registry: SessionRegistry;
  plugins: PluginRegistry;
  auth: RequestAuth;
  logger: Logger;
  /** URL prefixes, e.g. `/whip` and `/whep`. */
  whipPath: string;
  whepPath: string;
}

/** An HTTP refusal with its status and a plain-text reason. */
class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

type ResourceKind = 'whip' | 'whep-mountpoint' | 'whep-room';

interface Resource {
  id: string;
  kind: ResourceKind;
  client: InternalClient;
  /** RFC 9725 §4.3.1: changes with every ICE restart. */
  etag: string;
  /** The last offer applied (an ICE restart re-sends it with the new credentials). */
  offer: string;
  target: number;
}

/** What the Admin API and tests read: open resources by kind. */
export interface WhipWhepStatus {
  whip: number;
  whep: number;
}

export class WhipWhep {
  private readonly resources = new Map<string, Resource>();
  private readonly whipSink = new InternalSink('ferry.transport.whip');
  private readonly whepSink = new InternalSink('ferry.transport.whep');

  constructor(private readonly options: WhipWhepOptions) {}

  status(): WhipWhepStatus {
    let whip = 0;
    for (const r of this.resources.values()) if (r.kind === 'whip') whip++;
    return { whip, whep: this.resources.size - whip };
  }

  register(app: FastifyInstance): void {
    const { whipPath, whepPath } = this.options;
    for (const [base, kind] of [[whipPath, 'whip'], [whepPath, 'whep']] as const) {
      const endpoint = `${base}/endpoint/:id`;
      const resource = `${base}/resource/:rid`;
      app.options(endpoint, async (_req, reply) => this.preflight(reply, 'POST, OPTIONS').header('Accept-Post', SDP).code(204).send());
      app.post(endpoint, async (req: FastifyRequest<{ Params: { id: string } }>, reply) => this.answer(reply, () => this.create(kind, req, reply)));
      app.route({ method: ['GET', 'PUT', 'PATCH', 'DELETE'], url: endpoint, handler: async (_req, reply) => this.fail(reply, new HttpError(405, 'Method not allowed', { Allow: 'POST, OPTIONS' })) });
      app.options(resource, async (_req, reply) => this.preflight(reply, 'PATCH, DELETE, OPTIONS').header('Accept-Patch', SDPFRAG).code(204).send());
      app.patch(resource, async (req: FastifyRequest<{ Params: { rid: string } }>, reply) => this.answer(reply, () => this.patch(req, reply)));
      app.delete(resource, async (req: FastifyRequest<{ Params: { rid: string } }>, reply) => this.answer(reply, async () => {
        const r = this.resource(req.params.rid);
        this.end(r, 'destroy');
        return reply.code(200).send();
      }));
      app.route({ method: ['GET', 'PUT', 'POST'], url: resource, handler: async (_req, reply) => this.fail(reply, new HttpError(405, 'Method not allowed', { Allow: 'PATCH, DELETE, OPTIONS' })) });
    }
  }

  /** Ends every resource (shutdown; the registry ends the sessions anyway). */
  close(): void {
    for (const r of [...this.resources.values()]) this.end(r, 'shutdown');
  }

  private preflight(reply: FastifyReply, methods: string): FastifyReply {
    return reply
      .header('Access-Control-Allow-Methods', methods)
      .header('Access-Control-Allow-Headers', 'Content-Type, Authorization, If-Match')
      .header('Access-Control-Expose-Headers', EXPOSED);
  }

  private async answer(reply: FastifyReply, run: () => Promise<FastifyReply>): Promise<FastifyReply> {
    reply.header('Access-Control-Expose-Headers', EXPOSED);
    try {
      return await run();
    } catch (err) {
      return this.fail(reply, err);
    }
  }

  private fail(reply: FastifyReply, err: unknown): FastifyReply {
    const http = err instanceof HttpError ? err : isJanusError(err) ? fromJanusError(err.code, err.message) : null;
    if (!http) {
      this.options.logger.error({ err }, 'whip/whep: request failed');
      return reply.code(500).type('text/plain').send('Internal error');
    }
    for (const [k, v] of Object.entries(http.headers)) reply.header(k, v);
    return reply.code(http.status).type('text/plain').send(http.message);
  }

  private resource(rid: string): Resource {
    const r = this.resources.get(rid);
    if (!r || r.client.ended) throw new HttpError(404, 'No such resource');
    return r;
  }

  /** The one ending of a resource: DELETE, its media gone, shutdown. Idempotent. */
  private end(r: Resource, reason: 'destroy' | 'timeout' | 'shutdown'): void {
    if (this.resources.get(r.id) !== r) return;
    this.resources.delete(r.id);
    r.client.end(reason);
    this.options.logger.debug({ resource: r.id, kind: r.kind, reason }, 'whip/whep: resource ended');
  }

  // ---- POST: a new publisher or player ------------------------------------------------------------

  private async create(kind: 'whip' | 'whep', req: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply): Promise<FastifyReply> {
    const target = /^\d{1,15}$/.test(req.params.id) ? Number(req.params.id) : 0;
    if (!target) throw new HttpError(404, `No such ${kind === 'whip' ? 'room' : 'mountpoint or room'}`);
    const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== SDP) throw new HttpError(415, `The offer must be ${SDP}`, { 'Accept-Post': SDP });
    const sdp = typeof req.body === 'string' ? req.body : '';
    checkOffer(sdp);
    const bearer = bearerOf(req);
    const client = clientKey(req.socket.remoteAddress, null);
    let resourceKind: ResourceKind = 'whip';
    let session: InternalClient;
    if (kind === 'whip') session = this.open(this.whipSink, client, VIDEOROOM, 'whip');
    else if (this.options.plugins.get(STREAMING)) {
      // A mountpoint of that id, else a room of that id.
      session = this.open(this.whepSink, client, STREAMING, 'whep');
      const info = await session.request({ request: 'info', id: target }).catch((err: unknown) => {
        session.end('destroy');
        throw err;
      });
      resourceKind = info.data['streaming'] === 'info' ? 'whep-mountpoint' : 'whep-room';
      if (resourceKind === 'whep-room') {
        session.end('destroy');
        session = this.open(this.whepSink, client, VIDEOROOM, 'whep');
      }
    } else {
      resourceKind = 'whep-room';
      session = this.open(this.whepSink, client, VIDEOROOM, 'whep');
    }
    let answer: Jsep;
    try {
      const offer: Jsep = { type: 'offer', sdp };
      if (resourceKind === 'whip') answer = await this.publish(session, target, bearer, offer, req);
      else if (resourceKind === 'whep-mountpoint') answer = await this.watchMountpoint(session, target, bearer, offer);
      else answer = await this.subscribeRoom(session, target, bearer, offer, req);
    } catch (err) {
      session.end('destroy');
      throw err;
    }
    const r: Resource = { id: randomBytes(12).toString('hex'), kind: resourceKind, client: session, etag: newEtag(), offer: sdp, target };
    this.resources.set(r.id, r);
    session.onEvent((event) => {
      // The PeerConnection ended without a DELETE (ICE consent lost, never connected, room gone):
      // the resource ends through the session's one ending.
      if ((event['janus'] === 'hangup' || event['janus'] === 'detached') && event['sender'] === session.handle.id) this.end(r, 'timeout');
    });
    if (session.handle.state === 'idle' || session.ended) {
      this.end(r, 'timeout');
      throw new HttpError(500, 'The PeerConnection ended before it was set up');
    }
    const base = kind === 'whip' ? this.options.whipPath : this.options.whepPath;
    this.options.logger.info({ resource: r.id, kind: resourceKind, target }, 'whip/whep: resource created');
    return reply
      .code(201)
      .header('Location', `${base}/resource/${r.id}`)
      .header('ETag', r.etag)
      .header('Accept-Patch', SDPFRAG)
      .type(SDP)
      .send(answer.sdp);
  }

  private open(sink: InternalSink, client: string, plugin: string, what: string): InternalClient {
    if (!this.options.plugins.get(plugin)) throw new HttpError(404, `${plugin} is not available`);
    return InternalClient.open({ registry: this.options.registry, plugins: this.options.plugins, sink, client, plugin, opaqueId: `ferry-${what}` });
  }

  /**
   * The bearer token against a secret a plugin guards: `guarded(undefined)` tells whether
   * there is a secret (false: refused for lack of it), `guarded(token)` whether the token is it.
   * With no secret, the Janus API's own auth applies when it has one.
   */
  private async authorize(bearer: string | undefined, guarded: (secret: string | undefined) => Promise<boolean>): Promise<void> {
    if (await guarded(undefined)) {
      if (!this.options.auth.checkApi(bearer, bearer)) throw new HttpError(401, 'Unauthorized: a bearer token is needed', { 'WWW-Authenticate': 'Bearer' });
      return;
    }
    if (bearer === undefined) throw new HttpError(401, 'Unauthorized: this needs the secret as a bearer token', { 'WWW-Authenticate': 'Bearer' });
    if (!(await guarded(bearer))) throw new HttpError(403, 'Forbidden: wrong bearer token', { 'WWW-Authenticate': 'Bearer error="invalid_token"' });
  }

  /** Is `secret` the room's (or is there none)? 404 when there is no such room. */
  private roomGuard(session: InternalClient, room: number): (secret: string | undefined) => Promise<boolean> {
    return async (secret) => {
      const r = await session.request({ request: 'listforwarders', room, ...(secret !== undefined ? { secret } : {}) });
      const code = r.data['error_code'];
      if (code === 426) throw new HttpError(404, `No such room ${room}`);
      if (code === undefined) return true;
      if (code === 429 || code === 433 || code === 430) return false;
      throw pluginError(r.data);
    };
  }

  private async publish(session: InternalClient, room: number, bearer: string | undefined, offer: Jsep, req: FastifyRequest): Promise<Jsep> {
    await this.authorize(bearer, this.roomGuard(session, room));
    const body: JsonObject = { request: 'joinandconfigure', ptype: 'publisher', room, display: displayOf(req) ?? 'WHIP publisher' };
    if (bearer !== undefined) body['pin'] = bearer;
    const r = await session.request(body, offer);
    if (r.data['error_code'] !== undefined) throw pluginError(r.data);
    if (!r.jsep || r.jsep.type !== 'answer') throw new HttpError(500, 'The room gave no answer');
    return r.jsep;
  }

  private async watchMountpoint(session: InternalClient, id: number, bearer: string | undefined, offer: Jsep): Promise<Jsep> {
    await this.authorize(bearer, async (secret) => {
      const r = await session.request({ request: 'info', id, ...(secret !== undefined ? { secret } : {}) });
      if (r.data['error_code'] !== undefined) throw pluginError(r.data);
      // Janus shows privacy (and ports) only to who proved the secret, or when there is none.
      return (r.data['info'] as JsonObject | undefined)?.['is_private'] !== undefined;
    });
    const body: JsonObject = { request: 'watch', id };
    if (bearer !== undefined) body['pin'] = bearer;
    const r = await session.request(body, offer);
    if (r.data['error_code'] !== undefined) throw pluginError(r.data);
    if (!r.jsep || r.jsep.type !== 'answer') throw new HttpError(500, 'The mountpoint gave no answer');
    return r.jsep;
  }

  /** A WHEP player on a room: every stream of its publishers (or of `?feed=`), in one PeerConnection. */
  private async subscribeRoom(session: InternalClient, room: number, bearer: string | undefined, offer: Jsep, req: FastifyRequest): Promise<Jsep> {
    await this.authorize(bearer, this.roomGuard(session, room));
    const feedParam = (req.query as Record<string, string | undefined>)['feed'];
    let feeds: number[];
    if (feedParam !== undefined) {
      if (!/^\d{1,15}$/.test(feedParam)) throw new HttpError(400, 'feed must be a publisher id');
      feeds = [Number(feedParam)];
    } else {
      const participants = await session.request({ request: 'listparticipants', room });
      if (participants.data['error_code'] !== undefined) throw pluginError(participants.data);
      const list = (participants.data['participants'] ?? []) as JsonObject[];
      feeds = list.filter((p) => p['publisher'] === true).map((p) => p['id'] as number);
    }
    if (feeds.length === 0) throw new HttpError(404, `Nobody publishes in room ${room}`);
    const body: JsonObject = { request: 'join', ptype: 'subscriber', room, streams: feeds.map((feed) => ({ feed })) };
    if (bearer !== undefined) body['pin'] = bearer;
    const r = await session.request(body, offer);
    if (r.data['error_code'] !== undefined) throw pluginError(r.data);
    if (!r.jsep || r.jsep.type !== 'answer') throw new HttpError(500, 'The room gave no answer');
    return r.jsep;
  }

  // ---- PATCH: trickle and ICE restart (RFC 9725 §4.3, RFC 8840) -----------------------------------

  private async patch(req: FastifyRequest<{ Params: { rid: string } }>, reply: FastifyReply): Promise<FastifyReply> {
    const r = this.resource(req.params.rid);
    const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== SDPFRAG) throw new HttpError(415, `A PATCH carries ${SDPFRAG}`, { 'Accept-Patch': SDPFRAG });
    const ifMatch = req.headers['if-match'];
    if (ifMatch !== undefined && ifMatch !== '*' && ifMatch !== r.etag) throw new HttpError(412, 'If-Match does not name this session');
    const frag = parseSdpFrag(typeof req.body === 'string' ? req.body : '');
    const current = iceCredentials(r.offer);
    const restart = frag.ufrag !== undefined && frag.pwd !== undefined && (frag.ufrag !== current.ufrag || frag.pwd !== current.pwd);
    if (!restart) {
      if (frag.candidates.length > 0) r.client.trickle(frag.candidates);
      return reply.code(204).send();
    }
    // ICE restart: the last offer again with the client's new credentials (RFC 8445 §9).
    if (r.kind === 'whep-room') throw new HttpError(405, 'ICE restarts are not supported for room players (POST again)');
    const offer = r.offer.replace(/^a=ice-ufrag:.*$/gm, `a=ice-ufrag:${frag.ufrag}`).replace(/^a=ice-pwd:.*$/gm, `a=ice-pwd:${frag.pwd}`);
    const body: JsonObject = r.kind === 'whip' ? { request: 'configure' } : { request: 'watch', id: r.target };
    const answer = await r.client.request(body, { type: 'offer', sdp: offer });
    if (answer.data['error_code'] !== undefined) throw pluginError(answer.data);
    if (!answer.jsep) throw new HttpError(500, 'No answer to the ICE restart');
    r.offer = offer;
    r.etag = newEtag();
    if (frag.candidates.length > 0) r.client.trickle(frag.candidates);
    const local = iceCredentials(answer.jsep.sdp);
    const lines = [`a=ice-ufrag:${local.ufrag ?? ''}`, `a=ice-pwd:${local.pwd ?? ''}`];
    for (const m of answer.jsep.sdp.split(/\r?\n/).filter((l) => l.startsWith('a=candidate:'))) if (!lines.includes(m)) lines.push(m);
    return reply.code(200).header('ETag', r.etag).type(SDPFRAG).send(`${lines.join('\r\n')}\r\n`);
  }
}

/** RFC 8866 §5: an offer at least starts with v=0 and has an origin, a session name and a media line. */
function checkOffer(sdp: string): void {
  if (sdp.length === 0) throw new HttpError(400, 'Empty offer');
  const lines = sdp.split(/\r?\n/);
  if (lines[0] !== 'v=0' || !lines.some((l) => l.startsWith('o=')) || !lines.some((l) => l.startsWith('s='))) throw new HttpError(400, 'The offer is not SDP (RFC 8866: v=0, o=, s=)');
  if (!lines.some((l) => l.startsWith('m='))) throw new HttpError(400, 'The offer has no media');
}

function bearerOf(req: FastifyRequest): string | undefined {
  const header = req.headers['authorization'];
  if (typeof header !== 'string') return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) throw new HttpError(401, 'Authorization must be a Bearer token (RFC 6750)', { 'WWW-Authenticate': 'Bearer' });
  return m[1];
}

function displayOf(req: FastifyRequest): string | undefined {
  const d = (req.query as Record<string, unknown> | undefined)?.['display'];
  return typeof d === 'string' && d.length > 0 && d.length <= 128 ? d : undefined;
}

function newEtag(): string {
  return `"${randomBytes(8).toString('hex')}"`;
}

/** Session-level (or first) ICE credentials of an SDP. */
function iceCredentials(sdp: string): { ufrag?: string; pwd?: string } {
  const ufrag = /^a=ice-ufrag:(\S+)/m.exec(sdp)?.[1];
  const pwd = /^a=ice-pwd:(\S+)/m.exec(sdp)?.[1];
  return { ...(ufrag ? { ufrag } : {}), ...(pwd ? { pwd } : {}) };
}

/** RFC 8840 §9.2: ICE credentials, and candidates under their m-line's mid. */
function parseSdpFrag(text: string): { ufrag?: string; pwd?: string; candidates: TrickleCandidate[] } {
  const out: { ufrag?: string; pwd?: string; candidates: TrickleCandidate[] } = { candidates: [] };
  let mid: string | undefined;
  let index = -1;
  for (const raw of text.split(/\r?\n/).slice(0, 1000)) {
    const line = raw.trim();
    if (line.startsWith('m=')) {
      index++;
      mid = undefined;
    } else if (line.startsWith('a=mid:')) mid = line.slice(6);
    else if (line.startsWith('a=ice-ufrag:')) out.ufrag = line.slice(12);
    else if (line.startsWith('a=ice-pwd:')) out.pwd = line.slice(10);
    else if (line.startsWith('a=candidate:')) {
      const c: TrickleCandidate = { candidate: line.slice(2) };
      if (mid !== undefined) c['sdpMid'] = mid;
      if (index >= 0) c['sdpMLineIndex'] = index;
      out.candidates.push(c);
    } else if (line === 'a=end-of-candidates') out.candidates.push({ completed: true });
  }
  return out;
}

/** A plugin's error event as an HTTP answer: what the client got wrong is 4xx, with the plugin's reason. */
function pluginError(data: JsonObject): HttpError {
  const code = Number(data['error_code']);
  const reason = typeof data['error'] === 'string' ? data['error'] : `error ${code}`;
  switch (code) {
    case 426: // VideoRoom: no such room
    case 428: // VideoRoom: no such feed
    case 455: // Streaming: no such mountpoint
      return new HttpError(404, reason);
    case 429: // VideoRoom: missing element (pin)
    case 453: // Streaming: missing element (pin)
      return new HttpError(401, reason, { 'WWW-Authenticate': 'Bearer' });
    case 433: // VideoRoom: unauthorized
    case 457: // Streaming: unauthorized
      return new HttpError(403, reason);
    case 432: // VideoRoom: publishers full
      return new HttpError(503, reason);
    case 425: // VideoRoom: already joined
    case 460: // Streaming: invalid state
      return new HttpError(409, reason);
    case 499:
    case 470:
      return new HttpError(500, reason);
    default: // invalid SDP, elements, requests
      return new HttpError(400, reason);
  }
}

/** A core refusal as an HTTP answer (bad SDP 465 is the client's; quotas are 429). */
function fromJanusError(code: number, reason: string): HttpError {
  if (code === 465 || code === 464 || code === 456 || code === 467) return new HttpError(400, reason);
  if (code === 472 || (code === 490 && reason.startsWith('Quota exceeded'))) return new HttpError(429, reason);
  if (code === 460) return new HttpError(404, reason);
  return new HttpError(500, reason);
}
