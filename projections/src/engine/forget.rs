//! Forgetting shares: a projection made with [`Projection::forgetting`] keeps only the shares a
//! block can still be credited from, so its memory does not grow with the ledger.
//!
//! PPLNS is the only scheme that reads individual shares (PROP rounds are per-address sums in
//! segments; SOLO reads none), and a block reads them once: its credits are computed at its
//! verdict (or where it stands, without a candidate) and a reinstatement counts them again
//! (`BlockRecord::pplns_credited`). So the shares that can still be read are those of the
//! windows of open candidates (fixed at the candidate) and of blocks not yet in the ledger.
//!
//! Every `mark_every` shares (a *mark*: the share's ledger seq and the total weight before it
//! are kept for good) the projection drops the shares before the latest mark at or before the
//! first share of every window it expects to read: the open PPLNS candidates' windows and, under
//! a PPLNS rule in force, the next block's window estimated at the latest share's network
//! target; but it keeps at most `max_shares` (rounded up to whole marks) whatever those windows
//! are. A future block's window is only an estimate (its network target and the rule in force
//! may change), and a window may be larger than `max_shares`: exactness never rests on the
//! estimate. Before a block event folds, [`State::needs_refill`] checks whether the block's
//! window reaches a forgotten share; if so [`Projection::apply`] refuses the event with
//! [`ProjectionError::SharesForgotten`], changing nothing, [`Projection::refill_range`] names
//! the ledger records of the mark interval just before the retained shares, and
//! [`Projection::refill`] takes their shares back (checked against the marks: the count and the
//! total weight must match). The caller repeats until the event applies. So every view, balance
//! and credit is the one of a projection that never forgets (`forgetting_equals_keeping_everything`
//! in tests/properties.rs compares them after every event of random histories); only the state
//! bytes differ (the retained shares).
//!
//! The decisions depend on the state alone, so a full replay and a snapshot plus its tail drop
//! (and refill) the same shares at the same events and reach the same bytes.

use super::{Forget, Projection, ShareMark, State, Verdict};
use crate::ProjectionError;
use pool_core::event::{PayoutScheme, ShareAccepted};
use pool_core::{Event, Target, Work};

use ruint::aliases::{U256, U512};

/// Most shares a forgetting projection keeps by default: 917,504 (14 marks of 65,536), 36 bytes
/// each (an address id and a 32-byte prefix sum), ~33 MB. Shares are dropped at marks, so the
/// window grows by up to a mark's 65,536 past this between drops: 14 marks keep that under
/// 2^20 entries, so the vectors never double their capacity to 2^21 (16 marks did, ~37 MB more).
/// A larger PPLNS window is read back from the ledger when its block folds.
pub const DEFAULT_MAX_SHARES: u64 = 14 * 65_536;

/// `numerator / denominator × work(target)`, rounded down, capped at `U256::MAX` (the window of
/// `pplns_weights`).
pub(super) fn window_work(numerator: u32, denominator: u32, target: &Target) -> U256 {
    let block_work = U512::from(target.work().as_u256());
    let window = block_work * U512::from(numerator) / U512::from(denominator.max(1));
    if window > U512::from(U256::MAX) {
        U256::MAX
    } else {
        U256::from(window)
    }
}

impl State {
    /// The PPLNS window's work of the rule given, or `None` for a scheme that reads no shares.
    fn pplns_window(scheme: &PayoutScheme, target: &Target) -> Option<U256> {
        match scheme {
            PayoutScheme::Pplns {
                window_numerator,
                window_denominator,
            } => Some(window_work(*window_numerator, *window_denominator, target)),
            _ => None,
        }
    }

    /// The prefix sum just before share number `end`: retained (or one past), or a mark's.
    fn cumulative_at(&self, end: u64) -> Work {
        if end > self.share_base {
            self.share_cumulative[(end - self.share_base - 1) as usize]
        } else if end == self.share_base {
            self.share_cumulative_base
        } else {
            // Among the forgotten shares: callers pass a mark's share number.
            self.share_marks[(end / self.mark_every()) as usize].cumulative_before
        }
    }

    /// Whether folding `event` would read the PPLNS window of a block that reaches a share this
    /// projection forgot (see the module docs).
    pub(super) fn needs_refill(&self, event: &Event) -> bool {
        if self.share_base == 0 {
            return false;
        }
        let Event::BlockFound(f) = event else {
            return false;
        };
        let (rule, end) = match self.block_index.get(&f.block_id) {
            Some(&i) => {
                let b = &self.blocks[i as usize];
                if b.candidate_seq.is_none() || b.verdict != Verdict::Pending {
                    return false; // an anomaly: credits nothing
                }
                (b.rule.clone(), b.share_end)
            }
            None => (self.current_rule(), self.share_total()),
        };
        match Self::pplns_window(&rule.scheme, &f.network_target) {
            Some(window) => self.window_forgotten(end, window),
            None => false,
        }
    }

    fn window_forgotten(&self, end: u64, window: U256) -> bool {
        if end == 0 {
            return false;
        }
        if end <= self.share_base {
            return true;
        }
        let total = self.cumulative_at(end).as_u256();
        // The window's first share lies before the retained ones (or it reads every share).
        total <= window || self.share_cumulative_base.as_u256() > total - window
    }

