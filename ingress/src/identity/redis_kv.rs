//! The short-lived state of sign-ins and sessions in Redis, shared by every ingress instance.
//! Unlike rate limits, nothing here may pass when Redis is down: a sign-in cannot be finished
//! nor a session checked without it, so the caller gets 503 and the log says why.

use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

use crate::problem::Problem;

/// A lazily connected Redis with a bound on every answer.
pub struct RedisKv {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    timeout: Duration,
}

impl std::fmt::Debug for RedisKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisKv")
            .field("connected", &self.connection.initialized())
            .finish_non_exhaustive()
    }
}

impl RedisKv {
    pub fn new(client: redis::Client, timeout: Duration) -> Self {
        Self {
            client,
            connection: OnceCell::new(),
            timeout,
        }
    }

    /// Runs `build`'s command or pipeline within the timeout.
    ///
    /// # Errors
    /// 503 `session_store_unavailable` when Redis cannot be reached or does not answer.
    pub async fn run<T, F, Fut>(&self, build: F) -> Result<T, Problem>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            let connection = self
                .connection
                .get_or_try_init(|| self.client.get_connection_manager())
                .await?;
            build(connection.clone()).await
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(unavailable(&e.to_string())),
            Err(_) => Err(unavailable("no answer in time")),
        }
    }
}

fn unavailable(reason: &str) -> Problem {
    tracing::error!(
        reason,
        "Session store (Redis) unavailable: sign-ins and customer sessions refused."
    );
    Problem::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "session_store_unavailable",
        "Sign-in and customer sessions are unavailable for a moment; try again shortly",
    )
}
