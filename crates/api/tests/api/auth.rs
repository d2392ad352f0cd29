//! Token verification: HS256 and JWKS keys, and every way a token can be wrong.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use boxoffice_api::auth::{AuthConfig, Role, Secret};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::common::{Backend, SECRET, TestApp, eras_tour};

const RSA_PRIVATE: &str = include_str!("../fixtures/rsa-private.pem");
const RSA_PUBLIC: &str = include_str!("../fixtures/rsa-public.pem");
const EC_PRIVATE: &str = include_str!("../fixtures/ec-private.pem");
const ED_PRIVATE: &str = include_str!("../fixtures/ed25519-private.pem");

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn claims(extra: Value) -> Value {
    let mut c = json!({"sub": "org-7", "roles": ["organizer"], "exp": now() + 600});
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            if v.is_null() {
                c.remove(k);
            } else {
                c.insert(k.clone(), v.clone());
            }
        }
    }
    c
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&h, claims, key).unwrap()
}

fn hs(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        claims,
    )
}

/// A fake identity provider: serves a JWKS with an RSA, an EC and an Ed25519 key.
async fn identity_provider() -> String {
    let mut keys = Vec::new();
    for (kid, alg, key) in [
        (
            "rsa-1",
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
        ),
        (
            "ec-1",
            Algorithm::ES256,
            EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
        ),
        (
            "ed-1",
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).unwrap(),
        ),
    ] {
        let mut jwk = Jwk::from_encoding_key(&key, alg).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        keys.push(jwk);
    }
    let set = JwkSet { keys };
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let set = set.clone();
            async move { axum::Json(set) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/.well-known/jwks.json")
}

async fn create_status(app: &TestApp, token: &str) -> u16 {
    app.post("/v1/events", token, &eras_tour()).await.0
}

#[tokio::test]
async fn hs256_tokens_and_their_failures() {
    let app = TestApp::start(Backend::Sqlite).await;
    assert_eq!(create_status(&app, &hs(&claims(json!({})))).await, 201);

    let expired = hs(&claims(json!({"exp": now() - 3600})));
    let no_exp = hs(&claims(json!({"exp": null})));
    let wrong_key = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(b"some-other-secret-entirely"),
        &claims(json!({})),
    );
    // alg "none": header and payload, empty signature.
    let none = format!(
        "{}.{}.",
        B64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        B64.encode(claims(json!({})).to_string())
    );
    // A valid token with its payload swapped for an admin one.
    let good = hs(&claims(json!({})));
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(claims(json!({"roles": ["admin"]})).to_string()),
        parts[2]
    );
    let rs_without_jwks = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
        &claims(json!({})),
    );
    for (what, token) in [
        ("expired", expired),
        ("missing exp", no_exp),
        ("wrong key", wrong_key),
        ("alg none", none),
        ("tampered", tampered),
        ("asymmetric with no JWKS configured", rs_without_jwks),
        ("garbage", "not.a.token".to_owned()),
        ("empty sub", hs(&claims(json!({"sub": ""})))),
        (
            "not valid before a later time",
            hs(&claims(json!({"nbf": now() + 600}))),
        ),
        (
            "nbf just past the leeway",
            hs(&claims(json!({"nbf": now() + 90}))),
        ),
    ] {
        let (status, problem) = app.post("/v1/events", &token, &eras_tour()).await;
        assert_eq!(status, 401, "{what}: {problem}");
        assert_eq!(problem["code"], "unauthorized");
    }
    // `nbf` in the past, or within the clock-skew leeway, is fine.
    for nbf in [now() - 600, now() + 10] {
        let token = hs(&claims(json!({"nbf": nbf})));
        assert_eq!(create_status(&app, &token).await, 201, "nbf {nbf}");
    }
    // Unknown roles are ignored; a token with none of the needed roles is forbidden.
    let customer = hs(&claims(json!({"roles": ["customer", "superuser"]})));
    assert_eq!(create_status(&app, &customer).await, 403);
}

