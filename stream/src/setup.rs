//! Connecting to the NATS cluster and making sure the stream is there, as the pool needs it.
//!
//! The stream ([`stream_config`]):
//! - subjects `{prefix}.batch.>` (every edge's batches);
//! - **work-queue retention**: a message is removed once the core has acknowledged it, which
//!   it does only after the batch is durable in the ledger; nothing else removes one;
//! - no age limit, no message-count limit, a byte cap ([`StreamSettings::max_bytes`]) with
//!   **`discard: new`**: a full stream refuses new batches (edges stop acknowledging) instead of
//!   deleting unconsumed ones;
//! - file storage, [`StreamSettings::replicas`] replicas, the duplicate window
//!   [`StreamSettings::duplicate_window`].
//!
//! [`ensure_stream`] creates the stream if it is missing and refuses one whose settings could
//! drop an unconsumed message (another retention, an age limit, `discard: old`, …), naming the
//! setting: it never changes an existing stream behind the operator's back.

use crate::settings::StreamSettings;
use async_nats::jetstream::{self, stream};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot connect to NATS at {servers}: {message}")]
    Connect { servers: String, message: String },
    #[error("JetStream stream {name}: {message}")]
    Stream { name: String, message: String },
    #[error("JetStream stream {name} exists with settings that could drop unconsumed messages or change the pool's guarantees: {problems}; fix or delete the stream (nats stream edit/rm)")]
    Unsafe { name: String, problems: String },
}

/// Connects to the servers (in the configured order first; the client reconnects on its own and
/// keeps retrying an initial connection in the background, so a cluster that is down at start
/// is waited for, not fatal). Connection state changes are logged.
pub async fn connect(
    settings: &StreamSettings,
    name: &str,
) -> Result<async_nats::Client, SetupError> {
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("NATS connected"),
                async_nats::Event::Disconnected => {
                    tracing::warn!("NATS disconnected; reconnecting")
                }
                // Every failed reconnect attempt: the publisher and the consumer say, once and
                // then every few seconds, what waits because of it.
                async_nats::Event::ClientError(e) => tracing::debug!("NATS: {e}"),
                other => tracing::info!("NATS: {other}"),
            }
        });
    if let (Some(user), Some(password)) = (&settings.user, &settings.password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    let servers: Vec<async_nats::ServerAddr> = settings
        .servers
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()
        .map_err(|e: std::io::Error| SetupError::Connect {
            servers: settings.servers.join(","),
            message: e.to_string(),
        })?;
    options
        .connect(servers)
        .await
        .map_err(|e| SetupError::Connect {
            servers: settings.servers.join(","),
            message: e.to_string(),
        })
}

/// A JetStream context with the settings' ack timeout.
pub fn jetstream(client: async_nats::Client, settings: &StreamSettings) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(settings.ack_timeout)
        .build(client)
}

/// The stream as the pool creates it (see the module docs).
pub fn stream_config(settings: &StreamSettings) -> stream::Config {
    stream::Config {
        name: settings.name.clone(),
        subjects: vec![settings.subjects().batches()],
        retention: stream::RetentionPolicy::WorkQueue,
        discard: stream::DiscardPolicy::New,
        max_bytes: i64::try_from(settings.max_bytes).unwrap_or(i64::MAX),
        max_messages: -1,
        max_age: Duration::ZERO,
        storage: stream::StorageType::File,
        num_replicas: settings.replicas,
        duplicate_window: settings.duplicate_window,
        ..Default::default()
    }
}

/// What in an existing stream's config breaks the pool's guarantees (empty: nothing).
pub fn unsafe_settings(found: &stream::Config, wanted: &stream::Config) -> Vec<String> {
    let mut problems = Vec::new();
    if found.retention != wanted.retention {
        problems.push(format!("retention is {:?}, not WorkQueue", found.retention));
    }
    if found.discard != wanted.discard {
        problems.push(format!("discard is {:?}, not New", found.discard));
    }
    if !found.max_age.is_zero() {
        problems.push(format!("max_age is {:?}, not unlimited", found.max_age));
    }
    if found.max_messages > 0 {
        problems.push(format!("max_msgs is {}, not unlimited", found.max_messages));
    }
    if found.max_messages_per_subject > 0 {
        problems.push(format!(
            "max_msgs_per_subject is {}, not unlimited",
            found.max_messages_per_subject
        ));
    }
    if found.storage != wanted.storage {
        problems.push(format!("storage is {:?}, not File", found.storage));
    }
    if found.num_replicas < wanted.num_replicas {
        problems.push(format!(
            "{} replicas, fewer than the configured {}",
            found.num_replicas, wanted.num_replicas
        ));
    }
    if found.duplicate_window < wanted.duplicate_window {
        problems.push(format!(
            "duplicate window {:?}, shorter than the configured {:?}",
            found.duplicate_window, wanted.duplicate_window
        ));
    }
    if !found.subjects.iter().any(|s| wanted.subjects.contains(s)) {
        problems.push(format!(
            "subjects {:?} do not include {:?}",
            found.subjects, wanted.subjects
        ));
    }
    problems
}

/// Creates the stream if it is missing, or checks the one that exists (see the module docs).
/// During a leader election the server may answer "no responders" for a few seconds: this
/// retries for up to `patience`.
pub async fn ensure_stream(
    js: &jetstream::Context,
    settings: &StreamSettings,
    patience: Duration,
) -> Result<stream::Stream, SetupError> {
    let wanted = stream_config(settings);
    let started = std::time::Instant::now();
    let err = |message: String| SetupError::Stream {
        name: settings.name.clone(),
        message,
    };
    loop {
        let attempt = match js.get_stream(&settings.name).await {
            Ok(mut existing) => match existing.info().await {
                Ok(info) => {
                    let problems = unsafe_settings(&info.config, &wanted);
                    if !problems.is_empty() {
                        return Err(SetupError::Unsafe {
                            name: settings.name.clone(),
                            problems: problems.join("; "),
                        });
                    }
                    Ok(existing)
                }
                Err(e) => Err(e.to_string()),
            },
            Err(e)
                if matches!(
                    e.kind(),
                    jetstream::context::GetStreamErrorKind::JetStream(j)
                        if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
                ) =>
            {
                match js.create_stream(wanted.clone()).await {
                    Ok(created) => {
                        tracing::info!(
                            stream = %settings.name,
                            replicas = settings.replicas,
                            "JetStream stream created"
                        );
                        Ok(created)
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            Err(e) => Err(e.to_string()),
        };
        match attempt {
            Ok(stream) => return Ok(stream),
            Err(message) if started.elapsed() < patience => {
                tracing::warn!(stream = %settings.name, "stream not ready yet ({message}); retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(message) => return Err(err(message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_never_deletes_unconsumed_messages() {
        let s = StreamSettings::new(vec!["nats://127.0.0.1:4222".into()]);
        let c = stream_config(&s);
        assert_eq!(c.retention, stream::RetentionPolicy::WorkQueue);
        assert_eq!(c.discard, stream::DiscardPolicy::New);
        assert!(c.max_age.is_zero());
        assert_eq!(c.num_replicas, 3);
        assert_eq!(c.subjects, vec!["obtc.batch.>".to_string()]);
        assert!(unsafe_settings(&c, &c).is_empty());
        let mut limits = c.clone();
        limits.retention = stream::RetentionPolicy::Limits;
        limits.max_age = Duration::from_secs(60);
        limits.discard = stream::DiscardPolicy::Old;
        let problems = unsafe_settings(&limits, &c);
        assert_eq!(problems.len(), 3, "{problems:?}");
    }
}
