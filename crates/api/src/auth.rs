//! Bearer-token authentication.
//!
//! Tokens are JWTs. `sub` is the customer id, `roles` a list of `customer`, `organizer`,
//! `scanner`, `admin`, and `exp` is required; `nbf`, when present, is checked with the same
//! leeway as `exp`. An optional `events` claim (a list of event ids) limits a scanner to the
//! doors of those events. Two kinds of key are supported:
//! - an HS256 shared secret (the embedded default, and what `boxoffice token` signs with);
//! - a JWKS URL of a real identity provider (RS256/RS384/RS512, PS*, ES256/ES384, EdDSA),
//!   fetched and cached, re-fetched when a token names a key id not seen yet.
//!
//! With a JWKS configured the identity provider is the only issuer: the HS256 secret would
//! otherwise let whoever holds it mint any role, so it is ignored unless
//! [`AuthConfig::allow_hs256_with_jwks`] says otherwise.
//!
//! The algorithm a token may use is decided by *our* key, never by the token: an HS256 token
//! is checked only against the shared secret and an asymmetric one only against the JWKS key
//! with its `kid` whose type matches, so `alg: none` and RS256→HS256 confusion both fail.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use boxoffice_domain::ids::{CustomerId, EventId};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use crate::AppState;
use crate::error::{ApiError, Problem};

/// A secret string whose `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(\"[redacted]\")")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret::new(s))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Organizer,
    Scanner,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "customer" => Role::Customer,
            "organizer" => Role::Organizer,
            "scanner" => Role::Scanner,
            "admin" => Role::Admin,
            _ => return None,
        })
    }
}

/// Who is calling, as their token proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub sub: CustomerId,
    pub roles: Vec<Role>,
    /// The token's `events` claim: when present, the only events this caller may act on at
    /// the door (check-in). `None` means no such limit.
    pub events: Option<Vec<EventId>>,
}

impl Principal {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn is_admin(&self) -> bool {
        self.has(Role::Admin)
    }

    /// Whether the token's `events` claim (if any) covers `event`.
    pub fn may_act_on(&self, event: EventId) -> bool {
        self.events.as_ref().is_none_or(|ids| ids.contains(&event))
    }

    /// 403 unless the caller has one of `roles` (admins always pass).
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if self.is_admin() || roles.iter().any(|r| self.has(*r)) {
            Ok(())
        } else {
            let names: Vec<_> = roles
                .iter()
                .map(|r| format!("{r:?}").to_lowercase())
                .collect();
            Err(ApiError::forbidden(format!(
                "this needs the role {}",
                names.join(" or ")
            )))
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    roles: Vec<String>,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aud: Option<serde_json::Value>,
    /// Event ids a scanner is limited to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    events: Option<Vec<String>>,
}

/// How tokens are checked.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    pub hs256_secret: Option<Secret>,
    pub jwks_url: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Accept HS256 tokens even though a JWKS is configured. Off by default: with an identity
    /// provider, the shared secret must not be a second way to mint any role.
    pub allow_hs256_with_jwks: bool,
}

impl AuthConfig {
    /// Whether HS256 tokens signed with the shared secret are accepted under this config.
    pub fn accepts_hs256(&self) -> bool {
        self.hs256_secret.is_some() && (self.jwks_url.is_none() || self.allow_hs256_with_jwks)
    }
}

/// Why a token was refused. Shown to clients only as a generic 401.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token is not valid")]
    Invalid,
}

/// Verifies bearer tokens against the configured keys.
pub struct Authenticator {
    hs256: Option<DecodingKey>,
    jwks: Option<JwksCache>,
    issuer: Option<String>,
    audience: Option<String>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("hs256", &self.hs256.is_some())
            .field("jwks", &self.jwks.as_ref().map(|j| &j.url))
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

/// Seconds of clock skew tolerated on `exp`/`nbf`.
const LEEWAY_SECS: u64 = 30;

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Self {
        Self {
            hs256: config
                .hs256_secret
                .as_ref()
                .filter(|_| config.accepts_hs256())
                .map(|s| DecodingKey::from_secret(s.expose().as_bytes())),
            jwks: config.jwks_url.clone().map(JwksCache::new),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
        }
    }

    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
        let (key, alg) = if header.alg == Algorithm::HS256 {
            (
                self.hs256.clone().ok_or(AuthError::Invalid)?,
                Algorithm::HS256,
            )
        } else if is_asymmetric(header.alg) {
            let jwks = self.jwks.as_ref().ok_or(AuthError::Invalid)?;
            let jwk = jwks
                .key(header.kid.as_deref(), header.alg)
                .await
                .ok_or(AuthError::Invalid)?;
            (
                DecodingKey::from_jwk(&jwk).map_err(|_| AuthError::Invalid)?,
                header.alg,
            )
        } else {
            return Err(AuthError::Invalid);
        };
        let mut v = Validation::new(alg);
        v.leeway = LEEWAY_SECS;
        v.set_required_spec_claims(&["exp", "sub"]);
        v.validate_exp = true;
        // Checked when present, with the same leeway as `exp`.
        v.validate_nbf = true;
        match &self.issuer {
            Some(iss) => v.set_issuer(&[iss]),
            None => v.iss = None,
        }
        match &self.audience {
            Some(aud) => v.set_audience(&[aud]),
            None => v.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<Claims>(token, &key, &v).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
            jsonwebtoken::errors::ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            _ => AuthError::Invalid,
        })?;
        let sub = CustomerId::parse(&data.claims.sub).map_err(|_| AuthError::Invalid)?;
        let mut roles: Vec<Role> = data
            .claims
            .roles
            .iter()
            .filter_map(|r| Role::parse(r))
            .collect();
        roles.sort_by_key(|r| *r as u8);
        roles.dedup();
        // Ids that do not parse match no event, so a malformed entry only narrows the limit.
        let events = data.claims.events.map(|ids| {
            ids.iter()
                .filter_map(|raw| raw.parse::<EventId>().ok())
                .collect()
        });
        Ok(Principal { sub, roles, events })
    }
}

