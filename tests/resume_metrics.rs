//! The `metrics` feature and resumable sessions: a store that fails is
//! logged and counted, and the clients it cannot replay are told to resync.
#![cfg(feature = "metrics")]
#![allow(clippy::unwrap_used)]

mod common;

use futures_util::StreamExt;
use metrics_exporter_prometheus::PrometheusBuilder;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue};
use wsdrain::{
    ResumableSocket, ResumableUpgrade,
    resume::{Entry, Epoch, Feed, Head, Log, LogError, Payload, Published, Read},
};

/// A log whose store is down.
struct Down;

impl Log for Down {
    async fn append(&self, _: &str, _: &Payload) -> Result<Entry, LogError> {
        Err(LogError::store("connection refused"))
    }
    async fn read(&self, _: &str, _: &Epoch, _: u64, _: usize) -> Result<Read, LogError> {
        Err(LogError::store("connection refused"))
    }
    async fn head(&self, _: &str) -> Result<Head, LogError> {
        Err(LogError::store("connection refused"))
    }
}

fn value(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .map_or(0.0, |l| l.rsplit(' ').next().unwrap().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_failures_are_counted_and_resynced() {
    let handle = PrometheusBuilder::new().install_recorder().unwrap();
    let feed = Feed::new(Down);
    // Nobody follows the stream here: counted, nothing delivered.
    assert_eq!(
        feed.publish("prices", "1").await.unwrap(),
        Published::Unlogged
    );
    let router = axum::Router::new().route(
        "/feed",
        axum::routing::get({
            let feed = feed.clone();
            move |upgrade: ResumableUpgrade| async move {
                upgrade.on_upgrade(feed, |mut socket: ResumableSocket<Down>| async move {
                    if socket.follow("prices").await.is_ok() {
                        socket.run().await;
                    }
                })
            }
        }),
    );
    let server = common::InProc::start(common::quick_policy().build().unwrap(), router).await;
    let mut request = format!("ws://{}/feed?wsdrain-resume=prices@Ab12.7", server.addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("wsdrain.resume.v1"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let control = ws.next().await.unwrap().unwrap().into_text().unwrap();
    assert!(
        control.contains("\"type\":\"wsdrain.resync\"")
            && control.ends_with("\"after\":0,\"reason\":\"unavailable\"}"),
        "{control}"
    );
    // Live delivery goes on, outside the log.
    assert_eq!(
        feed.publish("prices", "2").await.unwrap(),
        Published::Unlogged
    );
    let message = ws.next().await.unwrap().unwrap().into_text().unwrap();
    assert_eq!(message.as_str(), "m prices 1\n2");

    let scrape = handle.render();
    assert_eq!(
        value(&scrape, "wsdrain_resume_errors_total{op=\"append\"}"),
        2.0,
        "{scrape}"
    );
    assert_eq!(
        value(&scrape, "wsdrain_resume_errors_total{op=\"read\"}"),
        1.0,
        "{scrape}"
    );
    assert_eq!(
        value(&scrape, "wsdrain_resume_follows_total{start=\"resync\"}"),
        1.0,
        "{scrape}"
    );
    assert_eq!(
        value(
            &scrape,
            "wsdrain_resume_resyncs_total{reason=\"unavailable\"}"
        ),
        1.0,
        "{scrape}"
    );
}
