//! Metrics in the Prometheus text format (0.0.4) and the small HTTP endpoint that serves them
//! (`GET /metrics`, and `GET /healthz` for probes). Both binaries use it: the coordinator
//! renders its job state at scrape time, a worker keeps a [`Registry`] its loops update.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

#[derive(Debug, Clone)]
struct Family {
    help: &'static str,
    kind: Kind,
    /// Rendered label set (`{a="b"}` or empty) → value.
    samples: BTreeMap<String, f64>,
}

/// One scrape's worth of samples, grouped by metric as the format requires.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    families: BTreeMap<&'static str, Family>,
}

impl Exposition {
    pub fn gauge(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        self.family(name, help, Kind::Gauge)
            .insert(render_labels(labels), value);
    }

    /// Sets a counter's value (the caller keeps it monotonic).
    pub fn counter(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        self.family(name, help, Kind::Counter)
            .insert(render_labels(labels), value);
    }

    /// Adds `delta` to a counter.
    pub fn add(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        delta: f64,
    ) {
        *self
            .family(name, help, Kind::Counter)
            .entry(render_labels(labels))
            .or_insert(0.0) += delta;
    }

    fn family(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
    ) -> &mut BTreeMap<String, f64> {
        &mut self
            .families
            .entry(name)
            .or_insert_with(|| Family {
                help,
                kind,
                samples: BTreeMap::new(),
            })
            .samples
    }

    /// The text a scraper reads.
    pub fn render(&self) -> String {
        let mut text = String::new();
        for (name, family) in &self.families {
            let kind = match family.kind {
                Kind::Gauge => "gauge",
                Kind::Counter => "counter",
            };
            text.push_str(&format!(
                "# HELP {name} {}\n# TYPE {name} {kind}\n",
                family.help
            ));
            for (labels, value) in &family.samples {
                text.push_str(&format!("{name}{labels} {}\n", render_value(*value)));
            }
        }
        text
    }
}

fn render_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        value.to_string()
    }
}

