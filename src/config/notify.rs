//! `[notify]`: the loopback listener for new-block triggers.

use super::{invalid, parse_addr, ParseError};
use serde::Deserialize;
use std::net::SocketAddr;

/// The loopback listener `obtc-pool notify` talks to (wire it to the node's `-blocknotify`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifySettings {
    pub listen: Option<SocketAddr>,
}

// ---- the file as written ----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    listen: Option<String>,
}

pub(super) fn notify_settings(raw: RawNotify) -> Result<NotifySettings, ParseError> {
    let notify = NotifySettings {
        listen: match raw.listen {
            Some(s) => Some(parse_addr("notify.listen", &s)?),
            None => None,
        },
    };
    if let Some(addr) = notify.listen {
        if !addr.ip().is_loopback() {
            return Err(invalid(
                "notify.listen",
                format!("{addr} is not a loopback address; the trigger has no authentication"),
            ));
        }
    }
    Ok(notify)
}
