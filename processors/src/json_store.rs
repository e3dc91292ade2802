//! Processor state kept as JSON in the runtime's stores: readable with `tcom`'s store dumps
//! and free of schema-registry lookups on the hot path.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tcom_state::{Context, ProcessError};

/// Reads and parses a value.
///
/// # Errors
/// The store failed, or the value does not parse (a bug: it was written by this code).
pub(crate) fn load<T: DeserializeOwned>(
    ctx: &Context<'_>,
    store: &str,
    key: &str,
) -> Result<Option<T>, ProcessError> {
    ctx.get(store, key.as_bytes())?
        .map(|bytes| {
            serde_json::from_slice(&bytes).map_err(|e| {
                ProcessError::Permanent(format!("stored {store}/{key} does not parse: {e}"))
            })
        })
        .transpose()
}

/// Writes a value.
///
/// # Errors
/// An undeclared store.
pub(crate) fn save<T: Serialize>(
    ctx: &mut Context<'_>,
    store: &str,
    key: &str,
    value: &T,
) -> Result<(), ProcessError> {
    let bytes = serde_json::to_vec(value).expect("state serializes");
    ctx.put(store, key.as_bytes().to_vec(), bytes)
}
