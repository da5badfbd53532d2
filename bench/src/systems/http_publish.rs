//! The HTTP publisher used for every system published to over HTTP (streamgate's
//! `POST /api/publish`, Pushpin's `/publish/`): hyper's HTTP/1.1 client on plain
//! keep-alive connections, one request in flight per connection. A publisher task
//! takes an idle connection (or dials one), sends, and puts it back, so 32 tasks
//! end up with 32 connections. Far cheaper per request than reqwest's pooled
//! client (no pool bookkeeping, no timeouts per request, no header map rebuilds),
//! so the generator is not what limits the HTTP-published systems.

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest a publish request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// POSTs JSON bodies to one URL on reused keep-alive connections.
#[derive(Clone)]
pub struct HttpPublisher {
    inner: Arc<Inner>,
}

struct Inner {
    addr: SocketAddr,
    host: HeaderValue,
    path: String,
    auth: Option<HeaderValue>,
    /// Connections not in use. Locked only to pop or push one; no await inside.
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl HttpPublisher {
    /// A publisher for `http://{addr}{path}`, sending `authorization: {auth}` when given.
    pub fn new(addr: SocketAddr, path: &str, auth: Option<&str>) -> anyhow::Result<Self> {
        Ok(Self {
            inner: Arc::new(Inner {
                addr,
                host: HeaderValue::from_str(&addr.to_string())?,
                path: path.to_string(),
                auth: auth.map(HeaderValue::from_str).transpose()?,
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// POSTs `body` as JSON; returns the status and the response body.
    pub async fn post(&self, body: String) -> anyhow::Result<(StatusCode, Bytes)> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.post_inner(body))
            .await
            .context("publish request timed out")?
    }

    async fn post_inner(&self, body: String) -> anyhow::Result<(StatusCode, Bytes)> {
        let idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut sender = match idle {
            Some(s) if !s.is_closed() => s,
            _ => self.connect().await?,
        };
        sender.ready().await?;
        let mut req = Request::new(Full::new(Bytes::from(body)));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.inner.path.parse()?;
        let headers = req.headers_mut();
        headers.insert(HOST, self.inner.host.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(auth) = &self.inner.auth {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        self.inner.idle.lock().unwrap_or_else(|p| p.into_inner()).push(sender);
        Ok((status, bytes))
    }

    async fn connect(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let stream = tokio::net::TcpStream::connect(self.inner.addr)
            .await
            .with_context(|| format!("connect {}", self.inner.addr))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Ends when the server closes or the sender is dropped.
            let _ = conn.await;
        });
        Ok(sender)
    }
}