fn render_labels(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(key, value)| {
            let escaped = value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{key}=\"{escaped}\"")
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// A process's live metrics, shared by the loops that update them and the endpoint.
#[derive(Debug, Clone, Default)]
pub struct Registry(Arc<Mutex<Exposition>>);

impl Registry {
    /// Runs `update` on the metrics (a poisoned lock is taken over: metrics are best effort).
    pub fn update(&self, update: impl FnOnce(&mut Exposition)) {
        let mut guard = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        update(&mut guard);
    }

    pub fn render(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .render()
    }
}

/// Records what a step report says about one worker's latest step, under `labels` (the
/// coordinator labels by worker; a worker's own endpoint has one worker and no label).
pub fn record_step(m: &mut Exposition, report: &crate::v1::StepReport, labels: &[(&str, &str)]) {
    m.gauge(
        "anygan_worker_step",
        "Steps the worker has completed.",
        labels,
        report.step as f64,
    );
    m.gauge(
        "anygan_step_seconds",
        "Wall time of the worker's latest step.",
        labels,
        report.step_seconds,
    );
    m.gauge(
        "anygan_all_reduce_seconds",
        "Time the worker's latest step spent in all-reduces.",
        labels,
        report.all_reduce_seconds,
    );
    m.gauge(
        "anygan_all_reduce_bytes",
        "Bytes the worker sent to its ring neighbour in its latest step.",
        labels,
        report.all_reduce_bytes as f64,
    );
    if report.all_reduce_seconds > 0.0 {
        m.gauge(
            "anygan_all_reduce_bytes_per_second",
            "Send bandwidth of the worker's latest step's all-reduces.",
            labels,
            report.all_reduce_bytes as f64 / report.all_reduce_seconds,
        );
    }
    m.gauge(
        "anygan_discriminator_loss",
        "Discriminator loss of the worker's latest step.",
        labels,
        f64::from(report.discriminator_loss),
    );
    m.gauge(
        "anygan_generator_loss",
        "Generator loss of the worker's latest step.",
        labels,
        f64::from(report.generator_loss),
    );
    let class_losses = [
        (
            "anygan_class_loss_real",
            "Auxiliary classifier's cross-entropy on the real images of the worker's latest step.",
            report.class_loss_real,
        ),
        (
            "anygan_class_loss_generated",
            "Auxiliary classifier's cross-entropy on the generated images of the worker's latest \
             step, against the classes they were drawn for.",
            report.class_loss_generated,
        ),
    ];
    for (name, help, loss) in class_losses {
        if let Some(loss) = loss {
            m.gauge(name, help, labels, f64::from(loss));
        }
    }
    if report.checkpoints_committed > 0 {
        m.counter(
            "anygan_checkpoints_committed_total",
            "Checkpoints the worker has committed.",
            labels,
            report.checkpoints_committed as f64,
        );
        m.gauge(
            "anygan_checkpoint_seconds",
            "Duration of the worker's latest checkpoint commit (upload to `latest` moved).",
            labels,
            report.last_checkpoint_seconds,
        );
    }
}

/// Largest request head the endpoint reads; a scrape's is a few hundred bytes.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `GET /metrics` (what `render` returns) and `GET /healthz` on `listener` until
/// `shutdown` resolves. One request per connection.
pub async fn serve_metrics<F, Fut>(
    listener: TcpListener,
    render: F,
    shutdown: impl std::future::Future<Output = ()> + Send,
) where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = String> + Send,
{
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let render = render.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, render)).await;
                });
            }
            Err(error) => {
                tracing::warn!(%error, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer<F, Fut>(mut stream: TcpStream, render: F) -> std::io::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let mut head = Vec::with_capacity(512);
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buffer[..read]);
        if head.len() > MAX_REQUEST_HEAD {
            return respond(&mut stream, "431 Request Header Fields Too Large", "", "").await;
        }
    }
    let request_line = String::from_utf8_lossy(&head);
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => {
            let body = render().await;
            respond(
                &mut stream,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
            )
            .await
        }
        ("GET", "/healthz") => respond(&mut stream, "200 OK", "text/plain", "ok\n").await,
        ("GET", _) => respond(&mut stream, "404 Not Found", "text/plain", "not found\n").await,
        _ => {
            respond(
                &mut stream,
                "405 Method Not Allowed",
                "text/plain",
                "GET only\n",
            )
            .await
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// Fetches `path` from a metrics endpoint (tests and `coordinator status --metrics`).
pub async fn scrape(address: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(address).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: {address}\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// The value of `name` with exactly `labels` in a scraped text (label order as rendered).
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted = format!("{name}{} ", render_labels(labels));
    text.lines()
        .find_map(|line| line.strip_prefix(&wanted))
        .and_then(|value| value.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_grouped_families_with_escaped_labels() {
        let mut metrics = Exposition::default();
        metrics.gauge("anygan_step", "Steps done.", &[("worker", "w1")], 5.0);
        metrics.counter("anygan_lost_total", "Workers lost.", &[], 2.0);
        metrics.gauge("anygan_step", "Steps done.", &[("worker", "w\"0\n")], 3.0);
        metrics.add("anygan_bytes_total", "Bytes.", &[], 10.0);
        metrics.add("anygan_bytes_total", "Bytes.", &[], 5.5);
        let text = metrics.render();
        assert_eq!(
            text,
            "# HELP anygan_bytes_total Bytes.\n# TYPE anygan_bytes_total counter\n\
             anygan_bytes_total 15.5\n\
             # HELP anygan_lost_total Workers lost.\n# TYPE anygan_lost_total counter\n\
             anygan_lost_total 2\n\
             # HELP anygan_step Steps done.\n# TYPE anygan_step gauge\n\
             anygan_step{worker=\"w1\"} 5\n\
             anygan_step{worker=\"w\\\"0\\n\"} 3\n"
        );
        assert_eq!(sample(&text, "anygan_step", &[("worker", "w1")]), Some(5.0));
        assert_eq!(sample(&text, "anygan_bytes_total", &[]), Some(15.5));
        assert_eq!(sample(&text, "anygan_step", &[("worker", "w2")]), None);
        assert_eq!(render_value(f64::INFINITY), "+Inf");
    }

    #[test]
    fn class_losses_are_exposed_only_when_reported() {
        let labels = [("worker", "w0")];
        let mut without = Exposition::default();
        record_step(&mut without, &crate::v1::StepReport::default(), &labels);
        let text = without.render();
        assert_eq!(sample(&text, "anygan_generator_loss", &labels), Some(0.0));
        assert!(!text.contains("anygan_class_loss"), "{text}");

        let report = crate::v1::StepReport {
            class_loss_real: Some(0.25),
            class_loss_generated: Some(1.5),
            ..Default::default()
        };
        let mut with = Exposition::default();
        record_step(&mut with, &report, &labels);
        let text = with.render();
        assert_eq!(sample(&text, "anygan_class_loss_real", &labels), Some(0.25));
        assert_eq!(
            sample(&text, "anygan_class_loss_generated", &labels),
            Some(1.5)
        );
    }

    #[tokio::test]
    async fn serves_metrics_and_health_over_http() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let registry = Registry::default();
        registry.update(|m| m.gauge("anygan_up", "Up.", &[], 1.0));
        let served = registry.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_metrics(
            listener,
            move || {
                let served = served.clone();
                async move { served.render() }
            },
            async {
                let _ = stopped.await;
            },
        ));
        let (status, body) = scrape(&address, "/metrics").await.expect("scrape");
        assert_eq!(status, 200);
        assert_eq!(sample(&body, "anygan_up", &[]), Some(1.0));
        registry.update(|m| m.gauge("anygan_up", "Up.", &[], 0.0));
        let (_, body) = scrape(&address, "/metrics").await.expect("scrape");
        assert_eq!(sample(&body, "anygan_up", &[]), Some(0.0));
        assert_eq!(
            scrape(&address, "/healthz").await.expect("health"),
            (200, "ok\n".into())
        );
        assert_eq!(scrape(&address, "/nope").await.expect("404").0, 404);
        let _ = stop.send(());
        server.await.expect("server stops");
    }
}
