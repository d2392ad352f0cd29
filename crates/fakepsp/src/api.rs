//! The HTTP surface: Stripe's routes with authentication, idempotency keys and faults, and
//! the control routes for tests.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::FakeState;
use crate::faults::{FaultState, Faults, Op, Plan};
use crate::ledger::{Answer, Ledger, Params, error};

/// A saved answer to an idempotent request.
#[derive(Debug, Clone)]
struct Saved {
    fingerprint: String,
    answer: Answer,
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct OpStats {
    received: u64,
    faulted: u64,
    in_flight: u64,
    committed: u64,
}

#[derive(Debug, Default)]
struct Books {
    ledger: Ledger,
    keys: HashMap<String, Saved>,
    running: HashSet<String>,
    stats: BTreeMap<Op, OpStats>,
}

#[derive(Debug, Default)]
pub(crate) struct Shared {
    books: Mutex<Books>,
    faults: Mutex<FaultState>,
}

impl Shared {
    pub(crate) fn set_faults(&self, faults: Faults) {
        *self.faults.lock().expect("faults") = FaultState::new(faults);
    }

    pub(crate) fn ledger_json(&self) -> Value {
        self.books.lock().expect("books").ledger.report()
    }

    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().expect("books")
    }

    fn stat(&self, op: Op, f: impl FnOnce(&mut OpStats)) {
        f(self.books().stats.entry(op).or_default());
    }
}

/// The fake's routes.
pub fn router(state: FakeState) -> Router {
    Router::new()
        .route("/v1/payment_intents", post(create))
        .route("/v1/payment_intents/search", get(search))
        .route("/v1/payment_intents/{id}", get(retrieve))
        .route("/v1/payment_intents/{id}/capture", post(capture))
        .route("/v1/payment_intents/{id}/cancel", post(cancel))
        .route("/v1/refunds", post(refund))
        .route("/__ledger", get(ledger))
        .route("/__faults", get(get_faults).post(set_faults))
        .route("/__stats", get(stats))
        .fallback(|| async {
            answer(error(
                404,
                "invalid_request_error",
                "",
                "Unrecognized request URL. The fake PSP serves only the routes boxoffice calls.",
            ))
        })
        .with_state(state)
}

fn answer((status, body): Answer) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(body)).into_response()
}

/// A response whose body fails before a byte of it is sent: the connection is torn down and
/// the caller sees a transport error, not an answer.
fn dropped() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("fake PSP dropped the response"))
    });
    Response::new(Body::from_stream(failing))
}

fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// A request to one of Stripe's routes, on its way through auth, faults and idempotency.
struct Call<'a> {
    state: &'a FakeState,
    op: Op,
    headers: &'a HeaderMap,
    /// For idempotency: what the request asks, independent of parameter order.
    fingerprint: String,
}

impl Call<'_> {
    /// Runs `apply` against the ledger with every fault and idempotency rule, and answers.
    async fn run<F>(self, apply: F) -> Response
    where
        F: FnOnce(&mut Ledger, &Faults) -> Answer + Send + 'static,
    {
        let shared = &self.state.inner;
        let op = self.op;
        let authorized = self
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|k| k.starts_with("sk_") || k.starts_with("rk_"));
        if !authorized {
            return answer(error(
                401,
                "invalid_request_error",
                "",
                "Invalid API Key provided.",
            ));
        }
        shared.stat(op, |s| s.received += 1);
        let (plan, config) = {
            let mut faults = shared.faults.lock().expect("faults");
            (faults.plan(op), faults.config.clone())
        };
        if plan.faulted() {
            shared.stat(op, |s| s.faulted += 1);
        }
        if plan.latency_ms > 0 && !plan.drop_response {
            // Slowness before the work; a dropped answer gets its latency after the work.
            if plan.down || plan.status429 || plan.status5xx {
                tokio::time::sleep(Duration::from_millis(plan.latency_ms)).await;
            }
        }
        if plan.down {
            return dropped();
        }
        if plan.status429 {
            return answer(error(
                429,
                "invalid_request_error",
                "rate_limit",
                "Too many requests hit the API too quickly. We recommend an exponential \
                 backoff of your requests.",
            ));
        }
        if plan.status5xx {
            return answer(error(
                500,
                "api_error",
                "",
                "Something went wrong on Stripe's end. (Injected by the fake PSP.)",
            ));
        }
        let key = self
            .headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .filter(|_| matches!(op, Op::Create | Op::Capture | Op::Cancel | Op::Refund))
            .map(str::to_owned);
        if let Some(key) = &key {
            match self.claim(key) {
                Claim::Run => {}
                Claim::Replay(replay) => return self.finish(plan, replay).await,
                Claim::Busy(busy) => return busy,
            }
        }
        // The work is done by a task of its own, so a caller that gives up (a timeout, a
        // process killed mid-request) does not stop it: a real PSP finishes what it started.
        let state = self.state.clone();
        let fingerprint = self.fingerprint.clone();
        let work = tokio::spawn(async move {
            let shared = &state.inner;
            shared.stat(op, |s| s.in_flight += 1);
            if plan.latency_ms > 0 && !plan.drop_response {
                tokio::time::sleep(Duration::from_millis(plan.latency_ms)).await;
            }
            let mut books = shared.books();
            let result = apply(&mut books.ledger, &config);
            let stats = books.stats.entry(op).or_default();
            stats.in_flight -= 1;
            stats.committed += 1;
            if let Some(key) = key {
                books.running.remove(&key);
                // Stripe keeps the answer of a request that ran, errors included, but not of
                // one refused before running (validation, 429, 5xx from the front door).
                books.keys.insert(
                    key,
                    Saved {
                        fingerprint,
                        answer: result.clone(),
                    },
                );
            }
            result
        });
        match work.await {
            Ok(result) => self.finish(plan, answer(result)).await,
            Err(_) => answer(error(500, "api_error", "", "The fake PSP failed.")),
        }
    }

    /// Replays the saved answer of `key`, refuses a key in use, or claims it for this call.
    fn claim(&self, key: &str) -> Claim {
        let mut books = self.state.inner.books();
        if let Some(saved) = books.keys.get(key) {
            if saved.fingerprint == self.fingerprint {
                let mut r = answer(saved.answer.clone());
                r.headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
                return Claim::Replay(r);
            }
            return Claim::Replay(answer(error(
                400,
                "idempotency_error",
                "",
                &format!(
                    "Keys for idempotent requests can only be used with the same parameters \
                     they were first used with. Try using a key other than '{key}' if you \
                     meant to execute a different request."
                ),
            )));
        }
        if !books.running.insert(key.to_owned()) {
            return Claim::Busy(answer(error(
                409,
                "idempotency_error",
                "idempotency_key_in_use",
                "There is currently another in-progress request using this Idempotent Key \
                 (that probably means you submitted twice, and the other request is still \
                 going through). Please try again later.",
            )));
        }
        Claim::Run
    }

    async fn finish(&self, plan: Plan, response: Response) -> Response {
        if plan.drop_response {
            if plan.latency_ms > 0 {
                tokio::time::sleep(Duration::from_millis(plan.latency_ms)).await;
            }
            return dropped();
        }
        response
    }
}

