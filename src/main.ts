#!/usr/bin/env node
/**
 * ferry CLI: `ferry [--config FILE]`. Runs on the embedded defaults when no
 * file is given; FERRY_<SECTION>_<KEY> variables override. SIGTERM/SIGINT stop
 * accepting, end every session, answer every pending long poll (its session's
 * last events, else a keepalive), close WebSockets with 1001 and exit 0.
 */
import { ConfigError, loadConfig, CONFIG_SCHEMA, DEFAULT_CONFIG } from './config/Config.js';
import { createFerry } from './Ferry.js';

const HELP = `ferry — WebRTC media gateway speaking the Janus API

Usage: ferry [--config FILE] [--print-config] [--help]

  -c, --config FILE   YAML or JSON configuration (sections: ${Object.keys(CONFIG_SCHEMA).join(', ')})
      --print-config  print the effective configuration as JSON and exit
  -h, --help          show this help

Without --config ferry runs on its embedded defaults:
  Janus API  HTTP  ${DEFAULT_CONFIG.http.bind}:${DEFAULT_CONFIG.http.port}${DEFAULT_CONFIG.http.base_path}   WebSocket ${DEFAULT_CONFIG.websocket.bind}:${DEFAULT_CONFIG.websocket.port} (janus-protocol)
  Admin API  HTTP  ${DEFAULT_CONFIG.admin_http.bind}:${DEFAULT_CONFIG.admin_http.port}${DEFAULT_CONFIG.admin_http.base_path}  WebSocket ${DEFAULT_CONFIG.admin_websocket.bind}:${DEFAULT_CONFIG.admin_websocket.port} (janus-admin-protocol)
  Metrics    ${DEFAULT_CONFIG.metrics.path} on the Admin HTTP listener
  Media      UDP ${DEFAULT_CONFIG.media.rtp_port_min}-${DEFAULT_CONFIG.media.rtp_port_max}, media threads: media.workers (${DEFAULT_CONFIG.media.workers} = one per CPU
             this process may run on, or a number), media.placement (${DEFAULT_CONFIG.media.placement}: by measured load,
             a room kept on few threads; round-robin: every room spread), media.pin_threads;
             at most media.max_mlines (${DEFAULT_CONFIG.media.max_mlines}) m-lines in a client's offer;
             media.bandwidth_estimation (${DEFAULT_CONFIG.media.bandwidth_estimation}): each subscriber's layers follow its link's estimate,
             from media.bwe_start_bitrate (${DEFAULT_CONFIG.media.bwe_start_bitrate}) up to media.bwe_max_bitrate (${DEFAULT_CONFIG.media.bwe_max_bitrate}) bits/s;
             media.single_port (off): every PeerConnection of a media thread on one UDP port
             (one port per thread, comma-separated, or a base port), routed by ICE ufrag;
             media.ice_tcp (passive TCP candidates, RFC 6544), media.ipv6 (dual-stack
             sockets, IPv6 candidates), media.nat_1_1_mapping (public
             addresses to announce) with media.keep_private_host
  Data       channels over SCTP/DTLS: media.data_channels (${DEFAULT_CONFIG.media.data_channels}), media.datachannel_max_message_size
             (${DEFAULT_CONFIG.media.datachannel_max_message_size} bytes, announced in a=max-message-size), media.datachannel_send_buffer (${DEFAULT_CONFIG.media.datachannel_send_buffer} bytes
             queued per association); janus.plugin.textroom: textroom.admin_key restricts create,
             textroom.rooms_file keeps permanent rooms (0600), textroom.demo_room (room 1234)

Event handlers (Janus's JSON event format; README "Event handlers"): off until events.enabled is true
  and events.http_url (POSTs) and/or events.mqtt_url (mqtt://host:port, events.mqtt_topic) is set;
  per handler: events.<http|mqtt>_events (all, none, or sessions,handles,jsep,webrtc,media,plugins,
  transports,core,external), _grouping (${DEFAULT_CONFIG.events.http_grouping}), _max_backlog (${DEFAULT_CONFIG.events.http_max_backlog} events kept while the other end is away;
  more are dropped and counted); media stats every events.stats_period (${DEFAULT_CONFIG.events.stats_period}) s

Per-client quotas (a client = its address, or its token with token auth; 0 = off; README "Quotas and rooms"):
  quotas.session_create_rate ${DEFAULT_CONFIG.quotas.session_create_rate}/s, session_create_burst ${DEFAULT_CONFIG.quotas.session_create_burst}, sessions_per_client ${DEFAULT_CONFIG.quotas.sessions_per_client},
  peer_connections_per_client ${DEFAULT_CONFIG.quotas.peer_connections_per_client}, rooms_per_client ${DEFAULT_CONFIG.quotas.rooms_per_client}, max_rooms ${DEFAULT_CONFIG.quotas.max_rooms}
  (rooms_per_client and max_rooms count VideoRoom and TextRoom rooms)
  VideoRoom: videoroom.admin_key restricts create; videoroom.max_description_length ${DEFAULT_CONFIG.videoroom.max_description_length};
  videoroom.rooms_file (permanent rooms, secrets and pins in plain text) is written with mode 0600
  SIP: sip.tls_cert and sip.tls_key (PEM files) add a TLS transport to every account (sips:, transport=tls),
  sip.tls_ca trusts more CAs; sip.keepalive_interval (${DEFAULT_CONFIG.sip.keepalive_interval} s, 0 = off) pings registrars

Cluster (README "Cluster"; off while cluster.redis_url is null): nodes share the VideoRoom room
  directory in Redis and cascade feeds to the nodes whose subscribers need them.
  cluster.redis_url (redis://host:port), cluster.node_id (unique; default <hostname>-<random>),
  cluster.advertise (address other nodes send cascaded media to; default the first media
  candidate), cluster.lease_ttl (${DEFAULT_CONFIG.cluster.lease_ttl} s: room leases and heartbeats; a node silent this long is gone)

Plugins: janus.plugin.echotest, janus.plugin.videoroom (room 1234), janus.plugin.sip, janus.plugin.streaming
  Streaming: rtp mountpoints fed by ffmpeg/GStreamer/encoders on ports of the media range;
  streaming.demo_mountpoint (${DEFAULT_CONFIG.streaming.demo_mountpoint}: mountpoint 1, Opus pt 111 + VP8 pt 100),
  streaming.admin_key restricts create, streaming.mountpoints_file keeps permanent mountpoints (mode 0600)
  WHIP/WHEP (whip.enabled ${DEFAULT_CONFIG.whip.enabled}): POST ${DEFAULT_CONFIG.whip.path}/endpoint/<room> publishes into a VideoRoom room,
  POST ${DEFAULT_CONFIG.whip.whep_path}/endpoint/<mountpoint or room> plays; Bearer token = the room's or mountpoint's secret

Recordings: VideoRoom (record, rec_dir, lock_record, filename), EchoTest (record, filename) and SIP
  (recording) write Janus .mjr files, one per stream, into recordings.dir (${DEFAULT_CONFIG.recordings.dir}) unless the
  request names a folder (never under recordings.protected_folders); convert them with Janus's janus-pp-rec (Debian package janus-tools), or a
  publisher's audio and video into one WebM in sync with ferry-pp OUT.webm AUDIO.mjr VIDEO.mjr

Environment overrides: FERRY_<SECTION>_<KEY>=value, e.g.
  FERRY_GENERAL_SESSION_TIMEOUT=30  FERRY_HTTP_PORT=8089  FERRY_AUTH_API_SECRET=s3cret  FERRY_LOG_LEVEL=debug
  FERRY_MEDIA_WORKERS=4  FERRY_MEDIA_PIN_THREADS=true  FERRY_QUOTAS_PEER_CONNECTIONS_PER_CLIENT=50
  FERRY_EVENTS_ENABLED=true  FERRY_EVENTS_HTTP_URL=http://127.0.0.1:8080/events
  FERRY_CLUSTER_REDIS_URL=redis://127.0.0.1:6379  FERRY_CLUSTER_NODE_ID=node-1
`;

