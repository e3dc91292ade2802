//! Plumbing shared by the SM-DP+ and logistics simulators: connections a handler can hang up
//! on (to answer nothing, as a dead peer or a lost answer would), fault countdowns, a
//! per-second rate window and UTC timestamps.
//!
//! A handler always returns a response; to make the client get *nothing* it flips the
//! connection's hang-up switch first. The connection then refuses the write of that response
//! and reads end-of-stream, so hyper drops it and the client sees the connection closed.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// How long a `timeout_next` call hangs before its connection is closed unanswered.
pub(crate) const HANG: Duration = Duration::from_secs(30);

/// The hang-up switch of the connection a request came on (in its extensions, as
/// `ConnectInfo<HangUp>`).
#[derive(Debug, Clone)]
pub(crate) struct HangUp(Arc<AtomicBool>);

impl HangUp {
    /// From now on the connection writes nothing more and is closed.
    pub(crate) fn now(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Connected<IncomingStream<'_, Listener>> for HangUp {
    fn connect_info(stream: IncomingStream<'_, Listener>) -> Self {
        Self(Arc::clone(&stream.io().switch))
    }
}

/// The switch of the request's connection; `None` outside [`serve`] (a router driven
/// directly has no connection).
pub(crate) fn hang_up_switch(request: &Request) -> Option<HangUp> {
    request
        .extensions()
        .get::<ConnectInfo<HangUp>>()
        .map(|info| info.0.clone())
}

/// Waits [`HANG`], then closes the connection without an answer. Without a connection to
/// close, answers 504 as a gateway giving up would.
pub(crate) async fn hang(switch: Option<HangUp>) -> Response {
    tokio::time::sleep(HANG).await;
    if let Some(switch) = switch {
        switch.now();
    }
    StatusCode::GATEWAY_TIMEOUT.into_response()
}

/// A TCP stream with a hang-up switch.
#[derive(Debug)]
pub(crate) struct Wire {
    stream: TcpStream,
    switch: Arc<AtomicBool>,
}

impl Wire {
    fn cut(&self) -> bool {
        self.switch.load(Ordering::SeqCst)
    }
}

fn cut_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "the simulator hung up")
}

