//! Reject floods: when to cut a connection whose recent shares are mostly invalid.
//!
//! Pure and synchronous. Each connection keeps a [`FloodWindow`], a sliding window over the
//! outcomes of its last `window` submits (one bit each), and records every submit's outcome:
//! an update of a bit and a counter, no lock, no allocation after the first submit. The window
//! trips when it holds at least `min_invalid` invalid submits and they are at least `ratio` of
//! the submits in it.
//!
//! Why the defaults (100 submits, 90 %, at least 50 invalid) never touch an honest miner: its
//! invalid shares are the few stale ones it sends right after a new block (the work it was on
//! when `clean_jobs` arrived) and the rare duplicate, a burst of a handful among many accepted
//! shares. Even bursts of 10 invalid separated by only 2 valid shares stay under 90 % of any
//! window (a property test below shows it), while a flood of invalid shares trips after its
//! 50th.

/// When a connection counts as flooding.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FloodConfig {
    /// False: never cut (for benchmarks that measure a flood of invalid shares).
    pub enabled: bool,
    /// Submits remembered per connection (the sliding window), 1..=[`MAX_WINDOW`].
    pub window: u32,
    /// Cut when the invalid submits are at least this share of the window's submits (0, 1].
    pub ratio: f64,
    /// ... and there are at least this many of them (1..=window).
    pub min_invalid: u32,
}

/// Largest window accepted (bits per connection).
pub const MAX_WINDOW: u32 = 4096;

impl Default for FloodConfig {
    fn default() -> Self {
        FloodConfig {
            enabled: true,
            window: 100,
            ratio: 0.9,
            min_invalid: 50,
        }
    }
}

impl FloodConfig {
    /// What is wrong with these settings, if anything.
    pub fn problem(&self) -> Option<String> {
        if !(1..=MAX_WINDOW).contains(&self.window) {
            return Some(format!(
                "window {} must be between 1 and {MAX_WINDOW} submits",
                self.window
            ));
        }
        if !(self.ratio > 0.0 && self.ratio <= 1.0) {
            return Some(format!(
                "ratio {} must be above 0 and at most 1",
                self.ratio
            ));
        }
        if !(1..=self.window).contains(&self.min_invalid) {
            return Some(format!(
                "min_invalid {} must be between 1 and the window ({})",
                self.min_invalid, self.window
            ));
        }
        None
    }
}

/// The outcomes of a connection's last submits.
#[derive(Clone, Debug, Default)]
pub struct FloodWindow {
    /// Bit `i` set: the submit in slot `i` was invalid. Allocated at the first submit, so an
    /// idle connection costs no heap.
    invalid_bits: Vec<u64>,
    /// The slot the next submit goes to.
    next: u32,
    /// Submits in the window (up to the window size).
    submits: u32,
    /// Invalid submits in the window.
    invalid: u32,
}

impl FloodWindow {
    pub fn new() -> FloodWindow {
        FloodWindow::default()
    }

    /// Records one submit's outcome; true when the connection now counts as flooding.
    /// `config` must be the same on every call (and valid: see [`FloodConfig::problem`]).
    pub fn record(&mut self, config: &FloodConfig, valid: bool) -> bool {
        if !config.enabled {
            return false;
        }
        let window = config.window.clamp(1, MAX_WINDOW);
        if self.invalid_bits.is_empty() {
            self.invalid_bits = vec![0; window.div_ceil(64) as usize];
        }
        let slot = self.next as usize;
        let (word, bit) = (slot / 64, 1u64 << (slot % 64));
        if self.submits == window {
            if self.invalid_bits[word] & bit != 0 {
                self.invalid -= 1;
            }
        } else {
            self.submits += 1;
        }
        if valid {
            self.invalid_bits[word] &= !bit;
        } else {
            self.invalid_bits[word] |= bit;
            self.invalid += 1;
        }
        self.next = if self.next + 1 == window {
            0
        } else {
            self.next + 1
        };
        !valid
            && self.invalid >= config.min_invalid
            && f64::from(self.invalid) >= config.ratio * f64::from(self.submits)
    }

