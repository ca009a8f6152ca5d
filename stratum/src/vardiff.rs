//! Variable difficulty per connection toward a target share rate.
//!
//! The estimator counts the difficulty the miner's accepted shares were worth over a window
//! (difficulty-1 shares per second, i.e. hashrate / 2^32 in Bitcoin's unit, / 2^16 in scrypt's)
//! and sets the difficulty that would give one share per target interval. It retargets only when
//! the estimate is off by more than a factor (hysteresis), on enough shares for the estimate to
//! be trustworthy, so a miner at a steady hashrate converges in a step or two and then stays put
//! instead of oscillating:
//! - after [`VardiffConfig::fast_shares`] shares, when off by more than 32x (or 8x after twice
//!   as many shares, or 8x too slow): a new miner or a big hashrate change, jump to the estimate;
//! - after [`VardiffConfig::window_shares`] shares (or that many intervals with at least
//!   `fast_shares` shares), when off by more than 2x: move halfway
//!   (geometric mean of the current difficulty and the estimate), which damps estimate noise;
//! - after 16 target intervals without a share, lower the difficulty (the miner is too slow to
//!   produce shares at this difficulty).
//!
//! Times are passed in (milliseconds); nothing here reads a clock. Difficulty is an `f64` (it only
//! chooses share targets; a share's weight is the integer work of the target it was checked at).
//! Every difficulty here, settings included, is in the chain's `DifficultyUnit`: the session
//! converts to and from targets, so this estimator never needs to know the unit.

/// Vardiff settings.
#[derive(Clone, Debug, PartialEq)]
pub struct VardiffConfig {
    /// Difficulty a new connection starts at.
    pub initial_difficulty: f64,
    /// Lowest difficulty (fractions below 1 are allowed, e.g. for CPU miners on test networks).
    pub min_difficulty: f64,
    pub max_difficulty: f64,
    /// Wanted time between shares, ms (default 10 s).
    pub target_interval_ms: u64,
    /// Shares before a big (>32x, or >8x on twice as many) correction may happen.
    pub fast_shares: u32,
    /// Shares before a normal (>2x) correction may happen.
    pub window_shares: u32,
}

impl Default for VardiffConfig {
    fn default() -> Self {
        VardiffConfig {
            initial_difficulty: 1.0,
            min_difficulty: 0.001,
            max_difficulty: 1e12,
            target_interval_ms: 10_000,
            fast_shares: 6,
            window_shares: 24,
        }
    }
}

impl VardiffConfig {
    /// Clamps a difficulty into `[min, max]` and below the network difficulty. Never panics,
    /// whatever the settings (comparisons, not `f64::clamp`); the result is positive and finite
    /// (1.0 when nothing else is).
    pub fn clamp(&self, difficulty: f64, network_difficulty: f64) -> f64 {
        let usable = |x: f64| x.is_finite() && x > 0.0;
        let mut d = if usable(difficulty) {
            difficulty
        } else {
            self.initial_difficulty
        };
        if usable(self.max_difficulty) && d > self.max_difficulty {
            d = self.max_difficulty;
        }
        if usable(self.min_difficulty) && d < self.min_difficulty {
            d = self.min_difficulty;
        }
        if usable(network_difficulty) && d > network_difficulty {
            d = network_difficulty;
        }
        if usable(d) {
            d
        } else {
            1.0
        }
    }
}

/// One connection's vardiff state.
#[derive(Clone, Debug)]
pub struct Vardiff {
    difficulty: f64,
    window_start_ms: u64,
    window_shares: u32,
    /// Sum of the difficulties of the window's shares.
    window_difficulty: f64,
    last_share_ms: u64,
}

impl Vardiff {
    pub fn new(config: &VardiffConfig, now_ms: u64) -> Vardiff {
        Vardiff {
            difficulty: config.clamp(config.initial_difficulty, f64::INFINITY),
            window_start_ms: now_ms,
            window_shares: 0,
            window_difficulty: 0.0,
            last_share_ms: now_ms,
        }
    }

    /// The difficulty currently assigned.
    pub fn difficulty(&self) -> f64 {
        self.difficulty
    }

    /// Sets the difficulty (e.g. from `mining.suggest_difficulty`), clamped; restarts the window.
    /// Returns the difficulty now in force.
    pub fn set(
        &mut self,
        config: &VardiffConfig,
        difficulty: f64,
        network_difficulty: f64,
        now_ms: u64,
    ) -> f64 {
        self.difficulty = config.clamp(difficulty, network_difficulty);
        self.restart(now_ms);
        self.difficulty
    }

