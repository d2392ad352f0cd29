//! HTTPS served by the node itself (`--tls-cert`, `--tls-key`) and client certificates for
//! the operator and scanner routes (`--tls-client-ca`), over a real loopback server with
//! certificates made here: a test CA, the node's certificate for 127.0.0.1, a client
//! certificate from that CA, and one from a CA the node does not know. And the outgoing side:
//! the payment provider's client refuses a server whose certificate it cannot verify.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use boxoffice_api::auth::{Role, Secret, mint_hs256};
use boxoffice_domain::payments::PaymentProvider;
use common::{SECRET, Server};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::{Value, json};

/// A CA that signs server and client certificates.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("self-signed CA");
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf certificate and its key, both PEM.
    fn issue(&self, name: &str, sans: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(sans).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        (cert.pem(), key.serialize_pem())
    }
}

/// Every file a TLS node and its clients need, in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca: String,
    client: (String, String),
    stranger: (String, String),
    server: (String, String),
}

impl Pki {
    fn new() -> Self {
        let ca = Ca::new("boxoffice test CA");
        let other = Ca::new("someone else's CA");
        let server = ca.issue(
            "boxoffice node",
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let client = ca.issue("door-scanner-1", &[], ExtendedKeyUsagePurpose::ClientAuth);
        let stranger = other.issue("intruder", &[], ExtendedKeyUsagePurpose::ClientAuth);
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Self {
            dir,
            ca: ca.pem,
            client,
            stranger,
            server,
        };
        pki.write("ca.pem", &pki.ca);
        pki.write("server.pem", &pki.server.0);
        pki.write("server-key.pem", &pki.server.1);
        pki
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write");
        path
    }

    fn path(&self, name: &str) -> String {
        self.dir
            .path()
            .join(name)
            .to_str()
            .expect("utf-8")
            .to_owned()
    }

    /// The environment of a node serving HTTPS, with client certificates when `mtls`.
    fn env(&self, mtls: bool) -> Vec<(String, String)> {
        let mut env = vec![
            ("BOXOFFICE_JWT_SECRET".to_owned(), SECRET.to_owned()),
            ("BOXOFFICE_TLS_CERT".to_owned(), self.path("server.pem")),
            ("BOXOFFICE_TLS_KEY".to_owned(), self.path("server-key.pem")),
        ];
        if mtls {
            env.push(("BOXOFFICE_TLS_CLIENT_CA".to_owned(), self.path("ca.pem")));
        }
        env
    }

    /// A client that trusts only the test CA, presenting `identity` when given.
    fn client(&self, identity: Option<&(String, String)>) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(self.ca.as_bytes()).expect("CA");
        let mut builder = reqwest::Client::builder()
            .tls_certs_only([ca])
            .timeout(Duration::from_secs(30));
        if let Some((cert, key)) = identity {
            let pem = format!("{cert}{key}");
            builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("id"));
        }
        builder.build().expect("client")
    }
}

