//! Fault injection: what the fake does wrong, set over HTTP (`POST /__faults`) while a test
//! runs. Every knob is off by default, and posting a new configuration replaces the old one
//! (`{}` heals everything).

use serde::{Deserialize, Serialize};

/// The API operations the fake serves, as fault filters and statistics name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Op {
    /// `POST /v1/payment_intents`
    Create,
    /// `POST /v1/payment_intents/{id}/capture`
    Capture,
    /// `POST /v1/payment_intents/{id}/cancel`
    Cancel,
    /// `POST /v1/refunds`
    Refund,
    /// `GET /v1/payment_intents/{id}`
    Retrieve,
    /// `GET /v1/payment_intents/search`
    Search,
}

impl Op {
    pub const ALL: [Op; 6] = [
        Op::Create,
        Op::Capture,
        Op::Cancel,
        Op::Refund,
        Op::Retrieve,
        Op::Search,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Capture => "capture",
            Op::Cancel => "cancel",
            Op::Refund => "refund",
            Op::Retrieve => "retrieve",
            Op::Search => "search",
        }
    }
}

/// How often a fault fires: `true`/`false`, a rate as a number in `[0, 1]`, or an object
/// `{"rate": 0.3}` / `{"count": 3}` (the next three matching requests) / both (each request
/// fires with the rate until `count` have fired).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Trigger {
    Always(bool),
    Rate(f64),
    Spec {
        #[serde(default)]
        rate: Option<f64>,
        #[serde(default)]
        count: Option<u64>,
    },
}

impl Trigger {
    /// Whether the fault fires for this request; consumes one of a count when it does.
    fn fire(&mut self, rng: &mut Rng) -> bool {
        match self {
            Trigger::Always(on) => *on,
            Trigger::Rate(rate) => rng.chance(*rate),
            Trigger::Spec { rate, count } => {
                if *count == Some(0) {
                    return false;
                }
                let fires = rate.is_none_or(|r| rng.chance(r));
                if fires && let Some(n) = count {
                    *n -= 1;
                }
                fires
            }
        }
    }
}

/// The fault configuration, as posted to `/__faults` (camelCase JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Faults {
    /// Delay before a matching request is processed. The request is processed to the end
    /// even if the caller gives up meanwhile, as at a real PSP.
    #[serde(default)]
    pub latency_ms: u64,
    /// Which requests `latencyMs` delays (default: all matching ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow: Option<Trigger>,
    /// Answer 500 `api_error` without doing anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status5xx: Option<Trigger>,
    /// Answer 429 `rate_limit` without doing anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status429: Option<Trigger>,
    /// Do the request, then drop the connection instead of answering: the caller cannot
    /// tell whether anything happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_response_after_commit: Option<Trigger>,
    /// Drop the connection without doing anything, as an unreachable PSP would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<Trigger>,
    /// Refuse every capture as Stripe does once an authorization has expired
    /// (`charge_expired_for_capture`); the PaymentIntent becomes `canceled`.
    #[serde(default)]
    pub capture_fails: bool,
    /// How long a new PaymentIntent stays invisible to the Search API (Stripe's search index
    /// is eventually consistent; it documents under a minute). Retrieve by id never lags.
    #[serde(default)]
    pub search_lag_ms: u64,
    /// The operations the faults above apply to (default: all). `captureFails` and
    /// `searchLagMs` apply to their own operation whatever this says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops: Option<Vec<Op>>,
    /// Seed of the random rates, for repeatable runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// What to do wrong with one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    pub latency_ms: u64,
    pub down: bool,
    pub status5xx: bool,
    pub status429: bool,
    pub drop_response: bool,
}

impl Plan {
    pub(crate) fn faulted(&self) -> bool {
        self.down || self.status5xx || self.status429 || self.drop_response
    }
}

/// The live configuration with its random source.
#[derive(Debug)]
pub(crate) struct FaultState {
    pub config: Faults,
    rng: Rng,
}

impl Default for FaultState {
    fn default() -> Self {
        Self::new(Faults::default())
    }
}

impl FaultState {
    pub(crate) fn new(config: Faults) -> Self {
        let rng = Rng::new(config.seed.unwrap_or(0x9e37_79b9_7f4a_7c15));
        Self { config, rng }
    }

    /// Decides the faults of one request to `op`.
    pub(crate) fn plan(&mut self, op: Op) -> Plan {
        let applies = self.config.ops.as_ref().is_none_or(|ops| ops.contains(&op));
        if !applies {
            return Plan::default();
        }
        let rng = &mut self.rng;
        let mut fire = |t: &mut Option<Trigger>| t.as_mut().is_some_and(|t| t.fire(rng));
        let c = &mut self.config;
        let down = fire(&mut c.down);
        let status429 = !down && fire(&mut c.status429);
        let status5xx = !down && !status429 && fire(&mut c.status5xx);
        let drop_response =
            !down && !status429 && !status5xx && fire(&mut c.drop_response_after_commit);
        let slow = c.latency_ms > 0 && (c.slow.is_none() || fire(&mut c.slow));
        Plan {
            latency_ms: if slow { c.latency_ms } else { 0 },
            down,
            status5xx,
            status429,
            drop_response,
        }
    }
}

/// xorshift64*: small, seedable, good enough to pick which requests fail.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn chance(&mut self, rate: f64) -> bool {
        if rate >= 1.0 {
            return true;
        }
        if rate.is_nan() || rate <= 0.0 {
            return false;
        }
        // 53 random bits as a fraction in [0, 1).
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(json: &str) -> FaultState {
        FaultState::new(serde_json::from_str(json).expect("faults"))
    }

    #[test]
    fn counts_fire_exactly_that_often() {
        let mut f = faults(r#"{"status5xx": {"count": 3}}"#);
        let fired = (0..10).filter(|_| f.plan(Op::Create).status5xx).count();
        assert_eq!(fired, 3);
    }

    #[test]
    fn rates_fire_about_that_often_and_repeat_with_the_seed() {
        let run = || {
            let mut f = faults(r#"{"status429": 0.3, "seed": 42}"#);
            (0..1000)
                .map(|_| f.plan(Op::Capture).status429)
                .collect::<Vec<_>>()
        };
        let a = run();
        let n = a.iter().filter(|x| **x).count();
        assert!((220..380).contains(&n), "{n}");
        assert_eq!(a, run());
    }

    #[test]
    fn ops_filter_which_requests_suffer() {
        let mut f = faults(r#"{"down": true, "latencyMs": 50, "ops": ["capture"]}"#);
        assert_eq!(f.plan(Op::Create), Plan::default());
        let p = f.plan(Op::Capture);
        assert!(p.down && p.latency_ms == 50);
    }

    #[test]
    fn one_fault_per_request_and_unknown_knobs_refused() {
        let mut f = faults(r#"{"down": true, "status5xx": true, "status429": true}"#);
        let p = f.plan(Op::Refund);
        assert!(p.down && !p.status5xx && !p.status429);
        assert!(serde_json::from_str::<Faults>(r#"{"latency": 5}"#).is_err());
    }
}
