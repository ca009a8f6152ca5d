//! `[stream]` and `[edge]`: the scale-out roles (`obtc-pool edge`, `obtc-pool core`). The
//! all-in-one `obtc-pool run` ignores both.
//!
//! ```toml
//! [stream]
//! servers = ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222", "nats://10.0.0.3:4222"]
//! # user = "obtc"            # NATS credentials, both or neither
//! # password = "..."
//! # name = "OBTC"            # the JetStream stream
//! # subject_prefix = "obtc"
//! # replicas = 3
//! # max_mb = 1024            # full: edges stop acknowledging (discard new), nothing is deleted
//! # duplicate_window_secs = 120
//! # ack_timeout_ms = 2000
//! # max_batch_events = 4096
//! # consumer = "obtc-core"
//! # control_interval_ms = 2000
//!
//! [edge]
//! id = 1                      # 1-255, unique per edge: the first byte of its extranonce1s
//! ```

use super::{invalid, ParseError};
use serde::Deserialize;
use std::time::Duration;
pub use stream::StreamSettings;

/// `[edge]`: this edge's identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeSettings {
    /// 1-255, unique among the pool's edges.
    pub id: u16,
}

// ---- the file as written ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStream {
    servers: Vec<String>,
    user: Option<String>,
    password: Option<String>,
    name: Option<String>,
    subject_prefix: Option<String>,
    replicas: Option<usize>,
    max_mb: Option<u64>,
    duplicate_window_secs: Option<u64>,
    ack_timeout_ms: Option<u64>,
    max_batch_events: Option<usize>,
    consumer: Option<String>,
    control_interval_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEdge {
    id: u16,
}

/// A NATS name token: letters, digits, `-` and `_` (no dots, spaces or wildcards).
fn token(key: &'static str, s: String) -> Result<String, ParseError> {
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid(
            key,
            format!("{s:?} must be letters, digits, '-' or '_'"),
        ));
    }
    Ok(s)
}

pub(super) fn stream_settings(raw: RawStream) -> Result<StreamSettings, ParseError> {
    if raw.servers.is_empty() {
        return Err(invalid(
            "stream.servers",
            "name at least one NATS server URL",
        ));
    }
    for s in &raw.servers {
        if s.parse::<async_nats_addr::ServerAddr>().is_err() {
            return Err(invalid(
                "stream.servers",
                format!("{s:?} is not a NATS URL (nats://host:port)"),
            ));
        }
    }
    let mut settings = StreamSettings::new(raw.servers);
    if raw.user.is_some() != raw.password.is_some() {
        return Err(invalid(
            "stream.user/stream.password",
            "give both or neither",
        ));
    }
    settings.user = raw.user;
    settings.password = raw.password;
    if let Some(n) = raw.name {
        settings.name = token("stream.name", n)?;
    }
    if let Some(p) = raw.subject_prefix {
        settings.subject_prefix = token("stream.subject_prefix", p)?;
    }
    if let Some(r) = raw.replicas {
        if !(1..=5).contains(&r) {
            return Err(invalid("stream.replicas", format!("{r} must be 1 to 5")));
        }
        settings.replicas = r;
    }
    if let Some(mb) = raw.max_mb {
        if mb == 0 {
            return Err(invalid("stream.max_mb", "must be at least 1"));
        }
        settings.max_bytes = mb.saturating_mul(1 << 20);
    }
    if let Some(s) = raw.duplicate_window_secs {
        if s < 10 {
            return Err(invalid(
                "stream.duplicate_window_secs",
                format!("{s} is too short: an edge retries a batch for most of the window"),
            ));
        }
        settings.duplicate_window = Duration::from_secs(s);
    }
    if let Some(ms) = raw.ack_timeout_ms {
        if ms < 100 || Duration::from_millis(ms) * 4 > settings.duplicate_window {
            return Err(invalid(
                "stream.ack_timeout_ms",
                format!("{ms} must be at least 100 and at most a quarter of the duplicate window"),
            ));
        }
        settings.ack_timeout = Duration::from_millis(ms);
    }
    if let Some(n) = raw.max_batch_events {
        if n == 0 {
            return Err(invalid("stream.max_batch_events", "must be at least 1"));
        }
        settings.max_batch_events = n;
    }
    if let Some(c) = raw.consumer {
        settings.consumer = token("stream.consumer", c)?;
    }
    if let Some(ms) = raw.control_interval_ms {
        if ms < 100 {
            return Err(invalid(
                "stream.control_interval_ms",
                format!("{ms} must be at least 100"),
            ));
        }
        settings.control_interval = Duration::from_millis(ms);
    }
    Ok(settings)
}

pub(super) fn edge_settings(raw: RawEdge) -> Result<EdgeSettings, ParseError> {
    if !(1..=255).contains(&raw.id) {
        return Err(invalid(
            "edge.id",
            format!(
                "{} must be 1 to 255 (the first byte of the edge's extranonce1s)",
                raw.id
            ),
        ));
    }
    Ok(EdgeSettings { id: raw.id })
}

/// The URL check without a dependency on the NATS client here.
mod async_nats_addr {
    pub struct ServerAddr;

    impl std::str::FromStr for ServerAddr {
        type Err = ();
        fn from_str(s: &str) -> Result<ServerAddr, ()> {
            let rest = s
                .strip_prefix("nats://")
                .or_else(|| s.strip_prefix("tls://"))
                .unwrap_or(s);
            let rest = rest.rsplit('@').next().unwrap_or(rest);
            match rest.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                    Ok(ServerAddr)
                }
                _ => Err(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{minimal, problem};
    use super::super::Config;
    use std::path::Path;
    use std::time::Duration;

    #[test]
    fn stream_and_edge_sections_load_with_defaults() {
        let text = minimal("")
            + "[stream]\nservers = [\"nats://127.0.0.1:4222\", \"nats://127.0.0.1:4223\"]\n[edge]\nid = 2\n";
        let c = Config::parse(&text, Path::new(".")).unwrap();
        let s = c.stream.unwrap();
        assert_eq!(s.servers.len(), 2);
        assert_eq!((s.name.as_str(), s.replicas), ("OBTC", 3));
        assert_eq!(s.duplicate_window, Duration::from_secs(120));
        assert_eq!(c.edge.unwrap().id, 2);
        assert!(Config::parse(&minimal(""), Path::new("."))
            .unwrap()
            .stream
            .is_none());
    }

    #[test]
    fn bad_stream_and_edge_values_are_named() {
        let base = minimal("");
        let t = |extra: &str| format!("{base}{extra}");
        assert_eq!(problem(&t("[stream]\nservers = []\n")).0, "stream.servers");
        assert_eq!(
            problem(&t("[stream]\nservers = [\"nowhere\"]\n")).0,
            "stream.servers"
        );
        assert_eq!(
            problem(&t("[stream]\nservers = [\"nats://h:1\"]\nname = \"a.b\"\n")).0,
            "stream.name"
        );
        assert_eq!(
            problem(&t("[stream]\nservers = [\"nats://h:1\"]\nreplicas = 0\n")).0,
            "stream.replicas"
        );
        assert_eq!(problem(&t("[edge]\nid = 0\n")).0, "edge.id");
        assert_eq!(problem(&t("[edge]\nid = 256\n")).0, "edge.id");
    }
}
