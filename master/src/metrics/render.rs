//! A [`Sample`] as the Prometheus text format (version 0.0.4), written by
//! the `prometheus-client` crate: its registry and encoder run in the
//! master's thread on each scrape (the crate starts no thread). The values
//! are read from the scoreboard when scraped, so each metric is a
//! collector's constant, not a live counter object.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use runicorn_worker::slot::{Counters, DURATION_BOUNDS_US};

use super::Sample;
use crate::arbiter::ExitReason;

/// The `Content-Type` of [`render`]'s text.
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The build: version, git commit (`unknown` when built outside a git
/// checkout), compiler.
const BUILD: [(&str, &str); 3] = [
    ("version", env!("CARGO_PKG_VERSION")),
    ("commit", env!("RUNICORN_GIT_COMMIT")),
    ("rustc", env!("RUNICORN_RUSTC_VERSION")),
];

const STATUS_LABELS: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The metrics of `sample`, every name prefixed `runicorn_`.
pub fn render(sample: Sample) -> String {
    let mut registry = Registry::with_prefix("runicorn");
    registry.register_collector(Box::new(SampleCollector(sample)));
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry);
    text
}

#[derive(Debug)]
struct SampleCollector(Sample);

/// The duration histogram of some [`Counters`], in seconds.
#[derive(Debug)]
struct DurationHistogram<'c>(&'c Counters);

