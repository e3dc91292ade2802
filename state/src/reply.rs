//! Replies to commands: how a processor's decision reaches the caller waiting for it.
//!
//! A command carries a `command-id` and a `reply-to` header (the waiting ingress instance).
//! The processor attaches a reply body while handling it; the runtime publishes the replies of
//! a transaction only after that transaction committed, so a caller is never told about a
//! decision that a crash could still undo. The body is also kept with the command id, so a
//! command delivered again (a retry with the same id) is answered with the first decision
//! instead of being decided twice.

/// Header naming where the reply goes.
pub const REPLY_TO_HEADER: &str = "reply-to";

/// Headers of a record that continues another processor's command (a saga step, e.g. a number
/// reservation asked for by a basket): where the *original* command's reply goes and its id.
/// They are not `reply-to`/`command-id`, so the intermediate processor does not answer the
/// caller itself; the processor that finishes the work answers with
/// [`crate::Context::reply_to_origin`].
pub const ORIGIN_REPLY_TO_HEADER: &str = "origin-reply-to";
/// See [`ORIGIN_REPLY_TO_HEADER`].
pub const ORIGIN_COMMAND_ID_HEADER: &str = "origin-command-id";

/// What a command came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyBody {
    /// The processor handled it and answered this (domain-defined bytes, e.g. JSON).
    Processed(Vec<u8>),
    /// The processor could not handle it; it went to the dead-letter topic with this error.
    DeadLettered(String),
    /// The command id was used before for a different request (its fingerprint differs):
    /// neither decided again nor answered with the other request's outcome.
    KeyReused,
}

/// One reply, addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub reply_to: String,
    pub command_id: String,
    pub body: ReplyBody,
}

/// Where committed replies go (Redis pub/sub in the platform).
pub trait ReplySink: Send + Sync + std::fmt::Debug {
    /// Called on the runtime's thread after the transaction deciding these commands
    /// committed. A failure here loses only the notification, not the decision: the waiting
    /// caller falls back to polling the view, so implementations log and return.
    fn publish(&self, replies: Vec<Reply>);
}

/// Header with a fingerprint of the request a command came from (the ingress hashes method,
/// path and body). A command whose id was already processed with another fingerprint is a
/// client reusing an idempotency key for a different request.
pub const COMMAND_FINGERPRINT_HEADER: &str = "command-fingerprint";

/// The command-id store key under which a command's fingerprint is kept, beside its decision.
pub(crate) fn fingerprint_key(command_id: &[u8]) -> Vec<u8> {
    let mut key = command_id.to_vec();
    key.extend_from_slice(b"\x1ffingerprint");
    key
}

/// Splits a command-id store value into the time it was processed and the reply kept with it.
pub(crate) fn split_seen(value: &[u8]) -> Option<&[u8]> {
    value.get(8..).filter(|body| !body.is_empty())
}
