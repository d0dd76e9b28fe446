//! Janus's `.mjr` recording format, version 2, sans-IO: what to append to a file for each
//! packet, and a reader for tests and tools. Learnt from Janus's `record.c` and
//! `janus-pp-rec.c` (written afresh here):
//!
//! ```text
//! "MJR00002"                      8 bytes, written once
//! u16 BE length, JSON info        {"t":"a"|"v"|"d","c":codec,"x":{id:uri},"s":created µs,"u":first packet µs}
//! then per packet:
//! "MEET"                          4 bytes
//! u32 BE                          ms since the first packet (arrival time)
//! u16 BE length, the RTP packet   as received, after SRTP is removed
//! ```
//!
//! The header is written when the file is made, with the creation time standing in for `u`
//! until the first packet's time overwrites it (same length): a file always starts whole.
//!
//! `janus-pp-rec` orders packets by RTP timestamp and sequence number, drops packets whose
//! SSRC is not the first one's, and skips frames over 1500 bytes; it stops at the first frame
//! that is cut short, so a file whose tail was lost still converts.

/// What a recording holds (the info's `t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MjrKind {
    Audio,
    Video,
    Data,
}

impl MjrKind {
    fn letter(self) -> &'static str {
        match self {
            MjrKind::Audio => "a",
            MjrKind::Video => "v",
            MjrKind::Data => "d",
        }
    }
}

/// The header's JSON info, less the first packet's time (known when it comes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MjrInfo {
    pub kind: MjrKind,
    /// Janus's codec name: opus, multiopus, pcmu, pcma, g722, vp8, vp9, h264, av1, h265, text, binary.
    pub codec: String,
    /// Codec parameters (the SDP fmtp line), informational (`f`).
    pub fmtp: Option<String>,
    /// RTP header extensions the stream carries: (id, URI) (`x`).
    pub extensions: Vec<(u8, String)>,
    /// When the recording was created, µs since the Unix epoch (`s`).
    pub created_us: u64,
}

const MAGIC: &[u8; 8] = b"MJR00002";
const FRAME_MAGIC: &[u8; 4] = b"MEET";
/// Frames janus-pp-rec reads (it skips larger ones as "not RTP").
pub const MAX_FRAME: usize = 1500;

/// One recording's bytes: the header, written whole when the file is made (so a file is never
/// without it), then a frame per packet appended to a caller's buffer. The header's first-packet
/// time `u` is unknown until the first packet: it is written as the creation time and, when the
/// first packet comes, `first_packet_patch` gives the bytes that overwrite it in place (the same
/// number of digits, so the header keeps its length). Never does I/O itself.
#[derive(Debug)]
pub struct MjrWriter {
    info: MjrInfo,
    /// Arrival time (µs, the caller's monotonic clock) of the first packet, once written.
    first_arrival_us: Option<u64>,
    /// Where `u`'s digits are in the file, and how many there are.
    u_at: usize,
    u_len: usize,
    /// The first packet's wall-clock time, to be patched into the header.
    pending_u: Option<u64>,
}

impl MjrWriter {
    pub fn new(info: MjrInfo) -> Self {
        Self { info, first_arrival_us: None, u_at: 0, u_len: 0, pending_u: None }
    }

    pub fn info(&self) -> &MjrInfo {
        &self.info
    }

    /// The header to start the file with: `u` is the creation time until the first packet.
    pub fn header(&mut self) -> Vec<u8> {
        let json = info_json(&self.info, self.info.created_us);
        let u = self.info.created_us.to_string();
        // `"u":<digits>}` ends the info (see info_json).
        self.u_len = u.len();
        self.u_at = MAGIC.len() + 2 + json.len() - 1 - u.len();
        // The info is a few hundred bytes: its u16 length cannot overflow (URIs and fmtp are
        // bounded by `validate`).
        let len = json.len().min(usize::from(u16::MAX)) as u16;
        let mut out = Vec::with_capacity(10 + json.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&json.as_bytes()[..usize::from(len)]);
        out
    }