impl EncodeMetric for DurationHistogram<'_> {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let counters = self.0;
        let buckets: Vec<(f64, u64)> = DURATION_BOUNDS_US
            .iter()
            .map(|&micros| micros as f64 / 1e6)
            .chain([f64::INFINITY])
            .zip(counters.duration_buckets)
            .collect();
        encoder.encode_histogram::<NoLabelSet>(
            counters.duration_sum_us as f64 / 1e6,
            counters.duration_buckets.iter().sum(),
            &buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Writes one metric family: its descriptor, then a value per label set.
fn family<L, M>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    members: impl IntoIterator<Item = (L, M)>,
) -> Result<(), std::fmt::Error>
where
    L: EncodeLabelSet,
    M: EncodeMetric,
{
    let mut members = members.into_iter().peekable();
    let Some((_, first)) = members.peek() else {
        return Ok(());
    };
    let metric_type = first.metric_type();
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, value) in members {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Writes one metric without labels.
fn single(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    value.encode(encoder.encode_descriptor(name, help, None, value.metric_type())?)
}

impl Collector for SampleCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let sample = &self.0;
        let class = sample.class;
        let requests = sample.requests();
        family(
            &mut encoder,
            "requests",
            "Requests answered, by worker class and status class (reaped workers' included).",
            STATUS_LABELS
                .iter()
                .zip(requests.status_classes)
                .map(|(status, count)| {
                    (
                        [("class", class), ("status", *status)],
                        ConstCounter::new(count),
                    )
                }),
        )?;
        family(
            &mut encoder,
            "request_duration_seconds",
            "Time from a request's parsed head to its response's end, by worker class.",
            [([("class", class)], DurationHistogram(&requests))],
        )?;
        let in_flight: u64 = sample.workers.iter().map(|worker| worker.in_flight).sum();
        family(
            &mut encoder,
            "requests_in_flight",
            "Requests being served now.",
            [([("class", class)], ConstGauge::new(in_flight))],
        )?;
        let booted = sample.workers.iter().filter(|worker| worker.booted).count();
        family(
            &mut encoder,
            "workers",
            "Worker processes alive, and those that have booted.",
            [
                (
                    [("state", "alive")],
                    ConstGauge::new(sample.workers.len() as u64),
                ),
                ([("state", "booted")], ConstGauge::new(booted as u64)),
            ],
        )?;
        single(
            &mut encoder,
            "workers_target",
            "Worker processes the master keeps (-w, TTIN, TTOU).",
            ConstGauge::new(sample.target_workers as u64),
        )?;
        family(
            &mut encoder,
            "worker_restarts",
            "Workers replaced, by reason (not those the master stopped: HUP, TTOU, a stop).",
            sample
                .exits
                .iter()
                .filter(|(reason, _)| {
                    !matches!(reason, ExitReason::Retired | ExitReason::BootFailed)
                })
                .map(|(reason, count)| ([("reason", reason.name())], ConstCounter::new(count))),
        )?;
        single(
            &mut encoder,
            "worker_boot_failures",
            "Workers that could not boot or load the app (exit codes 3 and 4).",
            ConstCounter::new(sample.exits.count(ExitReason::BootFailed)),
        )?;
        let pids: Vec<String> = sample
            .workers
            .iter()
            .map(|worker| worker.pid.to_string())
            .collect();
        family(
            &mut encoder,
            "worker_resident_memory_bytes",
            "Each worker's resident memory (/proc/PID/statm), read when scraped.",
            sample
                .workers
                .iter()
                .zip(&pids)
                .filter_map(|(worker, pid)| {
                    Some(([("pid", pid.as_str())], ConstGauge::new(worker.rss_bytes?)))
                }),
        )?;
        family(
            &mut encoder,
            "worker_cpu_seconds",
            "Each worker's user and system CPU time (/proc/PID/stat), read when scraped.",
            sample
                .workers
                .iter()
                .zip(&pids)
                .filter_map(|(worker, pid)| {
                    Some((
                        [("pid", pid.as_str())],
                        ConstCounter::new(worker.cpu_seconds?),
                    ))
                }),
        )?;
        family(
            &mut encoder,
            "worker_requests",
            "Requests each live worker finished.",
            sample
                .workers
                .iter()
                .zip(&pids)
                .map(|(worker, pid)| ([("pid", pid.as_str())], ConstCounter::new(worker.served))),
        )?;
        family(
            &mut encoder,
            "listen_queue",
            "Connections waiting in a TCP listener's accept queue (TCP_INFO).",
            sample.listeners.iter().filter_map(|listener| {
                let (queued, _) = listener.queue?;
                Some((
                    [("listener", listener.name.as_str())],
                    ConstGauge::new(queued),
                ))
            }),
        )?;
        family(
            &mut encoder,
            "listen_queue_limit",
            "The accept queue's limit (--backlog, capped by net.core.somaxconn).",
            sample.listeners.iter().filter_map(|listener| {
                let (_, limit) = listener.queue?;
                Some((
                    [("listener", listener.name.as_str())],
                    ConstGauge::new(limit),
                ))
            }),
        )?;
        single(
            &mut encoder,
            "build",
            "The running build: version, git commit, compiler.",
            Info::new(BUILD.to_vec()),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{ListenerSample, Totals, WorkerSample};

    #[test]
    fn a_sample_renders_as_prometheus_text() {
        let mut counters = Counters {
            status_classes: [0, 3, 0, 1, 1],
            ..Counters::default()
        };
        counters.duration_buckets[0] = 4;
        counters.duration_buckets[DURATION_BOUNDS_US.len()] = 1;
        counters.duration_sum_us = 90_000_000;
        let mut totals = Totals::default();
        totals.folded.status_classes = [0, 2, 0, 0, 0];
        let text = render(Sample {
            class: "gthread",
            target_workers: 2,
            workers: vec![WorkerSample {
                pid: 42,
                booted: true,
                in_flight: 1,
                served: 5,
                counters,
                rss_bytes: Some(4096),
                cpu_seconds: Some(0.5),
            }],
            totals,
            exits: Default::default(),
            listeners: vec![ListenerSample {
                name: "http://127.0.0.1:8000".into(),
                queue: Some((3, 128)),
            }],
        });
        for line in [
            "# TYPE runicorn_requests_total counter",
            "runicorn_requests_total{class=\"gthread\",status=\"2xx\"} 5",
            "runicorn_requests_total{class=\"gthread\",status=\"5xx\"} 1",
            "runicorn_request_duration_seconds_bucket{class=\"gthread\",le=\"0.001\"} 4",
            "runicorn_request_duration_seconds_bucket{class=\"gthread\",le=\"+Inf\"} 5",
            "runicorn_request_duration_seconds_count{class=\"gthread\"} 5",
            "runicorn_requests_in_flight{class=\"gthread\"} 1",
            "runicorn_workers{state=\"alive\"} 1",
            "runicorn_worker_restarts_total{reason=\"signal\"} 0",
            "runicorn_worker_restarts_total{reason=\"panic\"} 0",
            "runicorn_worker_resident_memory_bytes{pid=\"42\"} 4096",
            "runicorn_listen_queue{listener=\"http://127.0.0.1:8000\"} 3",
            "runicorn_listen_queue_limit{listener=\"http://127.0.0.1:8000\"} 128",
        ] {
            assert!(
                text.lines().any(|have| have == line),
                "no {line:?} in:\n{text}"
            );
        }
        assert!(text.contains("runicorn_build_info{version=\""), "{text}");
        assert!(
            !text.contains("retired") && !text.contains("boot_failed"),
            "{text}"
        );
    }
}
