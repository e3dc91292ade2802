//! Fault injection for crash tests: `TCOM_FAILPOINT=<name>:<n>` aborts the process the n-th
//! time the named point is reached. Unset (always, outside tests), a check is one load of a
//! cached value.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

struct Armed {
    name: String,
    at: u64,
    hits: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var("TCOM_FAILPOINT").ok()?;
            let (name, at) = spec.split_once(':')?;
            Some(Armed {
                name: name.to_owned(),
                at: at.parse().ok()?,
                hits: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Aborts the process if `name` is armed and reached for the configured time.
pub fn hit(name: &str) {
    if let Some(armed) = armed()
        && armed.name == name
        && armed.hits.fetch_add(1, Ordering::Relaxed) + 1 == armed.at
    {
        eprintln!("failpoint {name} reached: aborting");
        std::process::abort();
    }
}