fn is_asymmetric(alg: Algorithm) -> bool {
    use Algorithm::*;
    matches!(
        alg,
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 | ES256 | ES384 | EdDSA
    )
}

/// Whether a JWK may verify tokens signed with `alg`: its declared algorithm must match if it
/// declares one, and its key type must fit the algorithm family in any case.
fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    use jsonwebtoken::jwk::AlgorithmParameters as P;
    use jsonwebtoken::jwk::KeyAlgorithm as K;
    if let Some(declared) = jwk.common.key_algorithm {
        let same = matches!(
            (declared, alg),
            (K::RS256, Algorithm::RS256)
                | (K::RS384, Algorithm::RS384)
                | (K::RS512, Algorithm::RS512)
                | (K::PS256, Algorithm::PS256)
                | (K::PS384, Algorithm::PS384)
                | (K::PS512, Algorithm::PS512)
                | (K::ES256, Algorithm::ES256)
                | (K::ES384, Algorithm::ES384)
                | (K::EdDSA, Algorithm::EdDSA)
        );
        if !same {
            return false;
        }
    }
    match &jwk.algorithm {
        P::RSA(_) => matches!(
            alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ),
        P::EllipticCurve(_) => matches!(alg, Algorithm::ES256 | Algorithm::ES384),
        P::OctetKeyPair(_) => alg == Algorithm::EdDSA,
        // A symmetric key in a JWKS would let anyone who reads the JWKS sign tokens.
        _ => false,
    }
}

/// The identity provider's keys, fetched on first use and again when a token names an unknown
/// key id (at most every [`JwksCache::MIN_REFRESH`]) or the cache is older than
/// [`JwksCache::MAX_AGE`].
struct JwksCache {
    url: String,
    http: reqwest::Client,
    state: RwLock<Option<(JwkSet, Instant)>>,
}

impl JwksCache {
    const MIN_REFRESH: Duration = Duration::from_secs(30);
    const MAX_AGE: Duration = Duration::from_secs(600);

    fn new(url: String) -> Self {
        Self {
            url,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            state: RwLock::new(None),
        }
    }

    async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Option<Jwk> {
        let found = {
            let state = self.state.read().await;
            match &*state {
                Some((set, at)) if at.elapsed() < Self::MAX_AGE => Some(find(set, kid, alg)),
                _ => None,
            }
        };
        match found {
            Some(Some(k)) => return Some(k),
            Some(None) => {
                // Unknown key: the provider may have rotated. Refresh, but not too often.
                let state = self.state.read().await;
                if let Some((_, at)) = &*state
                    && at.elapsed() < Self::MIN_REFRESH
                {
                    return None;
                }
            }
            None => {}
        }
        let mut state = self.state.write().await;
        if let Some((set, at)) = &*state
            && at.elapsed() < Self::MIN_REFRESH
        {
            return find(set, kid, alg);
        }
        match self.fetch().await {
            Ok(set) => {
                let k = find(&set, kid, alg);
                *state = Some((set, Instant::now()));
                k
            }
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, "could not fetch JWKS");
                state.as_ref().and_then(|(set, _)| find(set, kid, alg))
            }
        }
    }

    async fn fetch(&self) -> Result<JwkSet, reqwest::Error> {
        self.http
            .get(&self.url)
            .send()
            .await?
            .error_for_status()?
            .json::<JwkSet>()
            .await
    }
}

fn find(set: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<Jwk> {
    set.keys
        .iter()
        .filter(|k| match kid {
            Some(kid) => k.common.key_id.as_deref() == Some(kid),
            None => true,
        })
        .find(|k| key_fits(k, alg))
        .cloned()
}

/// Signs an HS256 token, for `boxoffice token` and for tests.
pub fn mint_hs256(
    secret: &Secret,
    sub: &str,
    roles: &[Role],
    ttl: Duration,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = Claims {
        sub: sub.to_owned(),
        roles: roles
            .iter()
            .map(|r| format!("{r:?}").to_lowercase())
            .collect(),
        exp: now + ttl.as_secs() as i64,
        iat: Some(now),
        iss: None,
        aud: None,
        events: None,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose().as_bytes()),
    )
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or(AuthError::Missing);
        let result = match token {
            Ok(t) => state.auth.verify(t).await,
            Err(e) => Err(e),
        };
        result.map_err(|e| {
            ApiError::problem(
                Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "Authentication is required",
                )
                .detail(e.to_string()),
            )
        })
    }
}

macro_rules! role_extractor {
    ($(#[$meta:meta])* $name:ident, $($role:expr),+) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        pub struct $name(pub Principal);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &AppState,
            ) -> Result<Self, ApiError> {
                let who = Principal::from_request_parts(parts, state).await?;
                who.require(&[$($role),+])?;
                Ok(Self(who))
            }
        }
    };
}

role_extractor!(
    /// A caller with the organizer role (or admin). Checked before the body is read, so a
    /// customer gets 403 whatever they send.
    Organizer,
    Role::Organizer
);
role_extractor!(
    /// A caller with the scanner role (or admin), for check-in at the door.
    Scanner,
    Role::Scanner
);

fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// For sharing one authenticator between app instances in tests.
pub type SharedAuthenticator = Arc<Authenticator>;