    /// Submits and invalid submits in the window now.
    pub fn counts(&self) -> (u32, u32) {
        (self.submits, self.invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(config: &FloodConfig, outcomes: impl IntoIterator<Item = bool>) -> Option<usize> {
        let mut w = FloodWindow::new();
        outcomes
            .into_iter()
            .position(|valid| w.record(config, valid))
    }

    #[test]
    fn an_invalid_flood_is_cut_at_its_min_invalid_th_share() {
        let config = FloodConfig::default();
        assert_eq!(run(&config, std::iter::repeat(false).take(1000)), Some(49));
        // A few valid shares mixed in do not hide a flood.
        let mixed = (0..1000).map(|i| i % 20 == 0);
        assert!(run(&config, mixed).is_some());
    }

    #[test]
    fn a_window_of_valid_shares_clears_an_earlier_burst() {
        let config = FloodConfig::default();
        let mut w = FloodWindow::new();
        for _ in 0..40 {
            assert!(!w.record(&config, false));
        }
        for _ in 0..100 {
            assert!(!w.record(&config, true));
        }
        assert_eq!(w.counts(), (100, 0));
        for i in 0..50 {
            assert!(!w.record(&config, false), "invalid {i}");
        }
        assert_eq!(w.counts(), (100, 50));
    }

    #[test]
    fn the_ratio_and_the_minimum_both_hold() {
        let config = FloodConfig {
            enabled: true,
            window: 10,
            ratio: 0.5,
            min_invalid: 3,
        };
        // Two invalid of two: the ratio holds, the minimum does not.
        assert_eq!(run(&config, [false, false]), None);
        assert_eq!(run(&config, [false, false, false]), Some(2));
        // Three of seven is under half.
        assert_eq!(
            run(&config, [true, true, true, true, false, false, false]),
            None
        );
        assert_eq!(
            run(
                &config,
                [true, true, false, true, false, true, false, false]
            ),
            Some(7)
        );
    }

    #[test]
    fn bad_settings_are_named() {
        for bad in [
            FloodConfig {
                window: 0,
                ..FloodConfig::default()
            },
            FloodConfig {
                ratio: 0.0,
                ..FloodConfig::default()
            },
            FloodConfig {
                ratio: f64::NAN,
                ..FloodConfig::default()
            },
            FloodConfig {
                min_invalid: 101,
                ..FloodConfig::default()
            },
        ] {
            assert!(bad.problem().is_some(), "{bad:?}");
        }
        assert_eq!(FloodConfig::default().problem(), None);
        let off = FloodConfig {
            enabled: false,
            ..FloodConfig::default()
        };
        assert_eq!(run(&off, std::iter::repeat(false).take(1000)), None);
    }

    proptest! {
        /// An honest miner: bursts of up to 10 stale shares (after each new block), each
        /// followed by at least 2 accepted ones, is never cut by the defaults.
        #[test]
        fn honest_bursts_of_stale_shares_are_never_cut(
            pattern in prop::collection::vec((1usize..=10, 2usize..=60), 1..200),
        ) {
            let config = FloodConfig::default();
            let outcomes = pattern.iter().flat_map(|&(stale, valid)| {
                std::iter::repeat(false).take(stale).chain(std::iter::repeat(true).take(valid))
            });
            prop_assert_eq!(run(&config, outcomes), None);
        }

        /// The window's counts equal a recount of its last `window` outcomes.
        #[test]
        fn counts_match_the_last_window_outcomes(
            window in 1u32..200,
            outcomes in prop::collection::vec(any::<bool>(), 0..600),
        ) {
            let config = FloodConfig { enabled: true, window, ratio: 1.0, min_invalid: window };
            let mut w = FloodWindow::new();
            for (i, &valid) in outcomes.iter().enumerate() {
                w.record(&config, valid);
                let start = (i + 1).saturating_sub(window as usize);
                let recent = &outcomes[start..=i];
                let invalid = recent.iter().filter(|v| !**v).count() as u32;
                prop_assert_eq!(w.counts(), (recent.len() as u32, invalid));
            }
        }
    }
}
