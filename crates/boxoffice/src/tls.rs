//! HTTPS served by the node itself (rustls), and client certificates for the operator and
//! scanner routes.
//!
//! The handshake asks every client for a certificate but lets one without through
//! (`allow_unauthenticated`): a certificate that is presented must chain to
//! `--tls-client-ca`, or the handshake fails. Whether the connection carries a verified
//! certificate is put on each of its requests ([`ClientCertificate`]), and
//! [`require_client_certificate`] refuses the operator and scanner routes without one. Public
//! routes (search, events, the storefront, the probes, Stripe's webhooks) need none.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use boxoffice_api::error::Problem;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A client that does not finish its handshake within this long is dropped.
const HANDSHAKE_WITHIN: Duration = Duration::from_secs(10);

/// Where the node's certificate, key and client CA are.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// The server side of TLS, ready to accept connections.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    /// Operator and scanner routes need a client certificate.
    pub client_auth: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

/// Set on every request of a connection whose client presented a certificate that
/// chains to the configured client CA.
#[derive(Debug, Clone, Copy)]
pub struct ClientCertificate;

fn read_certs(path: &Path, what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading the {what} {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("reading the {what} {}", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no PEM certificate ({what})", path.display());
    }
    Ok(certs)
}

impl Tls {
    /// Reads the files and builds the server configuration; every mistake (a missing
    /// file, a key that does not match the certificate) is an error here, at start.
    pub fn load(files: &TlsFiles) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certs = read_certs(&files.cert, "certificate (--tls-cert)")?;
        // The key's contents never go into an error message.
        let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|_| {
            anyhow::anyhow!(
                "cannot read a PEM private key from {} (--tls-key)",
                files.key.display()
            )
        })?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        let builder = match &files.client_ca {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in read_certs(path, "client CA (--tls-client-ca)")? {
                    roots.add(cert).with_context(|| {
                        format!("a certificate in {} is not a usable CA", path.display())
                    })?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .allow_unauthenticated()
                .build()
                .context("the client certificate verifier")?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .context("the TLS certificate and key (--tls-cert, --tls-key) do not fit")?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            client_auth: files.client_ca.is_some(),
        })
    }
}

/// Outgoing calls that carry secrets or decide who is who (the PSP, the identity
/// provider's keys) go over TLS, whose certificates reqwest verifies against the system's
/// roots; plain `http://` is accepted only to a loopback address (local fakes in tests).
pub fn check_outgoing_url(url: &str, flag: &str) -> anyhow::Result<()> {
    let lower = url.trim().to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = lower.strip_prefix("http://") else {
        bail!("{flag} must be an https:// URL");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!(
            "{flag} must be an https:// URL: over plain http:// the other side's \
             certificate cannot be verified (http:// is only for a loopback address)"
        );
    }
    Ok(())
}

/// Whether a route is for operators or scanners (and so needs a client certificate when
/// client certificates are configured): check-in, the revocations list, metrics.
pub fn is_operator_route(path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').collect();
    matches!(
        segments.as_slice(),
        ["", "v1", "checkin"] | ["", "metrics"] | ["", "v1", "events", _, "revocations"]
    )
}

/// Refuses operator and scanner routes to a connection without a verified client
/// certificate (403 `client-certificate-required`).
pub async fn require_client_certificate(request: Request, next: Next) -> Response {
    if is_operator_route(request.uri().path())
        && request.extensions().get::<ClientCertificate>().is_none()
    {
        return Problem::new(
            StatusCode::FORBIDDEN,
            "client-certificate-required",
            "This route needs a client certificate",
        )
        .detail("Operator and scanner routes need a TLS client certificate from the operators' CA")
        .into_response();
    }
    next.run(request).await
}

/// Serves `app` over TLS on `listener` until `shutdown` resolves; then stops accepting,
/// lets every connection finish its in-flight requests, and returns once all are closed
/// or `drain_within` has passed (the connections left are then dropped).
pub async fn serve(
    listener: TcpListener,
    tls: Tls,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain_within: Duration,
) -> std::io::Result<()> {
    let app = if tls.client_auth {
        app.layer(axum::middleware::from_fn(require_client_certificate))
    } else {
        app
    };
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, do not spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = tls.acceptor.clone();
        let app = app.clone();
        // Taken before the handshake, so that shutdown waits for this connection too.
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_WITHIN, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    // Plain HTTP on the TLS port, an untrusted client certificate, …
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let verified = stream.get_ref().1.peer_certificates().is_some();
            let service = hyper::service::service_fn(move |mut request: Request<_>| {
                if verified {
                    request.extensions_mut().insert(ClientCertificate);
                }
                let mut app = app.clone();
                async move {
                    use tower_service::Service;
                    app.call(request.map(axum::body::Body::new)).await
                }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(drain_within, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "connections still open {}s after shutdown began; closing them",
            drain_within.as_secs()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_routes() {
        for path in ["/v1/checkin", "/metrics", "/v1/events/abc/revocations"] {
            assert!(is_operator_route(path), "{path}");
        }
        for path in [
            "/",
            "/healthz",
            "/readyz",
            "/v1/events",
            "/v1/events/abc",
            "/v1/events/abc/seats",
            "/v1/events/abc/revocations/x",
            "/v1/checkin/x",
            "/v1/webhooks/stripe",
            "/metricsx",
        ] {
            assert!(!is_operator_route(path), "{path}");
        }
    }

    #[test]
    fn outgoing_urls_need_tls_beyond_loopback() {
        for ok in [
            "https://api.stripe.com",
            "HTTPS://idp.example.com/.well-known/jwks.json",
            "http://127.0.0.1:9/jwks.json",
            "http://localhost:8080",
            "http://[::1]:8080/x",
        ] {
            assert!(check_outgoing_url(ok, "--x").is_ok(), "{ok}");
        }
        for bad in [
            "http://api.stripe.com",
            "http://10.0.0.1/jwks",
            "http://127.0.0.1.evil.example/",
            "http://user@evil.example/",
            "ftp://127.0.0.1/",
            "api.stripe.com",
        ] {
            assert!(check_outgoing_url(bad, "--x").is_err(), "{bad}");
        }
    }
}