#[tokio::test]
async fn jwks_keys_of_every_kind_and_no_algorithm_confusion() {
    let jwks = identity_provider().await;
    let app = TestApp::start_with(
        Backend::Sqlite,
        AuthConfig {
            hs256_secret: Some(Secret::new(SECRET)),
            jwks_url: Some(jwks),
            issuer: Some("https://id.example".into()),
            audience: Some("boxoffice".into()),
            ..AuthConfig::default()
        },
    )
    .await;
    let ok = claims(json!({"iss": "https://id.example", "aud": "boxoffice"}));
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    let ec = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
    let ed = EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).unwrap();
    for (alg, kid, key) in [
        (Algorithm::RS256, "rsa-1", &rsa),
        (Algorithm::ES256, "ec-1", &ec),
        (Algorithm::EdDSA, "ed-1", &ed),
    ] {
        assert_eq!(
            create_status(&app, &sign(alg, Some(kid), key, &ok)).await,
            201,
            "{alg:?}"
        );
    }
    assert_eq!(
        create_status(&app, &hs(&ok)).await,
        401,
        "with an identity provider, the shared secret mints nothing"
    );

    // RS256 → HS256 confusion: an HMAC keyed with the RSA public key must not verify.
    let confused = sign(
        Algorithm::HS256,
        Some("rsa-1"),
        &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
        &ok,
    );
    // A key used with an algorithm of another family, or an unknown key id.
    let wrong_family = sign(Algorithm::ES256, Some("rsa-1"), &ec, &ok);
    let unknown_kid = sign(Algorithm::RS256, Some("rsa-9"), &rsa, &ok);
    let bad_iss = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &rsa,
        &claims(json!({"iss": "https://evil.example", "aud": "boxoffice"})),
    );
    let bad_aud = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &rsa,
        &claims(json!({"iss": "https://id.example", "aud": "someone-else"})),
    );
    let expired = sign(
        Algorithm::EdDSA,
        Some("ed-1"),
        &ed,
        &claims(json!({"iss": "https://id.example", "aud": "boxoffice", "exp": now() - 120})),
    );
    let not_yet = sign(
        Algorithm::EdDSA,
        Some("ed-1"),
        &ed,
        &claims(json!({"iss": "https://id.example", "aud": "boxoffice", "nbf": now() + 600})),
    );
    for (what, token) in [
        ("HS256 keyed with the RSA public key", confused),
        ("EC signature claiming an RSA key", wrong_family),
        ("unknown kid", unknown_kid),
        ("wrong issuer", bad_iss),
        ("wrong audience", bad_aud),
        ("expired", expired),
        ("not valid yet", not_yet),
    ] {
        assert_eq!(create_status(&app, &token).await, 401, "{what}");
    }
}

#[tokio::test]
async fn hs256_beside_jwks_only_when_allowed() {
    let jwks = identity_provider().await;
    let app = TestApp::start_with(
        Backend::Sqlite,
        AuthConfig {
            hs256_secret: Some(Secret::new(SECRET)),
            jwks_url: Some(jwks),
            allow_hs256_with_jwks: true,
            ..AuthConfig::default()
        },
    )
    .await;
    let ok = claims(json!({}));
    assert_eq!(
        create_status(&app, &hs(&ok)).await,
        201,
        "explicitly allowed"
    );
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    assert_eq!(
        create_status(&app, &sign(Algorithm::RS256, Some("rsa-1"), &rsa, &ok)).await,
        201
    );
    let early = hs(&claims(json!({"nbf": now() + 600})));
    assert_eq!(create_status(&app, &early).await, 401);
}

#[tokio::test]
async fn minted_tokens_carry_roles_and_expire() {
    let app = TestApp::start(Backend::Sqlite).await;
    let token = boxoffice_api::auth::mint_hs256(
        &Secret::new(SECRET),
        "org-2",
        &[Role::Customer, Role::Organizer],
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(create_status(&app, &token).await, 201);
    let payload: Value =
        serde_json::from_slice(&B64.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(payload["roles"], json!(["customer", "organizer"]));
    assert!(payload["exp"].as_i64().unwrap() <= now() + 61);
}