function parseArgs(argv: string[]): { config?: string; help: boolean; printConfig: boolean } {
  const out: { config?: string; help: boolean; printConfig: boolean } = { help: false, printConfig: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') out.help = true;
    else if (arg === '--print-config') out.printConfig = true;
    else if (arg === '-c' || arg === '--config') {
      const file = argv[++i];
      if (!file) throw new ConfigError(`${arg} needs a file name`);
      out.config = file;
    } else if (arg?.startsWith('--config=')) out.config = arg.slice('--config='.length);
    else throw new ConfigError(`unknown argument ${arg} (see --help)`);
  }
  return out;
}

async function main(): Promise<void> {
  let args: ReturnType<typeof parseArgs>;
  let config;
  try {
    args = parseArgs(process.argv.slice(2));
    if (args.help) {
      process.stdout.write(HELP);
      return;
    }
    config = loadConfig({ ...(args.config ? { file: args.config } : {}), env: process.env });
  } catch (err) {
    process.stderr.write(`ferry: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
  if (args.printConfig) {
    process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
    return;
  }
  let ferry;
  try {
    ferry = await createFerry({ config });
  } catch (err) {
    process.stderr.write(`ferry: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  const gateway = ferry.gateway;
  const shutdown = (signal: string) => {
    gateway.logger.info({ signal }, 'shutting down');
    ferry.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        gateway.logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  try {
    const addresses = await ferry.start();
    gateway.logger.info({ addresses }, 'ferry started');
  } catch (err) {
    gateway.logger.fatal({ err }, 'ferry failed to start');
    process.exit(1);
  }
}

void main();
