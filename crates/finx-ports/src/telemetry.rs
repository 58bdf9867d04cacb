use std::time::Duration;

/// What finX counts for its operators (exported as Prometheus metrics by `finx-metrics`).
///
/// Every method MUST be cheap, MUST NOT block and MUST NOT fail: they are called on every
/// request and bank call. Label values are short, closed sets chosen by the caller (a route
/// template, never a raw path; an outcome word, never an error message), and MUST NOT carry
/// a token, secret, query string or personal data.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait Telemetry: Send + Sync {
    /// One HTTP request answered: the route template (`/rest/accounts/{account_id}`, or
    /// `unmatched`), the method, the status and how long it took.
    fn http_request(&self, route: &str, method: &str, status: u16, took: Duration);

    /// A token request: the grant type (`authorization_code`, `refresh_token`, or `other`)
    /// and its outcome (`issued`, `invalid_client`, `invalid_grant`, `reuse_detected`,
    /// `invalid_request`, `error`).
    fn token_grant(&self, grant_type: &str, outcome: &str);

    /// A flow ended at a bank (its provider id), `completed` or `failed`.
    fn flow_ended(&self, bank: &str, outcome: &str);

    /// A call to a bank (its provider id): the operation (`begin`, `answer`,
    /// `end_consent`, `accounts`, `balances`, `transactions`), its outcome (`ok` or the
    /// error's kind) and how long it took.
    fn bank_call(&self, bank: &str, operation: &str, outcome: &str, took: Duration);

    /// A job (`sync` or `webhook`) started (`+1`) or ended (`-1`) on this instance.
    fn job_running(&self, kind: &str, delta: i64);

    /// A job (`sync` or `webhook`) ended with this outcome (`succeeded`, `failed`,
    /// `retried`, `given_up`, ...).
    fn job_ended(&self, kind: &str, outcome: &str);

    /// How many jobs (`sync`, `webhook`) wait in the queue now, across instances.
    fn jobs_queued(&self, kind: &str, waiting: u64);

    /// A request refused by a rate limit (`client`, `ip`, `flow`, ...).
    fn rate_limited(&self, limit: &str);

    /// The database pool now: connections open and idle, and the most it may open.
    fn db_pool(&self, open: u32, idle: u32, max: u32);
}

/// Counts nothing: for tests and tools that export no metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTelemetry;

impl Telemetry for NoTelemetry {
    fn http_request(&self, _: &str, _: &str, _: u16, _: Duration) {}
    fn token_grant(&self, _: &str, _: &str) {}
    fn flow_ended(&self, _: &str, _: &str) {}
    fn bank_call(&self, _: &str, _: &str, _: &str, _: Duration) {}
    fn job_running(&self, _: &str, _: i64) {}
    fn job_ended(&self, _: &str, _: &str) {}
    fn jobs_queued(&self, _: &str, _: u64) {}
    fn rate_limited(&self, _: &str) {}
    fn db_pool(&self, _: u32, _: u32, _: u32) {}
}
