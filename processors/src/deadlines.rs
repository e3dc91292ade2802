//! Deadline indexes for expiry timers: a store whose keys are the deadline (8 bytes,
//! big-endian milliseconds, so key order is time order) followed by the entity's key. A timer
//! reads the due prefix of the index instead of scanning every entity.

use std::time::{SystemTime, UNIX_EPOCH};

use tcom_state::{Context, ProcessError};

/// The index key of `entity` due at `at` (ms since the epoch).
pub(crate) fn key(at: i64, entity: &str) -> Vec<u8> {
    let mut bytes = at.to_be_bytes().to_vec();
    bytes.extend_from_slice(entity.as_bytes());
    bytes
}

/// Milliseconds since the epoch of a timer's wall-clock time.
pub(crate) fn millis(now: SystemTime) -> i64 {
    now.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Removes up to `limit` entries due at or before `now` from `store` and returns their
/// entities' keys, earliest first.
///
/// # Errors
/// The store failed.
pub(crate) fn take_due(
    ctx: &mut Context<'_>,
    store: &str,
    now: i64,
    limit: usize,
) -> Result<Vec<String>, ProcessError> {
    let due = ctx.range(store, &[], &key(now + 1, ""), limit)?;
    let mut entities = Vec::with_capacity(due.len());
    for (index_key, _) in due {
        entities.push(String::from_utf8_lossy(&index_key[8..]).into_owned());
        ctx.delete(store, index_key)?;
    }
    Ok(entities)
}

/// Moves an entity's entry from `old` to `new` (either may be absent).
///
/// # Errors
/// An undeclared store.
pub(crate) fn reschedule(
    ctx: &mut Context<'_>,
    store: &str,
    entity: &str,
    old: Option<i64>,
    new: Option<i64>,
) -> Result<(), ProcessError> {
    if old == new {
        return Ok(());
    }
    if let Some(at) = old {
        ctx.delete(store, key(at, entity))?;
    }
    if let Some(at) = new {
        ctx.put(store, key(at, entity), Vec::new())?;
    }
    Ok(())
}
