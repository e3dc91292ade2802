//! Content notifications: verified webhooks from tenants' content spaces.

use serde::{Deserialize, Serialize};

/// A verified webhook, telling the content connector to sync a tenant now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentNotification {
    pub tenant_id: String,
    pub topic: String,
    #[serde(default)]
    pub entity_id: Option<String>,
    pub received_at: i64,
}
