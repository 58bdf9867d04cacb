//! finX's metrics: the [`Telemetry`] port recorded with `prometheus-client` and served in
//! the OpenMetrics text format by [`router`], on a listener of its own
//! (`--metrics-listen`, loopback by default), never on the public API's port.
//!
//! Every label is a closed set the caller chose (route templates, outcome words, provider
//! ids, job kinds): nothing from a request's path, query or body reaches a label.

use std::sync::Arc;
use std::time::Duration;

use axum::http::header;
use axum::response::IntoResponse;
use finx_ports::Telemetry;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The content type of what [`Prometheus::render`] writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrantLabels {
    grant_type: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlowLabels {
    bank: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BankLabels {
    bank: String,
    operation: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BankOpLabels {
    bank: String,
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobEndLabels {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: String,
}

type Timings<L> = Family<L, Histogram, fn() -> Histogram>;

/// Request latencies: 0.5 ms to about 16 s.
fn http_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Bank latencies: 10 ms to about 80 s.
fn bank_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 14))
}

/// Every metric of one finX instance, and the registry that renders them.
pub struct Prometheus {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_seconds: Timings<RouteLabels>,
    token_grants: Family<GrantLabels, Counter>,
    flows: Family<FlowLabels, Counter>,
    bank_calls: Family<BankLabels, Counter>,
    bank_seconds: Timings<BankOpLabels>,
    jobs_running: Family<JobLabels, Gauge>,
    jobs_ended: Family<JobEndLabels, Counter>,
    jobs_queued: Family<JobLabels, Gauge>,
    rate_limited: Family<LimitLabels, Counter>,
    pool_open: Gauge,
    pool_idle: Gauge,
    pool_max: Gauge,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Prometheus")
    }
}

impl Default for Prometheus {
    fn default() -> Self {
        Self::new()
    }
}

impl Prometheus {
    /// Every metric at zero, registered under `finx_`.
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("finx");
        let m = Self {
            registry: Registry::default(),
            http_requests: Family::default(),
            http_seconds: Family::new_with_constructor(http_buckets),
            token_grants: Family::default(),
            flows: Family::default(),
            bank_calls: Family::default(),
            bank_seconds: Family::new_with_constructor(bank_buckets),
            jobs_running: Family::default(),
            jobs_ended: Family::default(),
            jobs_queued: Family::default(),
            rate_limited: Family::default(),
            pool_open: Gauge::default(),
            pool_idle: Gauge::default(),
            pool_max: Gauge::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            m.http_requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request, by route template and method",
            Unit::Seconds,
            m.http_seconds.clone(),
        );
        registry.register(
            "token_grants",
            "Token requests by grant type and outcome (reuse_detected: a replayed code or refresh token revoked its grant)",
            m.token_grants.clone(),
        );
        registry.register("flows", "Flows ended, by bank and outcome", m.flows.clone());
        registry.register(
            "bank_calls",
            "Calls to banks, by bank, operation and outcome",
            m.bank_calls.clone(),
        );
        registry.register_with_unit(
            "bank_call_duration",
            "Time a bank took to answer, by bank and operation",
            Unit::Seconds,
            m.bank_seconds.clone(),
        );
        registry.register(
            "jobs_running",
            "Jobs running on this instance, by kind (sync, webhook)",
            m.jobs_running.clone(),
        );
        registry.register(
            "jobs_ended",
            "Jobs ended on this instance, by kind and outcome",
            m.jobs_ended.clone(),
        );
        registry.register(
            "jobs_queued",
            "Jobs waiting in the queue, across instances, by kind",
            m.jobs_queued.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit, by limit",
            m.rate_limited.clone(),
        );
        registry.register(
            "db_pool_connections_open",
            "Database connections open in this instance's pool",
            m.pool_open.clone(),
        );
        registry.register(
            "db_pool_connections_idle",
            "Database connections open and idle in this instance's pool",
            m.pool_idle.clone(),
        );
        registry.register(
            "db_pool_connections_max",
            "The most database connections this instance's pool opens",
            m.pool_max.clone(),
        );
        Self { registry, ..m }
    }

    /// Every metric now, in the OpenMetrics text format ([`CONTENT_TYPE`]).
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Telemetry for Prometheus {
    fn http_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        self.http_requests
            .get_or_create(&HttpLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status,
            })
            .inc();
        self.http_seconds
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
                method: method.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    fn token_grant(&self, grant_type: &str, outcome: &str) {
        self.token_grants
            .get_or_create(&GrantLabels {
                grant_type: grant_type.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    fn flow_ended(&self, bank: &str, outcome: &str) {
        self.flows
            .get_or_create(&FlowLabels {
                bank: bank.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    fn bank_call(&self, bank: &str, operation: &str, outcome: &str, took: Duration) {
        self.bank_calls
            .get_or_create(&BankLabels {
                bank: bank.to_owned(),
                operation: operation.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.bank_seconds
            .get_or_create(&BankOpLabels {
                bank: bank.to_owned(),
                operation: operation.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    fn job_running(&self, kind: &str, delta: i64) {
        self.jobs_running
            .get_or_create(&JobLabels {
                kind: kind.to_owned(),
            })
            .inc_by(delta);
    }

    fn job_ended(&self, kind: &str, outcome: &str) {
        self.jobs_ended
            .get_or_create(&JobEndLabels {
                kind: kind.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    fn jobs_queued(&self, kind: &str, waiting: u64) {
        self.jobs_queued
            .get_or_create(&JobLabels {
                kind: kind.to_owned(),
            })
            .set(gauge_value(waiting));
    }

    fn rate_limited(&self, limit: &str) {
        self.rate_limited
            .get_or_create(&LimitLabels {
                limit: limit.to_owned(),
            })
            .inc();
    }

    fn db_pool(&self, open: u32, idle: u32, max: u32) {
        self.pool_open.set(i64::from(open));
        self.pool_idle.set(i64::from(idle));
        self.pool_max.set(i64::from(max));
    }
}

/// `GET /metrics`: the metrics of `metrics`, for a listener of their own.
pub fn router(metrics: Arc<Prometheus>) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.render()).into_response() }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_recorded_is_rendered_with_its_labels() {
        let m = Prometheus::new();
        m.http_request("/rest/accounts", "GET", 200, Duration::from_millis(3));
        m.token_grant("refresh_token", "reuse_detected");
        m.jobs_queued("sync", 7);
        let text = m.render();
        assert!(text.contains(
            r#"finx_http_requests_total{route="/rest/accounts",method="GET",status="200"} 1"#
        ));
        assert!(text.contains(
            r#"finx_token_grants_total{grant_type="refresh_token",outcome="reuse_detected"} 1"#
        ));
        assert!(text.contains(r#"finx_jobs_queued{kind="sync"} 7"#));
        assert!(text.ends_with("# EOF\n"));
    }
}
