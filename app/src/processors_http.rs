//! The processors role's own HTTP surface and supervision: `/metrics` (Prometheus text per
//! runtime), `/readyz` (each runtime: loop alive and turning, partitions assigned and
//! restored, not paused) and `/healthz`; and the watch that turns a runtime that died into a
//! failed role, so the process exits non-zero and its supervisor restarts it instead of
//! leaving a half-alive process that answers but processes nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::anyhow;
use axum::Json;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tcom_state::RuntimeHandle;

/// The runtimes of this process, shared by the HTTP handlers and the supervisor.
pub(crate) type Runtimes = Arc<Mutex<Vec<RuntimeHandle>>>;

/// `/metrics`, `/readyz` and `/healthz` of the processors role.
pub(crate) fn router(runtimes: Runtimes) -> axum::Router {
    let for_metrics = runtimes.clone();
    axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let runtimes = for_metrics.clone();
                async move {
                    let runtimes = runtimes.lock().expect("runtimes lock");
                    runtimes
                        .iter()
                        .map(|h| h.metrics().render_prometheus(h.application_id()))
                        .collect::<String>()
                }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let runtimes = runtimes.clone();
                async move { readiness(&runtimes) }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
}

fn readiness(runtimes: &Runtimes) -> axum::response::Response {
    let runtimes = runtimes.lock().expect("runtimes lock");
    let checks: BTreeMap<String, String> = runtimes
        .iter()
        .map(|h| {
            let state = h.readiness().err().unwrap_or_else(|| "ok".to_owned());
            (h.application_id().to_owned(), state)
        })
        .collect();
    let ready = !checks.is_empty() && checks.values().all(|c| c == "ok");
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": checks,
    });
    (status, Json(body)).into_response()
}

/// Runs until `stop` resolves (then stops every runtime and waits for them), or until one
/// runtime ends by itself: that is a failure of the role, with the runtime's error.
pub(crate) async fn supervise(
    runtimes: Runtimes,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tokio::pin!(stop);
    let failed = loop {
        tokio::select! {
            () = &mut stop => break None,
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        let mut guard = runtimes.lock().expect("runtimes lock");
        if let Some(index) = guard.iter().position(RuntimeHandle::is_finished) {
            break Some(guard.remove(index));
        }
    };
    let all: Vec<RuntimeHandle> = std::mem::take(&mut *runtimes.lock().expect("runtimes lock"));
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut first_error = None;
        if let Some(dead) = failed {
            let application = dead.application_id().to_owned();
            let error = match dead.join() {
                Ok(()) => anyhow!("processor {application} stopped by itself"),
                Err(e) => anyhow!("processor {application} failed: {e}"),
            };
            tracing::error!(
                error = format!("{error:#}"),
                "A processor runtime ended; the role stops."
            );
            first_error = Some(error);
        }
        for handle in all {
            let application = handle.application_id().to_owned();
            if let Err(e) = handle.join() {
                first_error.get_or_insert(anyhow!("processor {application}: {e}"));
            }
        }
        first_error.map_or(Ok(()), Err)
    })
    .await
    .map_err(|e| anyhow!("processors panicked: {e}"))?
}
