//! The database role the platform connects as must be subject to Row-Level Security: a
//! superuser or a role with BYPASSRLS sees every tenant's rows whatever `app.tenant_id` says,
//! so tenant isolation in the views would be decoration. The platform refuses such a role at
//! start (and on every new pooled connection, in case the role changes later). Migrations
//! may run as a separate, more privileged role (`tcom migrate` with
//! `database.migration_url`).

use sqlx::PgConnection;

/// What the database says of the connected role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolePrivileges {
    pub name: String,
    pub superuser: bool,
    pub bypass_rls: bool,
}

impl RolePrivileges {
    /// Why this role must not serve tenants, if it must not.
    ///
    /// # Errors
    /// The reason, naming the role and what to do.
    pub fn check(&self) -> Result<(), String> {
        let power = match (self.superuser, self.bypass_rls) {
            (false, false) => return Ok(()),
            (true, _) => "is a superuser",
            (false, true) => "has BYPASSRLS",
        };
        Err(format!(
            "database role {:?} {power}, so Row-Level Security would not isolate tenants: \
             connect as a role without SUPERUSER and BYPASSRLS (run migrations with a separate role, \
             database.migration_url)",
            self.name
        ))
    }
}

/// Reads the connected role's privileges.
///
/// # Errors
/// The query fails.
pub async fn privileges(connection: &mut PgConnection) -> Result<RolePrivileges, sqlx::Error> {
    let (name, superuser, bypass_rls): (String, bool, bool) = sqlx::query_as(
        "SELECT rolname::text, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(connection)
    .await?;
    Ok(RolePrivileges {
        name,
        superuser,
        bypass_rls,
    })
}

/// Refuses a connection whose role can bypass Row-Level Security (for `after_connect`).
///
/// # Errors
/// The role may bypass RLS (a configuration error), or the query fails.
pub async fn refuse_rls_bypass(connection: &mut PgConnection) -> Result<(), sqlx::Error> {
    privileges(connection)
        .await?
        .check()
        .map_err(|reason| sqlx::Error::Configuration(reason.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(superuser: bool, bypass_rls: bool) -> RolePrivileges {
        RolePrivileges {
            name: "tcom".to_owned(),
            superuser,
            bypass_rls,
        }
    }

    #[test]
    fn only_a_role_under_row_level_security_may_serve_tenants() {
        assert_eq!(role(false, false).check(), Ok(()));
        assert!(role(true, false).check().unwrap_err().contains("superuser"));
        assert!(role(false, true).check().unwrap_err().contains("BYPASSRLS"));
        assert!(role(true, true).check().is_err());
    }
}
