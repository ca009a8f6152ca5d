//! `[stratum]`: how the Stratum server listens, with `[stratum.vardiff]`, `[stratum.flood]` and
//! `[stratum.bans]`.

use super::{invalid, parse_addr, positive_difficulty, secs, ParseError};
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq)]
pub struct StratumSettings {
    pub listen: SocketAddr,
    pub extranonce2_size: usize,
    /// Text put in every coinbase's script after the height.
    pub pool_tag: String,
    /// BIP 310 version bits miners may roll.
    pub version_rolling_mask: u32,
    pub max_line_bytes: usize,
    pub max_connections_per_ip: usize,
    pub idle_timeout: Duration,
    pub vardiff: VardiffSettings,
    /// When a connection's shares are a flood (`[stratum.flood]`).
    pub flood: stratum::flood::FloodConfig,
    /// When repeat flooders are banned (`[stratum.bans]`).
    pub bans: stratum::ban::BanConfig,
}

/// Difficulties in the chain's unit (`ChainParams::difficulty_unit`: on scrypt presets 1 is
/// 65,536 Bitcoin difficulty-1 targets), as miners see them in `mining.set_difficulty`.
#[derive(Clone, Debug, PartialEq)]
pub struct VardiffSettings {
    pub target_share_interval: Duration,
    pub min_difficulty: f64,
    pub max_difficulty: f64,
    pub start_difficulty: f64,
}

// ---- the file as written ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawStratum {
    listen: String,
    extranonce2_size: usize,
    pool_tag: String,
    version_rolling_mask: String,
    max_line_bytes: usize,
    max_connections_per_ip: usize,
    idle_timeout_secs: u64,
    vardiff: RawVardiff,
    flood: RawFlood,
    bans: RawBans,
}