impl AsyncRead for Wire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let wire = self.get_mut();
        if wire.cut() {
            // End of stream: nothing more is read from a hung-up connection.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut wire.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let wire = self.get_mut();
        if wire.cut() {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut wire.stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let wire = self.get_mut();
        if wire.cut() {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut wire.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A TCP listener handing out [`Wire`]s.
#[derive(Debug)]
pub(crate) struct Listener(TcpListener);

impl axum::serve::Listener for Listener {
    type Io = Wire;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Wire, SocketAddr) {
        // Tokio's listener through axum's accept loop, which retries on accept errors.
        let (stream, peer) = axum::serve::Listener::accept(&mut self.0).await;
        let wire = Wire {
            stream,
            switch: Arc::default(),
        };
        (wire, peer)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// Binds `listen`, tells `on_bound` the address, then serves `router` until `shutdown`, with
/// hang-up switches in every request.
pub(crate) async fn serve(
    name: &str,
    listen: SocketAddr,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_bound: impl FnOnce(SocketAddr),
) -> io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let address = listener.local_addr()?;
    on_bound(address);
    tracing::info!(%address, "{name} simulator listening.");
    let app = router.into_make_service_with_connect_info::<HangUp>();
    axum::serve(Listener(listener), app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// What a simulator's `/_sim/faults` sets (each simulator's docs say what every fault does).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Faults {
    pub(crate) latency_ms: u64,
    pub(crate) fail_next: u32,
    pub(crate) timeout_next: u32,
    pub(crate) outage: bool,
    pub(crate) rate_limit_per_second: u32,
    pub(crate) lose_response_next: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultsPatch {
    pub(crate) latency_ms: Option<u64>,
    pub(crate) fail_next: Option<u32>,
    pub(crate) timeout_next: Option<u32>,
    pub(crate) outage: Option<bool>,
    pub(crate) rate_limit_per_second: Option<u32>,
    pub(crate) lose_response_next: Option<u32>,
}

impl Faults {
    pub(crate) fn patch(&mut self, patch: FaultsPatch) {
        if let Some(v) = patch.latency_ms {
            self.latency_ms = v;
        }
        if let Some(v) = patch.fail_next {
            self.fail_next = v;
        }
        if let Some(v) = patch.timeout_next {
            self.timeout_next = v;
        }
        if let Some(v) = patch.outage {
            self.outage = v;
        }
        if let Some(v) = patch.rate_limit_per_second {
            self.rate_limit_per_second = v;
        }
        if let Some(v) = patch.lose_response_next {
            self.lose_response_next = v;
        }
    }
}

/// POSTs a signed webhook `body` (see [`crate::signed_webhook`]) to `url`, as an outside
/// system does: a failed connection or a non-2xx answer is tried again, `attempts` times in
/// all, backing off from 200 ms. Returns how many attempts were made and the last HTTP status
/// (`None`: no answer).
pub(crate) async fn deliver_webhook(
    url: &str,
    secret: &str,
    (timestamp_header, signature_header): (&str, &str),
    body: &[u8],
    attempts: u32,
) -> (u32, Option<u16>) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client builds");
    let mut last_status = None;
    let mut made = 0;
    for attempt in 0..attempts {
        made = attempt + 1;
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let sent = http
            .post(url)
            .header(axum::http::header::CONTENT_TYPE, "application/json")
            .header(timestamp_header, timestamp.to_string())
            .header(
                signature_header,
                crate::signed_webhook::sign(secret, timestamp, body),
            )
            .body(body.to_vec())
            .send()
            .await;
        last_status = sent.as_ref().ok().map(|r| r.status().as_u16());
        if sent.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
    }
    (made, last_status)
}

/// Counts a fault's countdown down by one; whether it had one left.
pub(crate) fn take(countdown: &mut u32) -> bool {
    let left = *countdown > 0;
    *countdown = countdown.saturating_sub(1);
    left
}

/// Calls admitted in the current second (a second from the window's first call).
#[derive(Debug, Default)]
pub(crate) struct RateWindow {
    opened: Option<Instant>,
    admitted: u32,
}

impl RateWindow {
    /// Whether one more call fits into `per_second` (0: no limit).
    pub(crate) fn admit(&mut self, per_second: u32, now: Instant) -> bool {
        if per_second == 0 {
            return true;
        }
        let over = self
            .opened
            .is_none_or(|opened| now.duration_since(opened) >= Duration::from_secs(1));
        if over {
            self.opened = Some(now);
            self.admitted = 0;
        }
        if self.admitted >= per_second {
            return false;
        }
        self.admitted += 1;
        true
    }
}

/// `YYYY-MM-DDThh:mm:ssZ` (UTC) of `time`; times before 1970 are written as 1970.
pub(crate) fn utc(time: SystemTime) -> String {
    let seconds = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(i64::try_from(seconds).unwrap_or(i64::MAX))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// The current time, as [`utc`] writes it.
pub(crate) fn utc_now() -> String {
    utc(SystemTime::now())
}

/// The Luhn check digit that completes `digits` (ASCII digits only).
pub(crate) fn luhn_digit(digits: &str) -> u8 {
    // Doubling starts at the rightmost digit, as the check digit will follow it.
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let twice = d * 2;
                if twice > 9 { twice - 9 } else { twice }
            } else {
                d
            }
        })
        .sum();
    u8::try_from((10 - sum % 10) % 10).expect("a digit")
}

/// A 19-digit ICCID: `prefix` (digits), `serial` zero-padded to fill 18 digits, and the Luhn
/// check digit.
pub(crate) fn iccid(prefix: &str, serial: u64) -> String {
    let width = 18 - prefix.len();
    let body = format!("{prefix}{serial:0width$}");
    format!("{body}{}", luhn_digit(&body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_timestamps() {
        let at = |s| utc(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(86_399), "1970-01-01T23:59:59Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(951_868_800), "2000-03-01T00:00:00Z");
        assert_eq!(at(1_709_164_800), "2024-02-29T00:00:00Z");
        assert_eq!(at(1_735_689_599), "2024-12-31T23:59:59Z");
        assert_eq!(at(1_773_480_245), "2026-03-14T09:24:05Z");
    }

    #[test]
    fn luhn_check_digits() {
        // The textbook example: 7992739871 completes with 3.
        assert_eq!(luhn_digit("7992739871"), 3);
        assert_eq!(luhn_digit("0"), 0);
        let id = iccid("89459901", 1);
        assert_eq!(id.len(), 19);
        assert!(id.starts_with("894599010000000001"));
        // The whole number, check digit included, passes the Luhn test.
        let (body, check) = id.split_at(18);
        assert_eq!(luhn_digit(body).to_string(), check);
    }

    #[test]
    fn the_rate_window() {
        let mut window = RateWindow::default();
        let start = Instant::now();
        assert!(window.admit(1, start));
        assert!(!window.admit(1, start + Duration::from_millis(500)));
        assert!(window.admit(1, start + Duration::from_secs(1)));
        assert!(window.admit(0, start));
    }

    #[test]
    fn countdowns() {
        let mut n = 2;
        assert!(take(&mut n));
        assert!(take(&mut n));
        assert!(!take(&mut n));
    }
}
