//! The answer to a command, as a processor decides it and the ingress turns it into HTTP.

use serde::{Deserialize, Serialize};

use crate::domain::Violation;

/// Why a command was refused, which decides the HTTP status the caller sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The command breaks a rule (422).
    Invalid,
    /// It clashes with the current state, e.g. a domain another tenant has (409).
    Conflict,
    /// It names something that does not exist (404).
    NotFound,
}

/// A processor's decision on one command. Serialized as JSON into the reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Accepted {
        /// The entity's version after the command.
        version: i64,
        /// The entity as it now is.
        resource: serde_json::Value,
    },
    Rejected {
        refusal: Refusal,
        /// Stable code: the first violation's code when there are violations.
        code: String,
        detail: String,
        #[serde(default)]
        violations: Vec<Violation>,
    },
}

impl Outcome {
    /// Accepts with the entity as JSON.
    pub fn accepted(version: i64, resource: &impl Serialize) -> Self {
        Self::Accepted {
            version,
            resource: serde_json::to_value(resource).unwrap_or(serde_json::Value::Null),
        }
    }

    /// Refuses for one reason.
    pub fn rejected(refusal: Refusal, code: &str, detail: impl Into<String>) -> Self {
        Self::Rejected {
            refusal,
            code: code.to_owned(),
            detail: detail.into(),
            violations: Vec::new(),
        }
    }

    /// Refuses for every violation at once; `None` when there are none.
    pub fn violated(refusal: Refusal, violations: Vec<Violation>) -> Option<Self> {
        let first = violations.first()?;
        Some(Self::Rejected {
            refusal,
            code: first.code.clone(),
            detail: match violations.len() {
                1 => first.detail.clone(),
                n => format!("{} (and {} more problems)", first.detail, n - 1),
            },
            violations,
        })
    }

    /// The JSON bytes for [`tcom_state::Context::reply`].
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an outcome serializes")
    }
}

/// The Redis channel an ingress instance listens on for its replies.
pub fn reply_channel(reply_to: &str) -> String {
    format!("tcom:replies:{reply_to}")
}

/// What travels on a reply channel: the command it answers and either the processor's
/// outcome or why the command was dead-lettered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyMessage {
    pub command_id: String,
    #[serde(default)]
    pub outcome: Option<Outcome>,
    #[serde(default)]
    pub dead_lettered: Option<String>,
    /// The idempotency key was used before for a different request.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub key_reused: bool,
}
