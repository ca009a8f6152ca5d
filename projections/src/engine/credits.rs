//! Credit schemes: a block's credits from its rule (PPLNS window, PROP round, SOLO) and the
//! exact integer split.

use super::forget::window_work;
use super::{BlockRecord, State};
use crate::split::split_by_weight;
use pool_core::event::PayoutScheme;
use pool_core::Sats;
use ruint::aliases::U256;
use std::collections::BTreeMap;

impl State {
    /// Recomputes an immature block's credits by its rule and counts them in immature balances.
    pub(super) fn recredit(&mut self, i: u32) {
        self.uncount(i);
        let b = &self.blocks[i as usize];
        let pplns = matches!(b.rule.scheme, PayoutScheme::Pplns { .. });
        if pplns && b.pplns_credited {
            // Reinstated: the same window gives the same credits (see `pplns_credited`).
            self.count(i);
            return;
        }
        let weights: Vec<(u32, U256)> = match b.rule.scheme {
            PayoutScheme::Pplns {
                window_numerator,
                window_denominator,
            } => self.pplns_weights(b, window_numerator, window_denominator),
            PayoutScheme::Prop => self.round_weights(&b.round),
            PayoutScheme::Solo => Vec::new(),
        };
        let distributable = Sats(b.found.reward.0 - b.fee.0);
        let credits = self.credit_split(distributable, &weights, b.finder);
        let b = &mut self.blocks[i as usize];
        b.credits = credits;
        b.pplns_credited = pplns;
        self.count(i);
    }

    /// Splits by weight, ties by address string; with no weight at all the finder takes it.
    pub(super) fn credit_split(
        &self,
        amount: Sats,
        weights: &[(u32, U256)],
        finder: u32,
    ) -> Vec<(u32, Sats)> {
        if amount.0 == 0 {
            return Vec::new();
        }
        let keyed: Vec<((&str, u32), U256)> = weights
            .iter()
            .map(|(a, w)| ((self.addresses.name(*a).0.as_str(), *a), *w))
            .collect();
        let mut credits: Vec<(u32, Sats)> = split_by_weight(amount, &keyed)
            .into_iter()
            .map(|((_, a), s)| (a, s))
            .collect();
        if credits.is_empty() {
            credits.push((finder, amount));
        }
        credits.sort_unstable_by_key(|(a, _)| *a);
        credits
    }

    /// Weight per address over the segments of a PROP round.
    pub(super) fn round_weights(&self, round: &[u32]) -> Vec<(u32, U256)> {
        let mut by_address: BTreeMap<u32, U256> = BTreeMap::new();
        for s in round {
            for (a, w) in &self.segments[*s as usize].weights {
                let e = by_address.entry(*a).or_insert(U256::ZERO);
                *e = e.saturating_add(w.as_u256());
            }
        }
        by_address.into_iter().collect()
    }

    /// Weight per address over the PPLNS window before a block: the last
    /// `numerator / denominator × work(network target)` of share weight, the earliest share
    /// counting only for the part inside the window.
    pub(super) fn pplns_weights(
        &self,
        b: &BlockRecord,
        numerator: u32,
        denominator: u32,
    ) -> Vec<(u32, U256)> {
        if b.share_end == 0 {
            return Vec::new();
        }
        // `apply` refills forgotten shares before a block whose window reaches them folds
        // (engine/forget.rs), so the window lies within the retained shares.
        let end = (b.share_end - self.share_base) as usize;
        let window = window_work(numerator, denominator, &b.found.network_target);
        let cumulative = &self.share_cumulative[..end];
        let total = cumulative[end - 1].as_u256();
        let edge = total.saturating_sub(window);
        // The first share whose end lies beyond the window's edge.
        let first = cumulative.partition_point(|c| c.as_u256() <= edge);
        let mut acc: Vec<U256> = vec![U256::ZERO; self.addresses.len()];
        let mut touched: Vec<u32> = Vec::new();
        let mut start = if first == 0 {
            self.share_cumulative_base.as_u256()
        } else {
            cumulative[first - 1].as_u256()
        };
        start = start.max(edge);
        for (c, a) in cumulative[first..]
            .iter()
            .zip(&self.share_address[first..end])
        {
            let c = c.as_u256();
            let w = c - start;
            start = c;
            let slot = &mut acc[*a as usize];
            if slot.is_zero() {
                touched.push(*a);
            }
            *slot += w;
        }
        touched.sort_unstable();
        touched
            .into_iter()
            .map(|a| (a, acc[a as usize]))
            .filter(|(_, w)| !w.is_zero())
            .collect()
    }
}