    fn restart(&mut self, now_ms: u64) {
        self.window_start_ms = now_ms;
        self.window_shares = 0;
        self.window_difficulty = 0.0;
    }

    /// Records an accepted share worth `share_difficulty` and returns a new difficulty when a
    /// retarget is due. A share worth 0 (or anything not positive and finite) only shows the
    /// miner is alive: it is not counted (see the session, which counts a share only when it
    /// meets the hardest target the miner may be working at).
    pub fn on_share(
        &mut self,
        config: &VardiffConfig,
        share_difficulty: f64,
        network_difficulty: f64,
        now_ms: u64,
    ) -> Option<f64> {
        self.last_share_ms = now_ms;
        if !(share_difficulty.is_finite() && share_difficulty > 0.0) {
            return None;
        }
        self.window_shares = self.window_shares.saturating_add(1);
        self.window_difficulty += share_difficulty;
        let elapsed_ms = now_ms.saturating_sub(self.window_start_ms).max(1);
        // Difficulty that gives one share per interval: rate (diff-1 shares/ms) x interval.
        let ideal = self.window_difficulty * config.target_interval_ms as f64 / elapsed_ms as f64;
        let ratio = ideal / self.difficulty;
        let n = self.window_shares;
        let far_off = (n >= config.fast_shares && !(1.0 / 8.0..=32.0).contains(&ratio))
            || (n >= config.fast_shares.saturating_mul(2) && ratio > 8.0);
        if far_off {
            // Far off: jump straight to the estimate. Few shares arriving in a short time are
            // noisy evidence, so a fast rise needs more than 32x on `fast_shares` shares, or 8x
            // on twice as many; a spurious jump is then a one-in-millions event.
            return self.retarget(config, ideal, network_difficulty, now_ms);
        }
        // A full window of shares, or (for a miner below the target rate) a window's worth of
        // time with at least the fast minimum of shares.
        let window_full = self.window_shares >= config.window_shares
            || (self.window_shares >= config.fast_shares
                && elapsed_ms
                    >= config
                        .target_interval_ms
                        .saturating_mul(u64::from(config.window_shares)));
        if window_full && !(0.5..=2.0).contains(&ratio) {
            // Moderately off: move halfway (geometrically), so estimate noise cannot make the
            // difficulty bounce between two values on either side of the ideal.
            let damped = self.difficulty * ratio.sqrt();
            return self.retarget(config, damped, network_difficulty, now_ms);
        }
        if window_full {
            // On target: start a fresh window so the estimate follows hashrate changes.
            self.restart(now_ms);
        }
        None
    }

    /// Called without a share (e.g. when a job is sent): lowers the difficulty of a miner that
    /// has not found a share for 16 target intervals (a miner that lost most of its hashrate, or
    /// started far too high).
    pub fn on_tick(
        &mut self,
        config: &VardiffConfig,
        network_difficulty: f64,
        now_ms: u64,
    ) -> Option<f64> {
        let silent_ms = now_ms.saturating_sub(self.last_share_ms.max(self.window_start_ms));
        // At the target rate a 16-interval silence happens by chance once in ~9 million shares.
        if silent_ms < config.target_interval_ms.saturating_mul(16) {
            return None;
        }
        // Upper bound of the rate, as if two shares had come in the silence: at most an eighth
        // of the current difficulty.
        let ideal =
            2.0 * self.difficulty * config.target_interval_ms as f64 / silent_ms.max(1) as f64;
        self.retarget(config, ideal, network_difficulty, now_ms)
    }

