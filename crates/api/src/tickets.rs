//! Ticket tokens: compact JWTs signed with Ed25519, so that any scanner holding the public key
//! (served as a JWKS at `/.well-known/ticket-keys.json`) can tell a real ticket from a forged
//! one offline. Whether a real ticket is still valid (not void, not used) is what check-in
//! asks the server.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use boxoffice_domain::event::Event;
use boxoffice_domain::ids::{BookingId, EventId, SeatId, TicketId};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The fixed PKCS#8 v1 header of an Ed25519 private key; the 32-byte seed follows it.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// What a ticket token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketClaims {
    /// Ticket id.
    pub tid: TicketId,
    /// Event id.
    pub eid: EventId,
    /// Booking id.
    pub bid: BookingId,
    /// Seat id.
    pub seat: SeatId,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds): a while after the event starts (see [`TOKEN_LIFETIME_AFTER_START`]),
    /// so that a token is worthless once the event is over. Tokens issued before expiries
    /// existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
}

/// How long after its event starts a ticket token stays valid: long enough for late arrivals
/// and a long night, short enough that a leaked token is worthless after the event.
pub const TOKEN_LIFETIME_AFTER_START: time::Duration = time::Duration::days(1);

impl TicketClaims {
    /// The claims of a ticket for `seat` of `event`, issued at `now` in booking `booking`.
    pub fn new(
        ticket: TicketId,
        event: &Event,
        booking: BookingId,
        seat: SeatId,
        now: time::OffsetDateTime,
    ) -> Self {
        Self {
            tid: ticket,
            eid: event.id,
            bid: booking,
            seat,
            iat: now.unix_timestamp(),
            exp: Some((event.spec.starts_at + TOKEN_LIFETIME_AFTER_START).unix_timestamp()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TicketKeyError {
    #[error("the ticket signing key is not an Ed25519 PKCS#8 key")]
    Malformed,
}

/// Signs and verifies ticket tokens.
pub struct TicketSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    jwk: Jwk,
}

impl fmt::Debug for TicketSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl TicketSigner {
    /// A new random key, and its PEM (PKCS#8) for keeping.
    pub fn generate() -> (Self, String) {
        let mut seed = [0u8; 32];
        rand::rng().fill(&mut seed);
        let mut der = PKCS8_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&seed);
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(&der)
        );
        let signer = Self::from_der(&der).expect("a freshly made key is well formed");
        (signer, pem)
    }

    /// From a PKCS#8 PEM (as `openssl genpkey -algorithm ED25519` writes, or [`Self::generate`]).
    pub fn from_pem(pem: &str) -> Result<Self, TicketKeyError> {
        let body: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::trim)
            .collect();
        let der = STANDARD
            .decode(body)
            .map_err(|_| TicketKeyError::Malformed)?;
        Self::from_der(&der)
    }

    fn from_der(der: &[u8]) -> Result<Self, TicketKeyError> {
        if der.len() != 48 || der[..16] != PKCS8_ED25519_PREFIX {
            return Err(TicketKeyError::Malformed);
        }
        let encoding = EncodingKey::from_ed_der(der);
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::EdDSA)
            .map_err(|_| TicketKeyError::Malformed)?;
        let public = serde_json::to_vec(&jwk.algorithm).map_err(|_| TicketKeyError::Malformed)?;
        let kid: String = Sha256::digest(&public)[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        jwk.common.key_id = Some(kid.clone());
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| TicketKeyError::Malformed)?;
        Ok(Self {
            encoding,
            decoding,
            kid,
            jwk,
        })
    }

    pub fn sign(&self, claims: &TicketClaims) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        // Serialising these claims and signing with a valid key cannot fail.
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap_or_default()
    }

    /// The claims of a token this key signed; `None` for anything forged or malformed.
    pub fn verify(&self, token: &str) -> Option<TicketClaims> {
        let mut v = Validation::new(Algorithm::EdDSA);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        v.validate_aud = false;
        jsonwebtoken::decode::<TicketClaims>(token, &self.decoding, &v)
            .ok()
            .map(|d| d.claims)
    }

    /// Signs other claims with the same key (admission tokens), under a `typ` header that tells
    /// them apart from tickets.
    pub fn sign_typed<T: Serialize>(&self, typ: &str, claims: &T) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap_or_default()
    }

    /// The claims of a token signed by [`Self::sign_typed`] with this `typ` and not expired
    /// (`exp` is required); `None` for anything else.
    pub fn verify_typed<T: serde::de::DeserializeOwned>(
        &self,
        typ: &str,
        token: &str,
    ) -> Option<T> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.typ.as_deref() != Some(typ) {
            return None;
        }
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_required_spec_claims(&["exp"]);
        v.validate_aud = false;
        v.leeway = 0;
        jsonwebtoken::decode::<T>(token, &self.decoding, &v)
            .ok()
            .map(|d| d.claims)
    }

    /// The key id (derived from the public key).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key's parameters as JSON (`{"kty":"OKP","crv":"Ed25519","x":…}`): what
    /// nodes of one cluster compare to be sure they sign tickets with the same key.
    pub fn public_key(&self) -> String {
        serde_json::to_string(&self.jwk.algorithm).unwrap_or_default()
    }

    /// The public key, for scanners.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.jwk.clone()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> TicketClaims {
        TicketClaims {
            tid: TicketId::new(),
            eid: EventId::new(),
            bid: BookingId::new(),
            seat: SeatId::parse("1-A-1").unwrap(),
            iat: 1_700_000_000,
            exp: Some(1_700_086_400),
        }
    }

    #[test]
    fn round_trip_and_forgeries() {
        let (signer, pem) = TicketSigner::generate();
        let again = TicketSigner::from_pem(&pem).unwrap();
        let c = claims();
        let token = signer.sign(&c);
        assert_eq!(again.verify(&token), Some(c.clone()));
        let (other, _) = TicketSigner::generate();
        assert_eq!(other.verify(&token), None, "another key's signature");
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut forged = c.clone();
        forged.seat = SeatId::parse("1-A-2").unwrap();
        parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(signer.verify(&parts.join(".")), None, "altered claims");
        assert_eq!(signer.verify("garbage"), None);
        assert!(
            TicketSigner::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
                .is_err()
        );
    }

    #[test]
    fn accepts_openssl_keys() {
        let pem = include_str!("../tests/fixtures/ed25519-private.pem");
        let signer = TicketSigner::from_pem(pem).unwrap();
        let c = claims();
        assert_eq!(signer.verify(&signer.sign(&c)), Some(c));
        let jwks = serde_json::to_value(signer.jwks()).unwrap();
        assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
        assert!(
            jwks["keys"][0].get("d").is_none(),
            "no private part published"
        );
    }
    #[test]
    fn tokens_without_an_expiry_still_verify() {
        let (signer, _) = TicketSigner::generate();
        let mut c = claims();
        c.exp = None;
        let token = signer.sign(&c);
        let payload = token.split('.').nth(1).unwrap();
        let json: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert!(json.get("exp").is_none(), "{json}");
        assert_eq!(signer.verify(&token), Some(c));
    }
}
