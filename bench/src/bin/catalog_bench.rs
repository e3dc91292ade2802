//! Storefront catalog read benchmark: N concurrent HTTP/1.1 connections, each sending
//! `GET /v1/storefront/catalog` back to back for a fixed time, against a running platform
//! (`scripts/run-local`, which seeds the demo tenants). Prints throughput and latency
//! percentiles.
//!
//! Usage: catalog-bench [connections=200] [seconds=20] [url=http://127.0.0.1:8080] [host=nordlys.localhost]

use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let connections: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20);
    let url = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let host = args
        .get(4)
        .cloned()
        .unwrap_or_else(|| "nordlys.localhost".into());
    let target = format!("{url}/v1/storefront/catalog?channel=web");

    // One client per connection, each keeping exactly one connection alive.
    let warmup = reqwest::Client::builder().no_proxy().build().unwrap();
    let probe = warmup
        .get(&target)
        .header("host", &host)
        .send()
        .await
        .expect("platform reachable");
    assert!(
        probe.status().is_success(),
        "catalog answered {}",
        probe.status()
    );
    let offerings = probe.json::<serde_json::Value>().await.unwrap()["offerings"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(
        offerings > 0,
        "the catalog is empty: seed the demo data (scripts/run-local)"
    );

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut workers = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (target, host) = (target.clone(), host.clone());
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let started = Instant::now();
                match client.get(&target).header("host", &host).send().await {
                    Ok(response) if response.status().is_success() => {
                        let _ = response.bytes().await;
                        latencies.push(started.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (latencies, e) = worker.await.unwrap();
        all.extend(latencies);
        errors += e;
    }
    all.sort();
    println!(
        "catalog-bench: {connections} connections, {seconds} s, {offerings} offerings per response"
    );
    println!(
        "  requests {} ({:.0}/s), errors {errors}",
        all.len(),
        all.len() as f64 / seconds as f64
    );
    println!(
        "  latency p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&all, 50.0).as_secs_f64() * 1e3,
        percentile(&all, 95.0).as_secs_f64() * 1e3,
        percentile(&all, 99.0).as_secs_f64() * 1e3,
        all.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
}
