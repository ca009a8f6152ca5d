//! The payout rule in force: recorded in the ledger when the configured one differs from the
//! one recorded last.

use anyhow::Context;
use pool_core::event::{NetworkFeePayer, PayoutRule, PayoutScheme};
use pool_core::Event;

/// Appends the configured rule (durably) unless it is the one recorded last.
pub async fn record_payout_rule(
    ledger: &ledger::Ledger,
    configured: &PayoutRule,
    recorded: Option<(u64, PayoutRule)>,
) -> anyhow::Result<()> {
    match recorded {
        Some((seq, rule)) if rule == *configured => {
            tracing::info!(seq, rule = %describe_rule(&rule), "payout rule unchanged");
        }
        previous => {
            let appended = ledger
                .append(Event::PayoutRuleSet(configured.clone()))
                .await
                .context("cannot record the payout rule in the ledger")?;
            match previous {
                Some((seq, rule)) => tracing::info!(
                    seq = appended.seq,
                    rule = %describe_rule(configured),
                    previous_seq = seq,
                    previous = %describe_rule(&rule),
                    "payout rule recorded (changed)"
                ),
                None => tracing::info!(
                    seq = appended.seq,
                    rule = %describe_rule(configured),
                    "payout rule recorded (first)"
                ),
            }
        }
    }
    Ok(())
}

/// One line for logs and reports: scheme and window, fee and its address, network fee payer.
pub fn describe_rule(rule: &PayoutRule) -> String {
    let scheme = match &rule.scheme {
        PayoutScheme::Pplns {
            window_numerator,
            window_denominator,
        } => format!("PPLNS window {window_numerator}/{window_denominator} x block work"),
        PayoutScheme::Prop => "PROP".to_owned(),
        PayoutScheme::Solo => "SOLO".to_owned(),
    };
    let fee_address = if rule.fee_address.0.is_empty() {
        "(none)"
    } else {
        rule.fee_address.0.as_str()
    };
    let payer = match rule.network_fee_payer {
        NetworkFeePayer::Pool => "pool",
        NetworkFeePayer::Miners => "miners",
    };
    format!(
        "{scheme}, pool fee {} bps to {fee_address}, network fees paid by {payer}",
        rule.fee_bps
    )
}