    /// Number of the first share a window of `window` work ending before share `end` reads, to
    /// mark resolution below the retained shares (the mark at or before it); 0 if it reads all.
    pub(super) fn window_first_share(&self, end: u64, window: U256) -> u64 {
        let total = self.cumulative_at(end).as_u256();
        if total <= window {
            return 0;
        }
        let edge = total - window;
        if self.share_cumulative_base.as_u256() <= edge {
            let retained = &self.share_cumulative[..(end - self.share_base) as usize];
            self.share_base + retained.partition_point(|c| c.as_u256() <= edge) as u64
        } else {
            // Below the retained shares: the last mark whose shares before it end at or before
            // the edge (its interval holds the first share read).
            let k = self
                .share_marks
                .partition_point(|m| m.cumulative_before.as_u256() <= edge);
            (k.saturating_sub(1) as u64) * self.mark_every()
        }
    }

    /// The first share the next block's PPLNS window would read, estimated at the latest share's
    /// network target, the window multiplied by `factor`; `None` under a rule that reads no
    /// shares (`pplns_only`) or before any share.
    pub(super) fn future_window_first_share(&self, factor: u64, pplns_only: bool) -> Option<u64> {
        let target = self.latest_network_target.as_ref()?;
        let (n, d) = match self.rules.last().map(|(_, r)| &r.scheme) {
            None => super::DEFAULT_PPLNS_WINDOW,
            Some(PayoutScheme::Pplns {
                window_numerator,
                window_denominator,
            }) => (*window_numerator, *window_denominator),
            Some(_) if pplns_only => return None,
            Some(_) => super::DEFAULT_PPLNS_WINDOW,
        };
        let window = window_work(n, d, target).saturating_mul(U256::from(factor));
        Some(self.window_first_share(self.share_total(), window))
    }

    /// The open PPLNS candidates' windows: the first share each reads (to mark resolution: the
    /// window taken to end at the mark at or before its end, so a projection that forgot the
    /// shares there gives the same as one that did not).
    pub(super) fn open_windows_first_shares(&self) -> impl Iterator<Item = u64> + '_ {
        self.blocks
            .iter()
            .filter(|b| b.verdict == Verdict::Pending)
            .filter_map(|b| {
                let window = Self::pplns_window(&b.rule.scheme, &b.found.network_target)?;
                let every = self.mark_every();
                Some(self.window_first_share(b.share_end / every * every, window))
            })
    }

    /// Drops the shares before the latest mark at or before every window expected to be read,
    /// keeping at most `max_shares` (whole marks). Called when a mark is added.
    pub(super) fn forget_shares(&mut self) {
        let Some(Forget {
            mark_every,
            max_shares: Some(max_shares),
        }) = self.forget
        else {
            return;
        };
        let total = self.share_total();
        let mut needed = self.future_window_first_share(1, true).unwrap_or(total);
        for first in self.open_windows_first_shares() {
            needed = needed.min(first);
        }
        let needed = needed.max(total.saturating_sub(max_shares));
        let base = needed / mark_every * mark_every;
        if base <= self.share_base {
            return;
        }
        let drop = (base - self.share_base) as usize;
        self.share_cumulative_base =
            self.share_marks[(base / mark_every) as usize].cumulative_before;
        self.share_address.drain(..drop);
        self.share_cumulative.drain(..drop);
        self.share_base = base;
    }
}

impl Projection {
    /// The ledger records `[from, to)` whose shares [`Projection::refill`] must be given before
    /// `event` can apply (after [`ProjectionError::SharesForgotten`]): the mark interval just
    /// before the retained shares. `None` when the event needs nothing forgotten.
    pub fn refill_range(&self, event: &Event) -> Option<(u64, u64)> {
        let s = &self.state;
        if !s.needs_refill(event) {
            return None;
        }
        let j = (s.share_base / s.mark_every()) as usize;
        let ShareMark { seq: to, .. } = s.share_marks[j];
        let ShareMark { seq: from, .. } = s.share_marks[j - 1];
        Some((from, to))
    }

    /// Takes back the forgotten shares of the mark interval just before the retained ones: the
    /// `ShareAccepted` events of the records [`Projection::refill_range`] named, in ledger order
    /// (other events are skipped). Refused, changing nothing, unless they are exactly that
    /// interval's shares (their count and total weight match the marks) of known addresses.
    pub fn refill<'a>(
        &mut self,
        shares: impl IntoIterator<Item = &'a ShareAccepted>,
    ) -> Result<(), ProjectionError> {
        let s = &mut self.state;
        let every = s.mark_every();
        if s.share_base == 0 {
            return Err(ProjectionError::Refill("nothing is forgotten".into()));
        }
        let j = (s.share_base / every) as usize;
        let mut cumulative = s.share_marks[j - 1].cumulative_before;
        let mut addresses = Vec::with_capacity(every as usize);
        let mut sums = Vec::with_capacity(every as usize);
        for share in shares {
            let a = s.addresses.get(&share.address.0).ok_or_else(|| {
                ProjectionError::Refill(format!("unknown address {}", share.address.0))
            })?;
            cumulative += share.weight;
            addresses.push(a);
            sums.push(cumulative);
        }
        if addresses.len() as u64 != every || cumulative != s.share_cumulative_base {
            return Err(ProjectionError::Refill(format!(
                "{} shares given, the interval before share {} holds {every} (or their weight \
                 differs)",
                addresses.len(),
                s.share_base
            )));
        }
        addresses.extend_from_slice(&s.share_address);
        sums.extend_from_slice(&s.share_cumulative);
        s.share_address = addresses;
        s.share_cumulative = sums;
        s.share_base -= every;
        s.share_cumulative_base = s.share_marks[j - 1].cumulative_before;
        Ok(())
    }
}