    /// After the first packet: the file offset and bytes that put its time into the header's
    /// `u`, once. None when it has as many digits as can replace the creation time's (always,
    /// for µs since 1970 until the year 2286) is not the case: `u` then stays the creation time.
    pub fn first_packet_patch(&mut self) -> Option<(u64, Vec<u8>)> {
        let u = self.pending_u.take()?.to_string();
        (u.len() == self.u_len && self.u_len > 0).then(|| (self.u_at as u64, u.into_bytes()))
    }

    /// Appends `packet` (arrived at `arrival_us` on the caller's monotonic clock, `wall_us` on
    /// the Unix clock). Returns false, appending nothing, for a packet janus-pp-rec would not
    /// read (empty or over 1500 bytes).
    pub fn write_packet(&mut self, packet: &[u8], arrival_us: u64, wall_us: u64, out: &mut Vec<u8>) -> bool {
        let data_prefix = if self.info.kind == MjrKind::Data { 8 } else { 0 };
        if packet.is_empty() || packet.len() + data_prefix > MAX_FRAME {
            return false;
        }
        let first = match self.first_arrival_us {
            Some(first) => first,
            None => {
                self.first_arrival_us = Some(arrival_us);
                self.pending_u = Some(wall_us);
                arrival_us
            }
        };
        // ms since the first packet; a u32 lasts 49 days.
        let relative_ms = (arrival_us.saturating_sub(first) / 1000).min(u64::from(u32::MAX)) as u32;
        out.extend_from_slice(FRAME_MAGIC);
        out.extend_from_slice(&relative_ms.to_be_bytes());
        out.extend_from_slice(&((packet.len() + data_prefix) as u16).to_be_bytes());
        if data_prefix > 0 {
            // Data frames carry their own wall-clock time (they have no RTP header).
            out.extend_from_slice(&wall_us.to_be_bytes());
        }
        out.extend_from_slice(packet);
        true
    }
}

/// Checks what goes into the info before a recording starts.
pub fn validate(info: &MjrInfo) -> Result<(), String> {
    const CODECS: &[&str] = &["opus", "multiopus", "pcmu", "pcma", "g711", "g722", "vp8", "vp9", "h264", "av1", "h265", "text", "binary"];
    if !CODECS.contains(&info.codec.as_str()) {
        return Err(format!("codec {:?} cannot be recorded (one of {})", info.codec, CODECS.join(", ")));
    }
    let video = ["vp8", "vp9", "h264", "av1", "h265"].contains(&info.codec.as_str());
    let data = ["text", "binary"].contains(&info.codec.as_str());
    let fits = match info.kind {
        MjrKind::Video => video,
        MjrKind::Data => data,
        MjrKind::Audio => !video && !data,
    };
    if !fits {
        return Err(format!("codec {} is not {:?}", info.codec, info.kind));
    }
    for (id, uri) in &info.extensions {
        // RFC 8285 §4.2: one-byte header ids are 1..=14; Janus records only those.
        if !(1..=14).contains(id) || uri.is_empty() || uri.len() > 256 {
            return Err(format!("extension {id} {uri:?}: ids 1..14, URI 1..256 bytes"));
        }
    }
    if info.fmtp.as_ref().is_some_and(|f| f.len() > 1024) {
        return Err("fmtp longer than 1024 bytes".into());
    }
    Ok(())
}

fn info_json(info: &MjrInfo, first_packet_us: u64) -> String {
    let mut s = String::with_capacity(128);
    s.push_str("{\"t\":\"");
    s.push_str(info.kind.letter());
    s.push_str("\",\"c\":");
    push_json_string(&mut s, &info.codec);
    if let Some(fmtp) = &info.fmtp {
        s.push_str(",\"f\":");
        push_json_string(&mut s, fmtp);
    }
    if !info.extensions.is_empty() {
        s.push_str(",\"x\":{");
        for (i, (id, uri)) in info.extensions.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            push_json_string(&mut s, &id.to_string());
            s.push(':');
            push_json_string(&mut s, uri);
        }
        s.push('}');
    }
    s.push_str(&format!(",\"s\":{},\"u\":{}}}", info.created_us, first_packet_us));
    s
}

