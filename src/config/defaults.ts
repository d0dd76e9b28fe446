/**
 * The embedded configuration: what `npm start` runs with when no file is
 * given. Ports, paths and timeouts are Janus's own defaults so existing client
 * configurations work unchanged.
 */
export interface FerryConfig {
  general: {
    server_name: string;
    /** Seconds; 0 disables (Janus DEFAULT_SESSION_TIMEOUT = 60). */
    session_timeout: number;
    /** Seconds a session survives its WebSocket awaiting `claim`; 0 = end at once. */
    reclaim_session_timeout: number;
    /** Reported in server_info; queued-candidate expiry belongs to the WebRTC layer. */
    candidates_timeout: number;
    accept_new_sessions: boolean;
  };
  auth: {
    api_secret: string | null;
    token_auth: boolean;
    /** Non-null = signed tokens (HMAC-SHA1) instead of stored ones. */
    token_auth_secret: string | null;
    /** Required on Admin requests except info/ping; null disables the check. */
    admin_secret: string | null;
  };
  http: { enabled: boolean; bind: string; port: number; base_path: string; allow_origin: string | null; long_poll_keepalive: number };
  websocket: { enabled: boolean; bind: string; port: number };
  admin_http: { enabled: boolean; bind: string; port: number; base_path: string };
  admin_websocket: { enabled: boolean; bind: string; port: number };
  /**
   * Demo pages (EchoTest, VideoRoom, SIP, Admin) on the Janus HTTP listener,
   * built on janus.js from the `janus-gateway` package. Off for deployments
   * that expose only the API.
   */
  demos: { enabled: boolean; path: string };
  /**
   * WHIP (RFC 9725) and WHEP endpoints on the Janus HTTP listener: `<path>/endpoint/<room>`
   * publishes into a VideoRoom room, `<whep_path>/endpoint/<id>` plays a Streaming mountpoint
   * (or a room). Bearer tokens are the room's or mountpoint's secret.
   */
  whip: { enabled: boolean; path: string; whep_path: string };
  /** Prometheus endpoint, served on the Admin HTTP listener (or the Janus one if Admin HTTP is off). */
  metrics: { enabled: boolean; path: string };
  limits: {
    body_bytes: number;
    json_depth: number;
    max_sessions: number;
    max_handles_per_session: number;
    max_queued_events: number;
    max_pending_candidates: number;
  };
  /**
   * Per-client quotas (README "Quotas"). A client is its remote address (IPv6 by /64), or its
   * token when token auth is on. 0 turns a limit off.
   */
  quotas: {
    /** Sessions one client may create per second on average (token bucket refill). */
    session_create_rate: number;
    /** Sessions one client may create back to back before the rate applies (bucket size). */
    session_create_burst: number;
    /** Sessions one client may hold at once. */
    sessions_per_client: number;
    /** PeerConnections (each one UDP port lease) one client may hold at once. */
    peer_connections_per_client: number;
    /** VideoRoom rooms created through one client's sessions that exist at once. */
    rooms_per_client: number;
    /** VideoRoom rooms created through the client API, over all clients (Admin message_plugin is exempt). */
    max_rooms: number;
  };
  log: { level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent' };
  videoroom: {
    /** JSON file for permanent rooms; null: `permanent: true` is refused. */
    rooms_file: string | null;
    /** When set, `create` needs it (Janus `admin_key`). */
    admin_key: string | null;
    /** Janus `lock_rtp_forward`. */
    lock_rtp_forward: boolean;
    /** Creates Janus's sample room 1234 ("Demo Room") at start. */
    demo_room: boolean;
    /** Longest room `description` (create, edit) in characters; longer is refused with 430. */
    max_description_length: number;
  };
  streaming: {
    /** JSON file for permanent mountpoints (secrets and PINs in plain text, written 0600); null: `permanent: true` is refused. */
    mountpoints_file: string | null;
    /** When set, `create` needs it (Janus `admin_key`). */
    admin_key: string | null;
    /**
     * Creates Janus's sample mountpoint 1 at start: Opus (pt 111) and VP8 (pt 100) over RTP on two
     * ports of the media range (`info` on id 1 shows which).
     */
    demo_mountpoint: boolean;
  };
  /**
   * Recordings (Janus `.mjr` files, converted with Janus's `janus-pp-rec`): where VideoRoom,
   * EchoTest and SIP recordings go when the request names no folder (VideoRoom `rec_dir`, or
   * a `filename` with a folder). Created when first needed.
   */
  recordings: {
    dir: string;
    /**
     * Folders no recording may be written under, whatever a request's `rec_dir` or `filename`
     * says (comma-separated; Janus's `protected_folders`).
     */
    protected_folders: string;
  };
  textroom: {
    /** JSON file for permanent TextRoom rooms; null: `permanent: true` is refused. */
    rooms_file: string | null;
    /** When set, `create` needs it (Janus `admin_key`), and `list` with it shows private rooms. */
    admin_key: string | null;
    /** Creates Janus's sample room 1234 ("Demo Room", secret "adminpwd") at start. */
    demo_room: boolean;
  };
  sip: {
    /** Address SIP account sockets bind to and advertise; null = the first media candidate address. */
    bind: string | null;
    /** c= address of the SIP-side SDP; null = the bind address. */
    sdp_ip: string | null;
    register_ttl: number;
    user_agent: string;
    /** The SIP plugin's own RTP port range (Janus sip.jcfg rtp_port_range); null = lease from the media range. */
    rtp_port_min: number | null;
    rtp_port_max: number | null;
    /** Seconds between keep-alives to a registrar (Janus keepalive_interval): CRLF on TCP/TLS, OPTIONS on UDP; 0 = off. */
    keepalive_interval: number;
    /** PEM certificate and key of SIP over TLS (sips:, transport=tls); null = no TLS. */
    tls_cert: string | null;
    tls_key: string | null;
    /** PEM CA file trusted for TLS peers beyond the system's; null = the system's only. */
    tls_ca: string | null;
  };
  media: {
    /**
     * Native media threads: 'auto' = one per CPU this process may run on (sched_getaffinity),
     * or a number. Any output may be fed by a source on any thread.
     */
    workers: number | 'auto';
    /** Pin media thread i to the i-th CPU this process may run on. */
    pin_threads: boolean;
    /**
     * How endpoints are spread over media threads: 'load' (measured packets/s; a room stays on
     * few threads while they have headroom) or 'round-robin' (every room spans every thread).
     */
    placement: 'load' | 'round-robin';
    /**
     * Send-side bandwidth estimation toward subscribers: ferry offers transport-wide sequence
     * numbers, reads the receiver's transport-cc feedback, and picks each subscriber's simulcast
     * and temporal layers within the estimate (its `substream`/`temporal` are the maximum).
     */
    bandwidth_estimation: boolean;
    /** Where a subscriber's estimate starts, and the most it may reach (bits/s). */
    bwe_start_bitrate: number;
    bwe_max_bitrate: number;
    /** Address media sockets bind to. */
    bind: string;
    /**
     * ICE-TCP (RFC 6544): each PeerConnection also listens on TCP on its UDP port and offers a
     * passive TCP candidate, for clients whose UDP is blocked (not in single-port mode).
     */
    ice_tcp: boolean;
    /**
     * IPv6: media sockets are dual-stack (bind `::` when `bind` is 0.0.0.0) and the host's
     * global IPv6 addresses are announced as candidates beside its IPv4 ones.
     */
    ipv6: boolean;
    /** UDP range the WebRTC and RTP port pool leases from (Janus's rtp_port_range default). */
    rtp_port_min: number;
    rtp_port_max: number;
    /** Host candidates announced in SDP, comma-separated; null = this host's non-internal IPv4 addresses. */
    candidate_addresses: string | null;
    /**
     * Public addresses to announce to WebRTC peers instead of the host's own (Janus
     * `nat_1_1_mapping`), comma-separated: a cloud VM behind 1:1 NAT knows only its private
     * address. With `keep_private_host` the private candidates are announced too, after them.
     */
    nat_1_1_mapping: string | null;
    keep_private_host: boolean;
    /**
     * Single-port mode: every PeerConnection of a media thread shares one UDP port, told apart
     * by ICE ufrag and then by the peer's address (RFC 8445). One port per media thread
     * (comma-separated), or one base port (thread i takes base + i); null: a port per
     * PeerConnection from the rtp range. Plain RTP legs (SIP, forwarders) keep their own ports.
     */
    single_port: string | null;
    /** Seconds for ICE + DTLS to complete after negotiation before the PeerConnection hangs up. */
    connect_timeout: number;
    /** Seconds without an ICE consent check before hangup (RFC 7675 §5.1: 30). */
    consent_timeout: number;
    /** DTLS-SRTP profiles accepted, most preferred first (comma-separated). */
    srtp_profiles: string;
    /** Most m-lines a client's offer may have (one PeerConnection); more is refused with 465. */
    max_mlines: number;
    /** Data channels (SCTP over DTLS, RFC 8831): false answers every m=application rejected. */
    data_channels: boolean;
    /**
     * The a=max-message-size ferry announces (RFC 8841 §6): the largest data-channel message it
     * takes. A client sending more breaks the protocol and its association is aborted.
     */
    datachannel_max_message_size: number;
    /** Bytes ferry queues toward one client's data channels before refusing (and counting) more. */
    datachannel_send_buffer: number;
  };
  /**
   * Event handlers in Janus's JSON event format (README "Event handlers"): to an HTTP collector
   * (POSTs) and/or an MQTT broker, each with its own filter of event types and its own bounded
   * backlog for when the other end is away. A handler is on when its URL is set.
   */
  events: {
    /** Master switch: off, no handler runs and nothing is built for them. */
    enabled: boolean;
    /** Seconds between media stats events for each m-line of each PeerConnection; 0: none. */
    stats_period: number;
    /** Collector URL (http:// or https://); null: no HTTP handler. */
    http_url: string | null;
    /** Janus's filter: all, none, or type names (sessions,handles,jsep,webrtc,media,plugins,transports,core,external). */
    http_events: string;
    /** One JSON array per POST (true), or one event per POST. */
    http_grouping: boolean;
    /** Events kept while the collector is away; more are dropped and counted. */
    http_max_backlog: number;
    /** HTTP basic authentication, when the collector wants it. */
    http_username: string | null;
    http_password: string | null;
    /** Broker URL (mqtt://host[:port]); null: no MQTT handler. */
    mqtt_url: string | null;
    mqtt_topic: string;
    mqtt_events: string;
    mqtt_grouping: boolean;
    mqtt_max_backlog: number;
    mqtt_username: string | null;
    mqtt_password: string | null;
    /** null: ferry-<random>, new each start. */
    mqtt_client_id: string | null;
  };
  /**
   * A ferry cluster (README "Cluster"): nodes share one VideoRoom room directory in Redis; any
   * node answers for any room and cascades the feeds its subscribers need from the publishers'
   * nodes. Off (ferry stands alone) while redis_url is null.
   */
  cluster: {
    /** redis://[user:password@]host:port[/db]; null: no cluster. */
    redis_url: string | null;
    /** This node's name in the directory (unique in the cluster); null: <hostname>-<random>. */
    node_id: string | null;
    /** The address other nodes send cascaded media to; null: the first media candidate address. */
    advertise: string | null;
    /**
     * Seconds a room lease and a node heartbeat live without renewal: a node silent this long is
     * gone, its rooms are taken over and its feeds unpublished. Renewed every third of it.
     */
    lease_ttl: number;
  };
}

export const DEFAULT_CONFIG: FerryConfig = {
  general: {
    server_name: 'ferry',
    session_timeout: 60,
    reclaim_session_timeout: 0,
    candidates_timeout: 45,
    accept_new_sessions: true,
  },
  auth: {
    api_secret: null,
    token_auth: false,
    token_auth_secret: null,
    // Janus's sample value; change it for any deployment reachable by others.
    admin_secret: 'janusoverlord',
  },
  http: { enabled: true, bind: '0.0.0.0', port: 8088, base_path: '/janus', allow_origin: null, long_poll_keepalive: 30 },
  websocket: { enabled: true, bind: '0.0.0.0', port: 8188 },
  // Admin listens on loopback only unless configured otherwise.
  admin_http: { enabled: true, bind: '127.0.0.1', port: 7088, base_path: '/admin' },
  admin_websocket: { enabled: true, bind: '127.0.0.1', port: 7188 },
  demos: { enabled: true, path: '/demos' },
  whip: { enabled: true, path: '/whip', whep_path: '/whep' },
  metrics: { enabled: true, path: '/metrics' },
  limits: {
    body_bytes: 256 * 1024,
    json_depth: 64,
    max_sessions: 100_000,
    max_handles_per_session: 256,
    max_queued_events: 1000,
    max_pending_candidates: 256,
  },
  // Why these values: README "Quotas". One client holds at most 200 of the default 20,001 media
  // ports (1 %), 100 sessions and 20 rooms; a page load of janus.js creates one session.
  quotas: {
    session_create_rate: 10,
    session_create_burst: 50,
    sessions_per_client: 100,
    peer_connections_per_client: 200,
    rooms_per_client: 20,
    max_rooms: 1000,
  },
  log: { level: 'info' },
  videoroom: { rooms_file: null, admin_key: null, lock_rtp_forward: false, demo_room: true, max_description_length: 256 },
  textroom: { rooms_file: null, admin_key: null, demo_room: true },
  // Janus's default protected folders (janus.jcfg).
  recordings: { dir: 'recordings', protected_folders: '/bin,/boot,/dev,/etc,/initrd,/lib,/lib32,/lib64,/proc,/sbin,/sys,/usr,/var' },
  streaming: { mountpoints_file: null, admin_key: null, demo_mountpoint: true },
  sip: {
    bind: null, sdp_ip: null, register_ttl: 3600, user_agent: 'ferry', rtp_port_min: 10000, rtp_port_max: 19999,
    keepalive_interval: 120, tls_cert: null, tls_key: null, tls_ca: null,
  },
  media: {
    workers: 'auto',
    pin_threads: false,
    placement: 'load',
    bandwidth_estimation: true,
    bwe_start_bitrate: 1_000_000,
    bwe_max_bitrate: 20_000_000,
    bind: '0.0.0.0',
    ipv6: false,
    ice_tcp: false,
    rtp_port_min: 20000,
    rtp_port_max: 40000,
    candidate_addresses: null,
    nat_1_1_mapping: null,
    keep_private_host: false,
    single_port: null,
    connect_timeout: 30,
    consent_timeout: 30,
    srtp_profiles: 'AEAD_AES_128_GCM,AES_CM_128_HMAC_SHA1_80',
    max_mlines: 32,
    data_channels: true,
    // Chrome's own value: what browsers send each other without fragmenting messages themselves.
    datachannel_max_message_size: 262_144,
    datachannel_send_buffer: 4 * 1024 * 1024,
  },
  // Janus's defaults: stats every 5 s, every type, grouped.
  events: {
    enabled: false,
    stats_period: 5,
    http_url: null,
    http_events: 'all',
    http_grouping: true,
    http_max_backlog: 10_000,
    http_username: null,
    http_password: null,
    mqtt_url: null,
    mqtt_topic: 'ferry/events',
    mqtt_events: 'all',
    mqtt_grouping: true,
    mqtt_max_backlog: 10_000,
    mqtt_username: null,
    mqtt_password: null,
    mqtt_client_id: null,
  },
  cluster: { redis_url: null, node_id: null, advertise: null, lease_ttl: 10 },
};
