//! Secrets by reference. Tenant settings (and so Kafka topics) only ever name a secret; the
//! process that needs it resolves the name here, at the moment of use, so a rotated secret
//! is picked up without a restart:
//!
//! - `file://<name>`: the file `<name>` under the secrets directory (how Kubernetes mounts a
//!   `Secret`; locally `scripts/stack` writes the demo tenants' files there). `<name>` may not
//!   leave the directory.
//! - `env://<NAME>`: the environment variable `NAME`.
//!
//! Anything else is refused: a secret pasted into the settings by mistake is never used.

use std::path::{Component, Path, PathBuf};

/// Why a reference did not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("{0:?} is not a secret reference (expected file://<name> or env://<NAME>)")]
    NotAReference(String),
    #[error("secret {0:?} is not set")]
    Missing(String),
    #[error("secret {reference:?} is not one of tenant {tenant}'s (its path must name the tenant)")]
    OtherTenant { tenant: String, reference: String },
}

/// Resolves secret references.
#[derive(Debug, Clone)]
pub struct SecretStore {
    dir: PathBuf,
}

impl SecretStore {
    /// References `file://…` are read from under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The secret a reference names, without surrounding whitespace (files written by editors
    /// end with a newline).
    ///
    /// # Errors
    /// Not a reference, or nothing stored under it.
    pub fn resolve(&self, reference: &str) -> Result<String, SecretError> {
        let value = if let Some(name) = reference.strip_prefix("file://") {
            let relative = Path::new(name);
            let stays_inside = !name.is_empty()
                && relative
                    .components()
                    .all(|c| matches!(c, Component::Normal(_)));
            if !stays_inside {
                return Err(SecretError::NotAReference(reference.to_owned()));
            }
            std::fs::read_to_string(self.dir.join(relative)).ok()
        } else if let Some(name) = reference.strip_prefix("env://") {
            std::env::var(name).ok()
        } else {
            return Err(SecretError::NotAReference(reference.to_owned()));
        };
        value
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| SecretError::Missing(reference.to_owned()))
    }
}

impl SecretStore {
    /// [`Self::resolve`] for one tenant's settings: a `file://` reference must name the
    /// tenant in its path (a folder `<tenant>/`, or a file `<tenant>` or `<tenant>-…`), so a
    /// mistake in one tenant's settings can never hand it another tenant's key. `env://`
    /// references are the operator's own environment and are not checked.
    ///
    /// # Errors
    /// As [`Self::resolve`], or the file belongs to no folder or file of the tenant.
    pub fn resolve_for_tenant(&self, tenant: &str, reference: &str) -> Result<String, SecretError> {
        if let Some(name) = reference.strip_prefix("file://") {
            let names_tenant = name.split('/').any(|segment| {
                segment == tenant
                    || segment
                        .strip_prefix(tenant)
                        .is_some_and(|rest| rest.starts_with(['-', '.']))
            });
            if !names_tenant {
                return Err(SecretError::OtherTenant {
                    tenant: tenant.to_owned(),
                    reference: reference.to_owned(),
                });
            }
        }
        self.resolve(reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_resolve_under_the_directory_only() {
        let dir = std::env::temp_dir().join(format!("tcom-secrets-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("stripe")).unwrap();
        std::fs::write(dir.join("stripe/demo"), "sk_test_abc\n").unwrap();
        let store = SecretStore::new(&dir);
        assert_eq!(store.resolve("file://stripe/demo").unwrap(), "sk_test_abc");
        assert_eq!(
            store.resolve("file://stripe/other"),
            Err(SecretError::Missing("file://stripe/other".into()))
        );
        for escape in ["file://../etc/passwd", "file:///etc/passwd", "file://"] {
            assert!(
                matches!(store.resolve(escape), Err(SecretError::NotAReference(_))),
                "{escape}"
            );
        }
        assert!(matches!(
            store.resolve("sk_test_pasted"),
            Err(SecretError::NotAReference(_))
        ));
    }

    #[test]
    fn a_tenant_gets_only_files_that_name_it() {
        let dir = std::env::temp_dir().join(format!("tcom-secrets-{}", uuid::Uuid::new_v4()));
        for file in [
            "stripe/acme/key",
            "stripe/acme-webhook",
            "stripe/acmeplus/key",
        ] {
            let path = dir.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "s").unwrap();
        }
        let store = SecretStore::new(&dir);
        assert!(
            store
                .resolve_for_tenant("acme", "file://stripe/acme/key")
                .is_ok()
        );
        assert!(
            store
                .resolve_for_tenant("acme", "file://stripe/acme-webhook")
                .is_ok()
        );
        for foreign in ["file://stripe/acmeplus/key", "file://stripe/acme-webhook"] {
            let tenant = if foreign.contains("plus") {
                "acme"
            } else {
                "acm"
            };
            assert!(
                matches!(
                    store.resolve_for_tenant(tenant, foreign),
                    Err(SecretError::OtherTenant { .. })
                ),
                "{tenant} {foreign}"
            );
        }
    }

    #[test]
    fn environment_references_resolve() {
        let store = SecretStore::new("/nonexistent");
        // PATH is set in every test environment; an unset name is missing.
        assert!(store.resolve("env://PATH").is_ok());
        assert!(matches!(
            store.resolve("env://TCOM_SURELY_UNSET_SECRET"),
            Err(SecretError::Missing(_))
        ));
    }
}