    fn retarget(
        &mut self,
        config: &VardiffConfig,
        ideal: f64,
        network_difficulty: f64,
        now_ms: u64,
    ) -> Option<f64> {
        let new = config.clamp(ideal, network_difficulty);
        self.restart(now_ms);
        if (new - self.difficulty).abs() <= self.difficulty * 1e-9 {
            return None;
        }
        self.difficulty = new;
        Some(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Simulates a miner doing `rate` difficulty-1 shares per second: at difficulty d its shares
    /// arrive as a Poisson process of rate `rate / d`. Returns the difficulty after each share.
    fn simulate(rate: f64, start: f64, shares: usize, seed: u64) -> (Vec<f64>, usize) {
        simulate_change(rate, (usize::MAX, rate), start, shares, seed)
    }

    /// As `simulate`, with the hashrate changing to `new_rate` after `at` shares.
    fn simulate_change(
        rate: f64,
        (at, new_rate): (usize, f64),
        start: f64,
        shares: usize,
        seed: u64,
    ) -> (Vec<f64>, usize) {
        let config = VardiffConfig {
            initial_difficulty: start,
            ..VardiffConfig::default()
        };
        let mut rng = StdRng::seed_from_u64(seed);
        let mut now_ms = 1_000_000u64;
        let mut v = Vardiff::new(&config, now_ms);
        let mut history = Vec::new();
        let mut retargets = 0;
        while history.len() < shares {
            let d = v.difficulty();
            let rate = if history.len() >= at { new_rate } else { rate };
            let mean_s = d / rate;
            let u: f64 = rng.gen_range(f64::EPSILON..1.0);
            let wait_ms = (-u.ln() * mean_s * 1000.0) as u64;
            // Jobs arrive every 30 s; the idle rule may fire between shares.
            let mut t = now_ms;
            while t + 30_000 < now_ms + wait_ms {
                t += 30_000;
                if v.on_tick(&config, 1e9, t).is_some() {
                    retargets += 1;
                }
            }
            if v.difficulty() != d {
                // The difficulty changed mid-wait; redraw at the new difficulty.
                now_ms = t;
                continue;
            }
            now_ms += wait_ms;
            if v.on_share(&config, d, 1e9, now_ms).is_some() {
                retargets += 1;
            }
            history.push(v.difficulty());
        }
        (history, retargets)
    }

    #[test]
    fn converges_from_far_below_and_stays() {
        for seed in 0..20 {
            // 50 diff-1 shares/s: ideal difficulty 500 at one share per 10 s.
            let (history, retargets) = simulate(50.0, 1.0, 1000, seed);
            // Bounded steps: settled within 60 shares of the start...
            let settled = &history[60..];
            for d in settled {
                assert!((250.0..=1000.0).contains(d), "seed {seed}: {d}");
            }
            assert!(retargets <= 12, "seed {seed}: {retargets} retargets");
            let changes = settled.windows(2).filter(|w| w[0] != w[1]).count();
            // ...and then stays: over 300 seeds, 0-2 damped corrections in ~2.5 hours is typical
            // and 5 the most seen.
            assert!(changes <= 5, "seed {seed}: oscillates ({changes} changes)");
        }
    }

    #[test]
    fn follows_a_hashrate_change() {
        for seed in 0..10 {
            // 50 -> 500 diff-1 shares/s after 300 shares: ideal 500 -> 5000. The 2x hysteresis
            // lets the difficulty settle anywhere within about 2x of the ideal.
            let (history, _) = simulate_change(50.0, (300, 500.0), 1.0, 700, seed);
            for d in &history[250..300] {
                assert!((250.0..=1000.0).contains(d), "seed {seed}: {d}");
            }
            for d in &history[400..] {
                assert!((1667.0..=15000.0).contains(d), "seed {seed}: {d}");
            }
            // And back down: 500 -> 5 (a miner losing most of its hashrate).
            let (history, _) = simulate_change(500.0, (300, 5.0), 5000.0, 500, seed);
            for d in &history[400..] {
                assert!((16.7..=150.0).contains(d), "seed {seed} down: {d}");
            }
        }
    }

    #[test]
    fn converges_from_far_above_through_idle_rule() {
        // 0.05 diff-1 shares/s (a CPU miner): ideal 0.5, starting at 1000.
        let (history, _) = simulate(0.05, 1000.0, 300, 7);
        for d in &history[100..] {
            assert!((0.25..=1.0).contains(d), "{d}");
        }
    }

    #[test]
    fn clamps_to_min_max_and_network() {
        let config = VardiffConfig {
            min_difficulty: 0.5,
            max_difficulty: 1000.0,
            ..VardiffConfig::default()
        };
        assert_eq!(config.clamp(0.01, 1e9), 0.5);
        assert_eq!(config.clamp(5000.0, 1e9), 1000.0);
        assert_eq!(config.clamp(800.0, 100.0), 100.0);
        assert_eq!(config.clamp(f64::NAN, 1e9), 1.0);
        let broken = VardiffConfig {
            min_difficulty: f64::NAN,
            max_difficulty: -1.0,
            initial_difficulty: f64::INFINITY,
            ..VardiffConfig::default()
        };
        assert_eq!(broken.clamp(f64::NAN, f64::NAN), 1.0);
        assert_eq!(broken.clamp(3.0, 2.0), 2.0);
        let mut v = Vardiff::new(&config, 0);
        assert_eq!(v.set(&config, 1e6, 1e9, 0), 1000.0);
    }
}
