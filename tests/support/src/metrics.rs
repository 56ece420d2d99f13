//! Scraping a server's `/metrics` as Prometheus does, over real HTTP, and
//! reading values out of the text: what the metrics and leak tests assert
//! on.
//!
//! The HTTP client is a dozen lines over a `TcpStream` (a request with
//! `Connection: close`, read to the end), so the tests need no HTTP client
//! crate.

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::LIMIT;

/// One scrape: the response's head and body.
#[derive(Debug, Clone)]
pub struct Scrape {
    /// The status line and headers.
    pub head: String,
    /// The metrics text.
    pub body: String,
}

/// `GET /metrics` from the endpoint at `addr`, asking for the format
/// `accept` (e.g. `application/openmetrics-text`) if given.
pub async fn scrape_with(addr: SocketAddr, path: &str, accept: Option<&str>) -> Scrape {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect to /metrics");
        let accept = accept
            .map(|accept| format!("Accept: {accept}\r\n"))
            .unwrap_or_default();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .await
            .expect("read the response");
        response
    };
    let response = tokio::time::timeout(LIMIT, exchange)
        .await
        .expect("the metrics endpoint answered in time");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("an HTTP response has a head");
    Scrape {
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// `GET /metrics` in Prometheus's classic text format.
pub async fn scrape(addr: SocketAddr) -> Scrape {
    let scrape = scrape_with(addr, "/metrics", None).await;
    assert!(
        scrape.head.starts_with("HTTP/1.1 200"),
        "the scrape failed: {}",
        scrape.head
    );
    scrape
}

impl Scrape {
    /// The value of the sample `name` whose labels include every one of
    /// `labels` (and maybe others), if there is one such sample.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<f64> = self
            .samples()
            .filter(|(sample, sample_labels, _)| {
                *sample == name
                    && labels
                        .iter()
                        .all(|(key, value)| sample_labels.contains(&(*key, *value)))
            })
            .map(|(_, _, value)| value)
            .collect();
        match matching.as_slice() {
            [] => None,
            [one] => Some(*one),
            _ => panic!("{name} {labels:?} matches {} samples", matching.len()),
        }
    }

    /// [`Scrape::value`], failing the test when there is no such sample.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no sample {name} {labels:?} in\n{}", self.body))
    }

    /// Every sample: its name, its labels and its value.
    pub fn samples(&self) -> impl Iterator<Item = (&str, Vec<(&str, &str)>, f64)> {
        self.body
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let value = value.parse().ok()?;
                let (name, labels) = match series.split_once('{') {
                    Some((name, labels)) => (name, labels.trim_end_matches('}')),
                    None => (series, ""),
                };
                // Our label values hold no commas or quotes.
                let labels = labels
                    .split(',')
                    .filter_map(|pair| {
                        let (key, value) = pair.split_once('=')?;
                        Some((key, value.trim_matches('"')))
                    })
                    .collect();
                Some((name, labels, value))
            })
    }
}

/// Scrapes `addr` until `done` holds for a scrape (returned), failing the
/// test after `limit` with the last scrape and `what` it waited for. No
/// sleeping to synchronise: each round is a real scrape, spaced by a few
/// milliseconds so a loaded machine is not flooded.
pub async fn scrape_until(
    addr: SocketAddr,
    limit: Duration,
    what: &str,
    done: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let scrape = scrape(addr).await;
        if done(&scrape) {
            return scrape;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "not within {limit:?}: {what}; the last scrape:\n{}",
                scrape.body
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
