//! Averaging of RFC 6464 audio levels over a window of packets, for
//! talking/stopped-talking detection in the control plane.
//!
//! The level is the attenuation in -dBov (0 = loudest, 127 = silence, RFC 6464
//! §3), so a *lower* average means louder audio. The meter only averages; the
//! policy (threshold, hysteresis) stays with its user.

/// Averages the levels of the last `window` packets that carried the extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioLevelMeter {
    window: u32,
    sum: u32,
    count: u32,
}

impl AudioLevelMeter {
    /// `window` is clamped to at least one packet.
    pub fn new(window: u32) -> Self {
        Self { window: window.max(1), sum: 0, count: 0 }
    }

    pub fn window(&self) -> u32 {
        self.window
    }

    /// Adds one packet's level (clamped to 0..=127); returns the window's
    /// average, rounded to nearest, when this packet completes a window.
    pub fn observe(&mut self, level: u8) -> Option<u8> {
        self.sum += u32::from(level.min(127));
        self.count += 1;
        if self.count < self.window {
            return None;
        }
        let average = (self.sum + self.count / 2) / self.count;
        self.sum = 0;
        self.count = 0;
        // At most 127: every term was clamped.
        Some(average as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_once_per_window() {
        let mut m = AudioLevelMeter::new(4);
        assert_eq!(m.observe(10), None);
        assert_eq!(m.observe(20), None);
        assert_eq!(m.observe(30), None);
        assert_eq!(m.observe(40), Some(25));
        // A new window starts empty.
        assert_eq!(m.observe(127), None);
        assert_eq!(m.observe(127), None);
        assert_eq!(m.observe(127), None);
        assert_eq!(m.observe(127), Some(127));
    }

    #[test]
    fn rounds_to_nearest_and_clamps() {
        let mut m = AudioLevelMeter::new(2);
        assert_eq!(m.observe(1), None);
        assert_eq!(m.observe(2), Some(2)); // 1.5 rounds up
        assert_eq!(m.observe(255), None);
        assert_eq!(m.observe(255), Some(127));
    }

    #[test]
    fn window_of_zero_is_one() {
        let mut m = AudioLevelMeter::new(0);
        assert_eq!(m.window(), 1);
        assert_eq!(m.observe(33), Some(33));
    }

    #[test]
    fn never_overflows_or_exceeds_127() {
        let mut m = AudioLevelMeter::new(u32::MAX);
        for i in 0..100_000u32 {
            assert_eq!(m.observe((i % 256) as u8), None);
        }
        let mut small = AudioLevelMeter::new(7);
        for i in 0..10_000u32 {
            if let Some(avg) = small.observe((i.wrapping_mul(2_654_435_761) >> 24) as u8) {
                assert!(avg <= 127);
            }
        }
    }
}
