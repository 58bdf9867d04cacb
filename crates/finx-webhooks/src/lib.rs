//! The webhook sender: finX's way out to customers' endpoints.
//!
//! Every POST goes through the SSRF rules of [`UrlPolicy`]: a name is resolved here, and
//! only addresses the policy allows are connected to (so a name that points inside the
//! network is refused however it got there); an address literal is checked before any
//! connection. Redirects are never followed, proxies from the environment are not used, and
//! the whole request is bounded by a short timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use finx_domain::webhook::UrlPolicy;
use finx_ports::{SendFailure, WebhookSender};

/// The default bound of one POST.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends webhooks with `reqwest`.
#[derive(Debug, Clone)]
pub struct HttpSender {
    client: reqwest::Client,
    policy: UrlPolicy,
    timeout: Duration,
}

/// Resolves names and keeps only the addresses the policy allows.
#[derive(Debug)]
struct PolicyResolver {
    policy: UrlPolicy,
}

/// The error a refused name resolves to.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let refused = |why: String| -> Box<dyn std::error::Error + Send + Sync> {
                Box::new(Refused(why))
            };
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| refused(format!("{host} did not resolve: {e}")))?
                .collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| policy.allows_ip(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(refused(format!(
                    "{host} resolves only to addresses webhooks may not go to"
                )));
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

impl HttpSender {
    /// A sender under `policy`, each POST bounded by `timeout`.
    ///
    /// # Errors
    /// When the TLS backend cannot be set up.
    pub fn new(policy: UrlPolicy, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .dns_resolver(Arc::new(PolicyResolver { policy }))
            .user_agent("finX-Webhooks/1")
            .build()?;
        Ok(Self {
            client,
            policy,
            timeout,
        })
    }
}

/// Whether `e`, or anything it came from, is the resolver's refusal.
fn refusal(e: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return Some(r.0.clone());
        }
        source = s.source();
    }
    None
}

#[async_trait]
impl WebhookSender for HttpSender {
    async fn post(
        &self,
        url: &url::Url,
        headers: &[(&'static str, String)],
        body: &str,
    ) -> Result<u16, SendFailure> {
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal
            && !self.policy.allows_ip(ip)
        {
            return Err(SendFailure::Refused(format!(
                "{ip} is not an address webhooks may go to"
            )));
        }
        if !matches!(url.scheme(), "https" | "http") {
            return Err(SendFailure::Refused("not http(s)".to_owned()));
        }
        let mut request = self.client.post(url.clone()).body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        match request.send().await {
            Ok(res) => Ok(res.status().as_u16()),
            Err(e) if e.is_timeout() => Err(SendFailure::Timeout),
            Err(e) => Err(match refusal(&e) {
                Some(why) => SendFailure::Refused(why),
                None => SendFailure::Connect(e.without_url().to_string()),
            }),
        }
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::{get, post};

    use super::*;

    async fn serve(app: Router) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).expect("url")
    }

    #[tokio::test]
    async fn loopback_is_refused_outside_the_sandbox_by_literal_and_by_name() {
        let addr = serve(Router::new().route("/", post(|| async { StatusCode::NO_CONTENT }))).await;
        let prod =
            HttpSender::new(UrlPolicy { sandbox: false }, Duration::from_secs(2)).expect("sender");
        let literal = prod.post(&url(&format!("http://{addr}/")), &[], "{}").await;
        assert!(
            matches!(literal, Err(SendFailure::Refused(_))),
            "{literal:?}"
        );
        let by_name = prod
            .post(
                &url(&format!("http://localhost:{}/", addr.port())),
                &[],
                "{}",
            )
            .await;
        assert!(
            matches!(by_name, Err(SendFailure::Refused(_))),
            "{by_name:?}"
        );
        let sandbox =
            HttpSender::new(UrlPolicy { sandbox: true }, Duration::from_secs(2)).expect("sender");
        assert_eq!(
            sandbox
                .post(&url(&format!("http://{addr}/")), &[], "{}")
                .await,
            Ok(204)
        );
        assert_eq!(
            sandbox
                .post(
                    &url(&format!("http://localhost:{}/", addr.port())),
                    &[],
                    "{}"
                )
                .await,
            Ok(204)
        );
    }

    #[tokio::test]
    async fn redirects_are_not_followed_and_slow_endpoints_time_out() {
        let app = Router::new()
            .route(
                "/moved",
                post(|| async { (StatusCode::FOUND, [("location", "/target")]) }),
            )
            .route(
                "/target",
                post(|| async { StatusCode::OK }).get(|| async { StatusCode::OK }),
            )
            .route(
                "/slow",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    StatusCode::OK
                }),
            )
            .route("/health", get(|| async { StatusCode::OK }));
        let addr = serve(app).await;
        let s = HttpSender::new(UrlPolicy { sandbox: true }, Duration::from_millis(300))
            .expect("sender");
        assert_eq!(
            s.post(&url(&format!("http://{addr}/moved")), &[], "{}")
                .await,
            Ok(302),
            "a redirect is an answer, not a hop"
        );
        assert_eq!(
            s.post(&url(&format!("http://{addr}/slow")), &[], "{}")
                .await,
            Err(SendFailure::Timeout)
        );
    }
}
