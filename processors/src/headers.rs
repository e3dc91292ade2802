//! Headers the processors put on the records they produce: the tenant, and the address of a
//! waiting caller that a saga step carries along (see [`tcom_state::reply`]).

use tcom_state::reply::{ORIGIN_COMMAND_ID_HEADER, ORIGIN_REPLY_TO_HEADER};
use tcom_state::{Output, Record};

/// The header naming the tenant on every record the platform produces.
pub const TENANT_HEADER: &str = "tenant";

/// The origin headers of a record, when it continues a waiting shopper's command.
pub(crate) fn origin_of(record: &Record<'_>) -> Option<(String, Vec<u8>)> {
    let reply_to = record.header(ORIGIN_REPLY_TO_HEADER)?;
    let command_id = record.header(ORIGIN_COMMAND_ID_HEADER)?;
    Some((
        String::from_utf8_lossy(reply_to).into_owned(),
        command_id.to_vec(),
    ))
}

/// Attaches origin headers to an output.
pub(crate) fn with_origin(output: Output, origin: Option<&(String, Vec<u8>)>) -> Output {
    match origin {
        Some((reply_to, command_id)) => output
            .with_header(ORIGIN_REPLY_TO_HEADER, reply_to.as_bytes())
            .with_header(ORIGIN_COMMAND_ID_HEADER, command_id.clone()),
        None => output,
    }
}