fn start(data: &Path, env: &[(String, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start_capturing(data, &env)
}

fn token(sub: &str, roles: &[Role]) -> String {
    mint_hs256(&Secret::new(SECRET), sub, roles, Duration::from_secs(3600)).expect("token")
}

async fn json(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Creates an event, buys one seat and returns (event id, ticket token), all over HTTPS.
async fn a_ticket(http: &reqwest::Client, server: &Server) -> (String, String) {
    let org = token("org", &[Role::Organizer]);
    let (status, event) = json(
        http.post(server.url("/v1/events"))
            .bearer_auth(&org)
            .json(&json!({
                "name": "TLS Night", "category": "concert", "startsAt": "2099-06-01T19:30:00Z",
                "currency": "USD",
                "venue": {"name": "Lumen Field", "address": "800 Occidental Ave S",
                          "city": "Seattle", "zipCode": "98134", "country": "US",
                          "lat": 47.5952, "lon": -122.3316},
                "sections": [{"name": "Floor", "rows": 1, "seatsPerRow": 4, "priceCents": 1000}],
                "policies": {"maxTicketsPerCustomer": 4}
            }))
            .send()
            .await
            .expect("create event"),
    )
    .await;
    assert_eq!(status, 201, "{event}");
    let event = event["eventId"].as_str().expect("id").to_owned();
    let fan = token("fan", &[Role::Customer]);
    let (status, hold) = json(
        http.post(server.url("/v1/attempt"))
            .bearer_auth(&fan)
            .json(&json!({"eventId": event, "section": "Floor", "quantity": 1}))
            .send()
            .await
            .expect("hold"),
    )
    .await;
    assert_eq!(status, 201, "{hold}");
    let (status, paid) = json(
        http.post(server.url("/v1/commit"))
            .bearer_auth(&fan)
            .header("Idempotency-Key", "tls-1")
            .json(&json!({"bookingId": hold["bookingId"], "paymentMethod": "pm_card_visa"}))
            .send()
            .await
            .expect("commit"),
    )
    .await;
    assert_eq!(status, 200, "{paid}");
    let ticket = paid["tickets"][0]["token"].as_str().expect("token");
    (event, ticket.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_client_certificates_for_operator_and_scanner_routes() {
    let pki = Pki::new();
    let data = tempfile::tempdir().expect("tempdir");
    let server = start(data.path(), &pki.env(true));
    assert!(server.base.starts_with("https://"), "{}", server.base);

    let anonymous = pki.client(None);
    let operator = pki.client(Some(&pki.client));

    // Public routes: no client certificate needed.
    for path in [
        "/healthz",
        "/readyz",
        "/v1/events?q=anything",
        "/openapi.json",
    ] {
        let res = anonymous.get(server.url(path)).send().await.expect(path);
        assert_eq!(res.status(), 200, "{path}");
    }
    let (event, ticket) = a_ticket(&anonymous, &server).await;

    // Operator and scanner routes without a client certificate: refused, whatever the token.
    let door = token("door", &[Role::Scanner]);
    let checkin = json!({"token": ticket, "eventId": event});
    let (status, problem) = json(
        anonymous
            .post(server.url("/v1/checkin"))
            .bearer_auth(&door)
            .json(&checkin)
            .send()
            .await
            .expect("check-in"),
    )
    .await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["code"], "client-certificate-required", "{problem}");
    for path in [
        "/metrics".to_owned(),
        format!("/v1/events/{event}/revocations"),
    ] {
        let res = anonymous
            .get(server.url(&path))
            .bearer_auth(&door)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 403, "{path}");
    }

    // With the operators' certificate: the scanner checks the ticket in.
    let (status, admitted) = json(
        operator
            .post(server.url("/v1/checkin"))
            .bearer_auth(&door)
            .json(&checkin)
            .send()
            .await
            .expect("check-in"),
    )
    .await;
    assert_eq!(status, 200, "{admitted}");
    let (status, again) = json(
        operator
            .post(server.url("/v1/checkin"))
            .bearer_auth(&door)
            .json(&checkin)
            .send()
            .await
            .expect("check-in"),
    )
    .await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["code"], "already-checked-in");
    let res = operator
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(res.status(), 200);
    let res = operator
        .get(server.url(&format!("/v1/events/{event}/revocations")))
        .bearer_auth(&door)
        .send()
        .await
        .expect("revocations");
    assert_eq!(res.status(), 200);
    // The certificate does not replace the token: a scanner route still needs the role.
    let res = operator
        .post(server.url("/v1/checkin"))
        .json(&checkin)
        .send()
        .await
        .expect("check-in");
    assert_eq!(res.status(), 401);

    // A certificate from a CA the node does not trust ends the handshake.
    let stranger = pki.client(Some(&pki.stranger));
    let refused = stranger.get(server.url("/healthz")).send().await;
    assert!(
        refused.is_err(),
        "an unknown CA's client certificate was accepted"
    );

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let url = server.base.replacen("https://", "http://", 1) + "/healthz";
    match plain.get(&url).send().await {
        Err(_) => {}
        Ok(res) => panic!("plain HTTP was answered: {}", res.status()),
    }
    // A client that does not trust the test CA refuses the node.
    let untrusting = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    assert!(untrusting.get(server.url("/healthz")).send().await.is_err());

    let (status, output) = server.terminate_with_output(Duration::from_secs(30));
    assert!(status.success(), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_without_client_ca_serves_every_route_without_a_certificate() {
    let pki = Pki::new();
    let data = tempfile::tempdir().expect("tempdir");
    let server = start(data.path(), &pki.env(false));
    let http = pki.client(None);
    let res = http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(res.status(), 200);
    // HTTP/2 is offered through ALPN.
    let res = http
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    let (status, output) = server.terminate_with_output(Duration::from_secs(30));
    assert!(status.success(), "{output}");
}

/// SIGTERM with a live event stream open over TLS: the stream is closed, in-flight requests
/// finish, and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_over_tls_ends_open_streams() {
    let pki = Pki::new();
    let data = tempfile::tempdir().expect("tempdir");
    let server = start(data.path(), &pki.env(true));
    let http = pki.client(None);
    let (event, _) = a_ticket(&http, &server).await;
    let stream = http
        .get(server.url(&format!("/v1/events/{event}/seats/events")))
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status(), 200);
    let mut stream = stream;
    // The stream is open once its first bytes arrive.
    let first = tokio::time::timeout(Duration::from_secs(30), stream.chunk())
        .await
        .expect("the stream starts");
    assert!(matches!(first, Ok(Some(_))), "{first:?}");
    let reader = tokio::spawn(async move { while let Ok(Some(_)) = stream.chunk().await {} });
    let (status, output) = server.terminate_with_output(Duration::from_secs(30));
    assert!(status.success(), "{output}");
    tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the stream ended with the server")
        .expect("reader");
}

#[test]
fn bad_tls_configuration_stops_the_node_at_start() {
    let pki = Pki::new();
    let data = tempfile::tempdir().expect("tempdir");
    let missing = pki.path("nothing-here.pem");
    let not_a_key = pki.write("not-a-key.pem", "hunter2-secret-material\n");
    let not_a_key = not_a_key.to_str().expect("utf-8");
    let (server_pem, server_key, ca) = (
        pki.path("server.pem"),
        pki.path("server-key.pem"),
        pki.path("ca.pem"),
    );
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("BOXOFFICE_TLS_CERT", &missing)], "tls-key"),
        (
            vec![
                ("BOXOFFICE_TLS_CERT", &missing),
                ("BOXOFFICE_TLS_KEY", &missing),
            ],
            "nothing-here.pem",
        ),
        (
            vec![
                ("BOXOFFICE_TLS_CERT", &server_pem),
                ("BOXOFFICE_TLS_KEY", not_a_key),
            ],
            "--tls-key",
        ),
        // The CA's certificate with the server's key: they do not fit.
        (
            vec![
                ("BOXOFFICE_TLS_CERT", &ca),
                ("BOXOFFICE_TLS_KEY", &server_key),
            ],
            "do not fit",
        ),
        (vec![("BOXOFFICE_TLS_CLIENT_CA", &ca)], "tls-cert"),
    ];
    for (env, expect) in cases {
        let stderr = common::serve_refused(data.path(), &env);
        assert!(stderr.contains(expect), "{env:?}: {stderr}");
        assert!(
            !stderr.contains("hunter2"),
            "key material in the error: {stderr}"
        );
    }
}

