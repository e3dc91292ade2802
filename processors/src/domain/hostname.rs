//! Host names as tenants register them and as requests name them.

/// Lower-cases a host and drops its port and any trailing dot: `Shop.Example.com.:443` →
/// `shop.example.com`.
pub fn normalise_host(host: &str) -> Option<String> {
    let host = host.trim();
    let without_port = match host.rsplit_once(':') {
        // An IPv6 literal keeps its colons inside brackets.
        Some((name, port)) if !name.ends_with(']') || host.starts_with('[') => {
            if port.chars().all(|c| c.is_ascii_digit()) {
                name
            } else {
                host
            }
        }
        _ => host,
    };
    let name = without_port.trim_end_matches('.').to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    valid.then_some(name)
}
