//! The `/metrics` endpoint on the RPC listener: a tower layer in front of jsonrpsee that answers
//! `GET /metrics` itself (no token: metrics carry no secret) and passes every other request on.

use super::Metrics;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The path scrapes are served at.
pub const PATH: &str = "/metrics";

/// A scrape's reply: `200` with the OpenMetrics text for `GET`/`HEAD`, else `405`.
pub fn reply(metrics: &Metrics, method: &http::Method) -> HttpResponse {
    let (status, body) = match *method {
        http::Method::GET => (http::StatusCode::OK, metrics.encode()),
        http::Method::HEAD => (http::StatusCode::OK, String::new()),
        _ => (
            http::StatusCode::METHOD_NOT_ALLOWED,
            "GET /metrics\n".to_owned(),
        ),
    };
    let content_type = if status == http::StatusCode::OK {
        super::CONTENT_TYPE
    } else {
        "text/plain; charset=utf-8"
    };
    let mut response = HttpResponse::new(HttpBody::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

/// Tower layer answering `/metrics`.
#[derive(Clone, Debug)]
pub struct MetricsLayer {
    pub metrics: Arc<Metrics>,
}

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> MetricsService<S> {
        MetricsService {
            inner,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

#[derive(Clone, Debug)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B> tower::Service<HttpRequest<B>> for MetricsService<S>
where
    S: tower::Service<HttpRequest<B>, Response = HttpResponse>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = HttpResponse;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest<B>) -> Self::Future {
        if request.uri().path() == PATH {
            let response = reply(&self.metrics, request.method());
            return Box::pin(std::future::ready(Ok(response)));
        }
        Box::pin(self.inner.call(request))
    }
}