/// The Stripe adapter's HTTP client verifies the provider's certificate: a server whose
/// certificate does not chain to a trusted root is refused before any request is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payment_provider_client_verifies_certificates() {
    let pki = Pki::new();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let addr = untrusted_https_server(&pki, handshakes.clone()).await;
    let base = format!("https://{addr}");

    // The fake answers a client that trusts its CA, so it works …
    let trusting = pki.client(None);
    let res = trusting
        .get(format!("{base}/v1/payment_intents/pi_1"))
        .send()
        .await
        .expect("the fake answers a client that trusts it");
    assert_eq!(res.status(), 200);
    assert_eq!(handshakes.load(Ordering::SeqCst), 1);

    // … and the adapter, which trusts only the system's roots, refuses it.
    let stripe = boxoffice_payments::Stripe::new(
        boxoffice_payments::StripeConfig::new("sk_test_not_a_real_key")
            .with_base_url(&base)
            .with_request_timeout(Duration::from_secs(10)),
    )
    .expect("adapter");
    let err = stripe
        .retrieve("pi_1")
        .await
        .expect_err("an unverifiable certificate was accepted");
    let shown = format!("{err:?}").to_lowercase();
    assert!(shown.contains("certificate"), "{shown}");
    assert!(!shown.contains("sk_test_not_a_real_key"), "{shown}");
    assert_eq!(
        handshakes.load(Ordering::SeqCst),
        1,
        "the adapter completed a handshake"
    );
}

/// An HTTPS server with a certificate from the test CA (which no system trusts) answering
/// every request with a PaymentIntent; counts completed handshakes.
async fn untrusted_https_server(pki: &Pki, handshakes: Arc<AtomicUsize>) -> std::net::SocketAddr {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let certs = vec![CertificateDer::from_pem_slice(pki.server.0.as_bytes()).expect("cert")];
    let key = PrivateKeyDer::from_pem_slice(pki.server.1.as_bytes()).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let handshakes = handshakes.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                handshakes.fetch_add(1, Ordering::SeqCst);
                let mut buf = vec![0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let body = r#"{"id":"pi_1","object":"payment_intent","status":"succeeded"}"#;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(reply.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}
