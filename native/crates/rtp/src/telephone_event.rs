//! RFC 4733 telephone-events (DTMF digits and other named events) seen in an
//! RTP stream, reported once per event for the control plane (Janus's `dtmf`
//! event, or a SIP INFO when the other side of a bridge has no such payload
//! type).
//!
//! An event is one RTP timestamp (§2.3.5: the event's start); its packets
//! repeat with a growing duration, and its end is marked by the E bit, in up
//! to three copies (§2.5.1.4). The detector reports the first end packet of
//! each timestamp; the copies, and late packets of an event already reported,
//! are absorbed.

/// One event payload block (§2.3): event code, end bit, volume, duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// §3.2: 0-9 digits, 10 `*`, 11 `#`, 12-15 A-D, 16 flash.
    pub event: u8,
    pub end: bool,
    /// Power level in -dBm0 (0..=63), §2.3.4.
    pub volume: u8,
    /// In RTP timestamp units of the payload's clock, §2.3.5.
    pub duration: u16,
}

/// Reads the first event block of a payload (§2.3); `None` when it is shorter than one block.
pub fn parse(payload: &[u8]) -> Option<TelephoneEvent> {
    let [event, flags, hi, lo, ..] = *payload else { return None };
    Some(TelephoneEvent { event, end: flags & 0x80 != 0, volume: flags & 0x3f, duration: u16::from_be_bytes([hi, lo]) })
}

/// Reports each event of one stream once, at its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelephoneEventDetector {
    payload_type: u8,
    /// Timestamp of the last event reported.
    reported: Option<u32>,
}

impl TelephoneEventDetector {
    pub fn new(payload_type: u8) -> Self {
        Self { payload_type, reported: None }
    }

    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }

    /// One packet of the stream: the event to report when this packet ends one
    /// not reported yet. Packets of other payload types, and malformed ones, are ignored.
    pub fn observe(&mut self, payload_type: u8, timestamp: u32, payload: &[u8]) -> Option<TelephoneEvent> {
        if payload_type != self.payload_type {
            return None;
        }
        let event = parse(payload)?;
        if !event.end || self.reported == Some(timestamp) {
            return None;
        }
        self.reported = Some(timestamp);
        Some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(event: u8, end: bool, volume: u8, duration: u16) -> [u8; 4] {
        let d = duration.to_be_bytes();
        [event, if end { 0x80 } else { 0 } | volume, d[0], d[1]]
    }

    #[test]
    fn parses_a_block() {
        assert_eq!(parse(&block(11, true, 10, 1600)), Some(TelephoneEvent { event: 11, end: true, volume: 10, duration: 1600 }));
        // The reserved bit (R) is ignored, §2.3.3.
        assert_eq!(parse(&[5, 0x40 | 7, 0, 160]), Some(TelephoneEvent { event: 5, end: false, volume: 7, duration: 160 }));
        assert_eq!(parse(&[5, 0x80, 0]), None, "shorter than a block");
        assert_eq!(parse(&[]), None);
    }

    #[test]
    fn reports_each_event_once_at_its_end() {
        let mut d = TelephoneEventDetector::new(101);
        // Digit 5 at timestamp 8000: three updates, then the end sent three times (§2.5.1.4).
        assert_eq!(d.observe(101, 8000, &block(5, false, 10, 160)), None);
        assert_eq!(d.observe(101, 8000, &block(5, false, 10, 320)), None);
        let end = d.observe(101, 8000, &block(5, true, 10, 800));
        assert_eq!(end, Some(TelephoneEvent { event: 5, end: true, volume: 10, duration: 800 }));
        assert_eq!(d.observe(101, 8000, &block(5, true, 10, 800)), None);
        assert_eq!(d.observe(101, 8000, &block(5, true, 10, 800)), None);
        // The next digit has its own timestamp.
        assert_eq!(d.observe(101, 9600, &block(11, true, 10, 640)).map(|e| e.event), Some(11));
        // Audio and malformed packets change nothing.
        assert_eq!(d.observe(0, 9600, &[0xff; 160]), None);
        assert_eq!(d.observe(101, 11_200, &[1, 0x80]), None);
    }
}