/// RFC 8259 §7 string.
fn push_json_string(s: &mut String, value: &str) {
    s.push('"');
    for c in value.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
}

/// A recording read back: its JSON info and its frames (ms since the first packet, bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MjrFile<'a> {
    pub info: &'a str,
    pub frames: Vec<(u32, &'a [u8])>,
    /// Bytes after the last whole frame (a file cut short).
    pub trailing: usize,
}

/// Reads a v2 file as janus-pp-rec does: the header, then whole frames until the bytes end.
pub fn parse(bytes: &[u8]) -> Result<MjrFile<'_>, String> {
    if bytes.get(..8) != Some(MAGIC.as_slice()) {
        return Err("not an MJR00002 file".into());
    }
    let len = bytes.get(8..10).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]]))).ok_or("no info length")?;
    let info = bytes.get(10..10 + len).ok_or("info cut short")?;
    let info = std::str::from_utf8(info).map_err(|_| "info is not UTF-8")?;
    let mut at = 10 + len;
    let mut frames = Vec::new();
    while let Some(head) = bytes.get(at..at + 10) {
        if &head[..4] != FRAME_MAGIC {
            return Err(format!("no frame at byte {at}"));
        }
        let ms = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        let n = usize::from(u16::from_be_bytes([head[8], head[9]]));
        let Some(data) = bytes.get(at + 10..at + 10 + n) else { break };
        frames.push((ms, data));
        at += 10 + n;
    }
    Ok(MjrFile { info, frames, trailing: bytes.len() - at })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(kind: MjrKind, codec: &str) -> MjrInfo {
        MjrInfo { kind, codec: codec.into(), fmtp: None, extensions: Vec::new(), created_us: 1_700_000_000_000_000 }
    }

    fn rtp(seq: u16, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x80;
        p[1] = 111;
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p
    }

    /// What a file holds: the header, the frames, the first-packet patch applied.
    fn file_of(w: &mut MjrWriter, packets: &[(Vec<u8>, u64, u64)]) -> Vec<u8> {
        let mut out = w.header();
        for (p, at, wall) in packets {
            w.write_packet(p, *at, *wall, &mut out);
        }
        if let Some((offset, bytes)) = w.first_packet_patch() {
            out[offset as usize..offset as usize + bytes.len()].copy_from_slice(&bytes);
        }
        out
    }

    #[test]
    fn header_then_frames_with_times_relative_to_the_first_packet() {
        let mut w = MjrWriter::new(info(MjrKind::Audio, "opus"));
        let out = file_of(&mut w, &[(rtp(1, 100), 5_000_000, 1_700_000_000_500_000), (rtp(2, 120), 5_020_400, 1_700_000_000_520_400), (rtp(3, 90), 7_000_000, 0)]);
        let file = parse(&out).unwrap();
        assert_eq!(file.info, r#"{"t":"a","c":"opus","s":1700000000000000,"u":1700000000500000}"#);
        assert_eq!(file.frames.len(), 3);
        assert_eq!(file.frames[0], (0, rtp(1, 100).as_slice()));
        assert_eq!(file.frames[1].0, 20);
        assert_eq!(file.frames[2], (2000, rtp(3, 90).as_slice()));
        assert_eq!(file.trailing, 0);
        // The exact bytes of a frame: "MEET", ms, length, packet.
        let second = 10 + file.info.len() + 10 + 100;
        assert_eq!(&out[second..second + 10], b"MEET\x00\x00\x00\x14\x00\x78");
        assert_eq!(w.first_packet_patch(), None, "patched once");
    }

    #[test]
    fn a_file_without_packets_has_a_whole_header_with_the_creation_time() {
        let mut w = MjrWriter::new(info(MjrKind::Video, "vp8"));
        let out = file_of(&mut w, &[]);
        let file = parse(&out).unwrap();
        assert_eq!(file.info, r#"{"t":"v","c":"vp8","s":1700000000000000,"u":1700000000000000}"#);
        assert!(file.frames.is_empty());
    }

    #[test]
    fn extensions_and_fmtp_go_in_the_info_escaped() {
        let mut i = info(MjrKind::Video, "vp8");
        i.extensions = vec![(1, "urn:ietf:params:rtp-hdrext:sdes:mid".into()), (3, "a\"b".into())];
        i.fmtp = Some("x=1".into());
        let mut w = MjrWriter::new(i);
        let out = file_of(&mut w, &[(rtp(1, 50), 0, 1_700_000_000_000_009)]);
        let file = parse(&out).unwrap();
        assert_eq!(file.info, r#"{"t":"v","c":"vp8","f":"x=1","x":{"1":"urn:ietf:params:rtp-hdrext:sdes:mid","3":"a\"b"},"s":1700000000000000,"u":1700000000000009}"#);
    }

    #[test]
    fn a_first_packet_time_of_another_width_leaves_the_creation_time() {
        let mut i = info(MjrKind::Audio, "opus");
        i.created_us = 5;
        let mut w = MjrWriter::new(i);
        let out = file_of(&mut w, &[(rtp(1, 50), 0, 123)]);
        assert!(parse(&out).unwrap().info.ends_with(r#""u":5}"#));
    }

    #[test]
    fn packets_janus_pp_rec_would_skip_are_refused() {
        let mut w = MjrWriter::new(info(MjrKind::Video, "vp8"));
        let mut out = Vec::new();
        assert!(!w.write_packet(&[], 0, 0, &mut out));
        assert!(!w.write_packet(&rtp(1, MAX_FRAME + 1), 0, 0, &mut out));
        assert!(out.is_empty());
        assert_eq!(w.first_packet_patch(), None, "no packet yet");
        assert!(w.write_packet(&rtp(1, MAX_FRAME), 0, 0, &mut out));
    }

    #[test]
    fn data_frames_carry_their_wall_clock_time() {
        let mut w = MjrWriter::new(info(MjrKind::Data, "text"));
        let out = file_of(&mut w, &[(b"hello".to_vec(), 1000, 42)]);
        let file = parse(&out).unwrap();
        assert_eq!(file.frames[0].1, [&42u64.to_be_bytes()[..], b"hello"].concat().as_slice());
    }

    #[test]
    fn a_file_cut_mid_frame_reads_up_to_the_last_whole_frame() {
        let mut w = MjrWriter::new(info(MjrKind::Audio, "pcmu"));
        let packets: Vec<_> = (0..5u16).map(|seq| (rtp(seq, 172), u64::from(seq) * 20_000, 0)).collect();
        let mut out = file_of(&mut w, &packets);
        out.truncate(out.len() - 50);
        let file = parse(&out).unwrap();
        assert_eq!(file.frames.len(), 4);
        assert_eq!(file.trailing, 10 + 172 - 50);
        assert!(parse(b"MJR00001").is_err());
    }

    #[test]
    fn validation_matches_kinds_and_codecs() {
        assert!(validate(&info(MjrKind::Audio, "opus")).is_ok());
        assert!(validate(&info(MjrKind::Video, "av1")).is_ok());
        assert!(validate(&info(MjrKind::Audio, "vp8")).is_err());
        assert!(validate(&info(MjrKind::Video, "theora")).is_err());
        let mut bad = info(MjrKind::Audio, "opus");
        bad.extensions = vec![(15, "x".into())];
        assert!(validate(&bad).is_err());
    }
}