impl Default for RawStratum {
    fn default() -> Self {
        RawStratum {
            listen: "0.0.0.0:3333".into(),
            extranonce2_size: 4,
            pool_tag: "/obtc-pool/".into(),
            version_rolling_mask: "1fffe000".into(),
            max_line_bytes: 16 * 1024,
            max_connections_per_ip: 256,
            idle_timeout_secs: 600,
            vardiff: RawVardiff::default(),
            flood: RawFlood::default(),
            bans: RawBans::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawFlood {
    enabled: bool,
    window: u32,
    ratio: f64,
    min_invalid: u32,
}

impl Default for RawFlood {
    fn default() -> Self {
        let d = stratum::flood::FloodConfig::default();
        RawFlood {
            enabled: d.enabled,
            window: d.window,
            ratio: d.ratio,
            min_invalid: d.min_invalid,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawBans {
    offence_window_secs: u64,
    worker_after_cuts: u32,
    ip_after_cuts: u32,
    ban_secs: u64,
    allowlist: Vec<String>,
}

impl Default for RawBans {
    fn default() -> Self {
        let d = stratum::ban::BanConfig::default();
        RawBans {
            offence_window_secs: d.offence_window.as_secs(),
            worker_after_cuts: d.worker_after_cuts,
            ip_after_cuts: d.ip_after_cuts,
            ban_secs: d.ban_duration.as_secs(),
            allowlist: d.allowlist.iter().map(|r| r.to_string()).collect(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawVardiff {
    target_share_secs: f64,
    min_difficulty: f64,
    max_difficulty: f64,
    start_difficulty: f64,
}

impl Default for RawVardiff {
    fn default() -> Self {
        RawVardiff {
            target_share_secs: 10.0,
            min_difficulty: 0.001,
            max_difficulty: 1e12,
            start_difficulty: 1.0,
        }
    }
}

pub(super) fn stratum_settings(raw: RawStratum) -> Result<StratumSettings, ParseError> {
    let listen = parse_addr("stratum.listen", &raw.listen)?;
    if !(1..=8).contains(&raw.extranonce2_size) {
        return Err(invalid(
            "stratum.extranonce2_size",
            format!("{} must be between 1 and 8 bytes", raw.extranonce2_size),
        ));
    }
    if raw.pool_tag.len() > 40 {
        return Err(invalid(
            "stratum.pool_tag",
            "longer than 40 bytes (the coinbase script holds at most 100)",
        ));
    }
    let mask_hex = raw.version_rolling_mask.trim_start_matches("0x");
    let version_rolling_mask = u32::from_str_radix(mask_hex, 16).map_err(|e| {
        invalid(
            "stratum.version_rolling_mask",
            format!("{:?} is not a hex u32: {e}", raw.version_rolling_mask),
        )
    })?;
    if raw.max_line_bytes < 512 {
        return Err(invalid(
            "stratum.max_line_bytes",
            "must be at least 512 (a mining.submit line is ~200 bytes)",
        ));
    }
    if raw.max_connections_per_ip == 0 {
        return Err(invalid(
            "stratum.max_connections_per_ip",
            "must be at least 1",
        ));
    }
    let v = raw.vardiff;
    if !(v.target_share_secs.is_finite() && v.target_share_secs >= 0.1) {
        return Err(invalid(
            "stratum.vardiff.target_share_secs",
            "must be at least 0.1 seconds",
        ));
    }
    let min = positive_difficulty("stratum.vardiff.min_difficulty", v.min_difficulty)?;
    let max = positive_difficulty("stratum.vardiff.max_difficulty", v.max_difficulty)?;
    let start = positive_difficulty("stratum.vardiff.start_difficulty", v.start_difficulty)?;
    if !(min <= start && start <= max) {
        return Err(invalid(
            "stratum.vardiff",
            format!("need min_difficulty <= start_difficulty <= max_difficulty, got {min} / {start} / {max}"),
        ));
    }
    let f = raw.flood;
    let flood = stratum::flood::FloodConfig {
        enabled: f.enabled,
        window: f.window,
        ratio: f.ratio,
        min_invalid: f.min_invalid,
    };
    if let Some(problem) = flood.problem() {
        return Err(invalid("stratum.flood", problem));
    }
    let b = raw.bans;
    let allowlist = b
        .allowlist
        .iter()
        .map(|s| s.parse())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e: stratum::ban::IpRangeError| {
            invalid("stratum.bans.allowlist", e.to_string())
        })?;
    let bans = stratum::ban::BanConfig {
        offence_window: secs("stratum.bans.offence_window_secs", b.offence_window_secs)?,
        worker_after_cuts: b.worker_after_cuts,
        ip_after_cuts: b.ip_after_cuts,
        ban_duration: secs("stratum.bans.ban_secs", b.ban_secs)?,
        allowlist,
    };
    Ok(StratumSettings {
        listen,
        extranonce2_size: raw.extranonce2_size,
        pool_tag: raw.pool_tag,
        version_rolling_mask,
        max_line_bytes: raw.max_line_bytes,
        max_connections_per_ip: raw.max_connections_per_ip,
        idle_timeout: secs("stratum.idle_timeout_secs", raw.idle_timeout_secs)?,
        vardiff: VardiffSettings {
            target_share_interval: Duration::from_millis((v.target_share_secs * 1000.0) as u64),
            min_difficulty: min,
            max_difficulty: max,
            start_difficulty: start,
        },
        flood,
        bans,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{minimal, problem};
    use crate::config::Config;
    use std::path::Path;

    #[test]
    fn flood_and_ban_settings_default_and_are_checked() {
        let c = Config::parse(&minimal(""), Path::new(".")).unwrap();
        assert_eq!(c.stratum.flood, stratum::flood::FloodConfig::default());
        assert_eq!(c.stratum.bans, stratum::ban::BanConfig::default());
        let text = minimal("")
            + "[stratum.flood]\nwindow = 20\nratio = 0.5\nmin_invalid = 5\n"
            + "[stratum.bans]\nworker_after_cuts = 1\nip_after_cuts = 0\nban_secs = 60\n"
            + "allowlist = [\"192.0.2.0/24\", \"2001:db8::7\"]\n";
        let c = Config::parse(&text, Path::new(".")).unwrap();
        assert_eq!(c.stratum.flood.window, 20);
        assert_eq!(c.stratum.flood.min_invalid, 5);
        assert_eq!(c.stratum.bans.worker_after_cuts, 1);
        assert_eq!(c.stratum.bans.ip_after_cuts, 0);
        assert_eq!(c.stratum.bans.ban_duration, Duration::from_secs(60));
        assert_eq!(c.stratum.bans.allowlist.len(), 2);
        for (section, key) in [
            ("[stratum.flood]\nratio = 1.5\n", "stratum.flood"),
            ("[stratum.flood]\nwindow = 10\n", "stratum.flood"),
            ("[stratum.bans]\nban_secs = 0\n", "stratum.bans.ban_secs"),
            (
                "[stratum.bans]\nallowlist = [\"10.0.0.0/40\"]\n",
                "stratum.bans.allowlist",
            ),
        ] {
            assert_eq!(problem(&(minimal("") + section)).0, key, "{section}");
        }
    }
}
