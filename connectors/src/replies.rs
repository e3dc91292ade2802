//! Publishes committed command replies on Redis pub/sub, where the waiting ingress instance
//! listens (DESIGN section 6).

use std::sync::Mutex;

use tcom_processors::outcome::{ReplyMessage, reply_channel};
use tcom_state::{Reply, ReplyBody, ReplySink};

/// A [`ReplySink`] on Redis. Publishing happens on the runtime's thread after commit, with a
/// blocking connection kept open and re-opened after a failure.
pub struct RedisReplySink {
    client: redis::Client,
    connection: Mutex<Option<redis::Connection>>,
    /// Bound on connecting and on each answer: this runs on the runtime's thread, and a Redis
    /// that accepts connections but never answers must not stall processing.
    timeout: std::time::Duration,
}

impl std::fmt::Debug for RedisReplySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisReplySink").finish_non_exhaustive()
    }
}

impl RedisReplySink {
    /// A sink for the Redis at `url`; connects on first use.
    ///
    /// # Errors
    /// The URL is invalid.
    pub fn new(url: &str) -> redis::RedisResult<Self> {
        Self::with_timeout(url, std::time::Duration::from_millis(500))
    }

    /// A sink whose connection and answers are bounded by `timeout`.
    ///
    /// # Errors
    /// The URL is invalid.
    pub fn with_timeout(url: &str, timeout: std::time::Duration) -> redis::RedisResult<Self> {
        Ok(Self {
            client: redis::Client::open(url)?,
            connection: Mutex::new(None),
            timeout,
        })
    }

    /// The JSON of a [`ReplyMessage`]. A processed command's body already is an outcome's
    /// JSON (written by the processor), so it is spliced in as it is, not parsed again.
    fn message(reply: &Reply) -> String {
        let command_id = serde_json::to_string(&reply.command_id).expect("a string serializes");
        match &reply.body {
            ReplyBody::Processed(outcome) => format!(
                r#"{{"command_id":{command_id},"outcome":{}}}"#,
                String::from_utf8_lossy(outcome)
            ),
            ReplyBody::DeadLettered(error) => serde_json::to_string(&ReplyMessage {
                command_id: reply.command_id.clone(),
                outcome: None,
                dead_lettered: Some(error.clone()),
                key_reused: false,
            })
            .expect("a reply serializes"),
            ReplyBody::KeyReused => serde_json::to_string(&ReplyMessage {
                command_id: reply.command_id.clone(),
                outcome: None,
                dead_lettered: None,
                key_reused: true,
            })
            .expect("a reply serializes"),
        }
    }

    fn try_publish(&self, replies: &[Reply]) -> redis::RedisResult<()> {
        let mut guard = self.connection.lock().expect("reply connection lock");
        if guard.is_none() {
            let connection = self.client.get_connection_with_timeout(self.timeout)?;
            connection.set_read_timeout(Some(self.timeout))?;
            connection.set_write_timeout(Some(self.timeout))?;
            *guard = Some(connection);
        }
        let connection = guard.as_mut().expect("connected above");
        let mut pipe = redis::pipe();
        for reply in replies {
            let payload = Self::message(reply);
            pipe.cmd("PUBLISH")
                .arg(reply_channel(&reply.reply_to))
                .arg(payload)
                .ignore();
        }
        let result = pipe.query::<()>(connection);
        if result.is_err() {
            *guard = None;
        }
        result
    }
}

impl ReplySink for RedisReplySink {
    fn publish(&self, replies: Vec<Reply>) {
        // One retry on a fresh connection; after that the callers fall back to polling.
        if let Err(first) = self.try_publish(&replies)
            && let Err(e) = self.try_publish(&replies)
        {
            tracing::warn!(error = %e, first = %first, count = replies.len(), "Could not publish command replies.");
        }
    }
}