enum Claim {
    Run,
    Replay(Response),
    Busy(Response),
}

fn form(body: &Bytes) -> Params {
    Params(form_urlencoded::parse(body).into_owned().collect())
}

fn fingerprint(path: &str, params: &Params) -> String {
    let mut pairs = params.0.clone();
    pairs.sort();
    let mut out = path.to_owned();
    for (k, v) in pairs {
        out.push('\n');
        out.push_str(&k);
        out.push('=');
        out.push_str(&v);
    }
    out
}

async fn create(State(state): State<FakeState>, headers: HeaderMap, body: Bytes) -> Response {
    let params = form(&body);
    let call = Call {
        state: &state,
        op: Op::Create,
        headers: &headers,
        fingerprint: fingerprint("/v1/payment_intents", &params),
    };
    call.run(move |ledger, _| ledger.create(&params)).await
}

async fn capture(
    State(state): State<FakeState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = form(&body);
    let call = Call {
        state: &state,
        op: Op::Capture,
        headers: &headers,
        fingerprint: fingerprint(&format!("/v1/payment_intents/{id}/capture"), &params),
    };
    call.run(move |ledger, faults| ledger.capture(&id, faults.capture_fails))
        .await
}

async fn cancel(
    State(state): State<FakeState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = form(&body);
    let call = Call {
        state: &state,
        op: Op::Cancel,
        headers: &headers,
        fingerprint: fingerprint(&format!("/v1/payment_intents/{id}/cancel"), &params),
    };
    call.run(move |ledger, _| ledger.cancel(&id)).await
}

async fn refund(State(state): State<FakeState>, headers: HeaderMap, body: Bytes) -> Response {
    let params = form(&body);
    let call = Call {
        state: &state,
        op: Op::Refund,
        headers: &headers,
        fingerprint: fingerprint("/v1/refunds", &params),
    };
    call.run(move |ledger, _| ledger.refund(&params)).await
}

async fn retrieve(
    State(state): State<FakeState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let expand = query_pairs(query.as_deref())
        .iter()
        .any(|(k, v)| k == "expand[]" && v == "latest_charge");
    let call = Call {
        state: &state,
        op: Op::Retrieve,
        headers: &headers,
        fingerprint: String::new(),
    };
    call.run(move |ledger, _| ledger.retrieve(&id, expand))
        .await
}

async fn search(
    State(state): State<FakeState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let pairs = query_pairs(query.as_deref());
    let get = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let expand = pairs
        .iter()
        .any(|(k, v)| k == "expand[]" && v == "data.latest_charge");
    let limit = get("limit").and_then(|l| l.parse().ok()).unwrap_or(10);
    let Some(q) = get("query") else {
        return answer(error(
            400,
            "invalid_request_error",
            "parameter_missing",
            "Missing required param: query.",
        ));
    };
    let call = Call {
        state: &state,
        op: Op::Search,
        headers: &headers,
        fingerprint: String::new(),
    };
    call.run(move |ledger, faults| {
        ledger.search(
            &q,
            limit,
            expand,
            Duration::from_millis(faults.search_lag_ms),
        )
    })
    .await
}

async fn ledger(State(state): State<FakeState>) -> Json<Value> {
    Json(state.inner.ledger_json())
}

async fn get_faults(State(state): State<FakeState>) -> Json<Faults> {
    Json(state.inner.faults.lock().expect("faults").config.clone())
}

async fn set_faults(State(state): State<FakeState>, body: Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(faults) => {
            state.set_faults(faults.clone());
            Json(faults).into_response()
        }
        Err(e) => answer(error(
            400,
            "invalid_request_error",
            "invalid_faults",
            &format!("not a fault configuration: {e}"),
        )),
    }
}

async fn stats(State(state): State<FakeState>) -> Json<Value> {
    let books = state.inner.books();
    let mut out = serde_json::Map::new();
    for op in Op::ALL {
        let s = books.stats.get(&op).copied().unwrap_or_default();
        out.insert(op.as_str().to_owned(), json!(s));
    }
    Json(Value::Object(out))
}
