//! The fake's books: PaymentIntents with their charge and refunds, and the rules that move
//! them, as Stripe applies them to manual-capture card payments. Plain data under one lock;
//! every operation is a function from a request to an HTTP status and a Stripe-shaped body.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// An answer: HTTP status and JSON body.
pub(crate) type Answer = (u16, Value);

#[derive(Debug, Clone)]
struct Charge {
    id: String,
    status: &'static str,
    captured: bool,
    amount_captured: i64,
    amount_refunded: i64,
}

#[derive(Debug, Clone)]
struct Intent {
    id: String,
    amount: i64,
    currency: String,
    status: &'static str,
    capture_method: String,
    payment_method: String,
    description: Option<String>,
    metadata: BTreeMap<String, String>,
    created: i64,
    created_at: Instant,
    charge: Option<Charge>,
    last_payment_error: Option<Value>,
    cancellation_reason: Option<&'static str>,
}

#[derive(Debug, Clone)]
struct Refund {
    id: String,
    amount: i64,
    charge: String,
    payment_intent: String,
    created: i64,
}

#[derive(Debug, Default)]
pub(crate) struct Ledger {
    intents: BTreeMap<String, Intent>,
    /// Ids in creation order.
    order: Vec<String>,
    refunds: Vec<Refund>,
    seq: u64,
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Stripe's error envelope.
pub(crate) fn error(status: u16, kind: &str, code: &str, message: &str) -> Answer {
    let mut e = json!({"type": kind, "message": message});
    if !code.is_empty() {
        e["code"] = json!(code);
    }
    (status, json!({ "error": e }))
}

fn invalid(code: &str, message: &str) -> Answer {
    error(400, "invalid_request_error", code, message)
}

/// Form parameters, as Stripe reads them (`metadata[k]=v` nests).
pub(crate) struct Params(pub Vec<(String, String)>);

impl Params {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn metadata(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .filter_map(|(k, v)| {
                let inner = k.strip_prefix("metadata[")?.strip_suffix(']')?;
                Some((inner.to_owned(), v.clone()))
            })
            .collect()
    }
}

enum Card {
    Approve,
    Decline {
        code: &'static str,
        decline_code: &'static str,
        message: &'static str,
    },
}

fn card(method: &str) -> Option<Card> {
    Some(match method {
        "pm_card_visa" | "pm_card_mastercard" | "pm_card_amex" => Card::Approve,
        "pm_card_chargeDeclined" => Card::Decline {
            code: "card_declined",
            decline_code: "generic_decline",
            message: "Your card was declined.",
        },
        "pm_card_insufficientFunds" | "pm_card_visa_chargeDeclinedInsufficientFunds" => {
            Card::Decline {
                code: "card_declined",
                decline_code: "insufficient_funds",
                message: "Your card has insufficient funds.",
            }
        }
        _ => return None,
    })
}

impl Ledger {
    fn next_id(&mut self, prefix: &str) -> String {
        self.seq += 1;
        // Unique across fakes too, so that a test can never confuse two of them.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        format!("{prefix}_fake{:06}{nanos:09}", self.seq)
    }

    pub(crate) fn create(&mut self, p: &Params) -> Answer {
        let Some(amount) = p.get("amount") else {
            return invalid("parameter_missing", "Missing required param: amount.");
        };
        let Ok(amount) = amount.parse::<i64>() else {
            return invalid("parameter_invalid_integer", "Invalid integer: amount");
        };
        if !(50..=99_999_999).contains(&amount) {
            return invalid(
                "amount_too_small",
                "Amount must be at least $0.50 usd and at most 99999999.",
            );
        }
        let currency = p.get("currency").unwrap_or_default();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
            return invalid(
                "parameter_invalid_string",
                &format!("Invalid currency: {currency}."),
            );
        }
        let confirm = p.get("confirm") == Some("true");
        let method = p.get("payment_method").unwrap_or_default().to_owned();
        if confirm && method.is_empty() {
            return invalid(
                "parameter_missing",
                "You must provide a payment_method to confirm this PaymentIntent.",
            );
        }
        let card = if confirm {
            match card(&method) {
                Some(c) => Some(c),
                None => {
                    return invalid(
                        "resource_missing",
                        &format!("No such PaymentMethod: '{method}'"),
                    );
                }
            }
        } else {
            None
        };
        let capture_method = p.get("capture_method").unwrap_or("automatic").to_owned();
        let id = self.next_id("pi");
        let mut pi = Intent {
            id: id.clone(),
            amount,
            currency: currency.to_owned(),
            status: "requires_confirmation",
            capture_method,
            payment_method: method,
            description: p.get("description").map(str::to_owned),
            metadata: p.metadata(),
            created: now_unix(),
            created_at: Instant::now(),
            charge: None,
            last_payment_error: None,
            cancellation_reason: None,
        };
        let mut declined = None;
        match card {
            None => {}
            Some(Card::Approve) => {
                let manual = pi.capture_method == "manual";
                pi.status = if manual {
                    "requires_capture"
                } else {
                    "succeeded"
                };
                pi.charge = Some(Charge {
                    id: self.next_id("ch"),
                    status: "succeeded",
                    captured: !manual,
                    amount_captured: if manual { 0 } else { amount },
                    amount_refunded: 0,
                });
            }
            Some(Card::Decline {
                code,
                decline_code,
                message,
            }) => {
                let charge = self.next_id("ch");
                pi.status = "requires_payment_method";
                let err = json!({
                    "type": "card_error", "code": code, "decline_code": decline_code,
                    "message": message, "charge": charge,
                    "doc_url": "https://stripe.com/docs/error-codes/card-declined"
                });
                pi.last_payment_error = Some(err.clone());
                pi.charge = Some(Charge {
                    id: charge,
                    status: "failed",
                    captured: false,
                    amount_captured: 0,
                    amount_refunded: 0,
                });
                declined = Some(err);
            }
        }
        self.order.push(id.clone());
        self.intents.insert(id.clone(), pi);
        let pi = self.render(&id, false);
        match declined {
            // Stripe answers a declined confirmation with 402 and the intent inside the error.
            Some(mut err) => {
                err["payment_intent"] = pi;
                (402, json!({ "error": err }))
            }
            None => (200, pi),
        }
    }

    fn unexpected_state(&self, id: &str, verb: &str, allowed: &str) -> Answer {
        let pi = &self.intents[id];
        let (status, mut body) = invalid(
            "payment_intent_unexpected_state",
            &format!(
                "This PaymentIntent could not be {verb} because it has a status of {}. Only a \
                 PaymentIntent with one of the following statuses may be {verb}: {allowed}.",
                pi.status
            ),
        );
        body["error"]["payment_intent"] = self.render(id, false);
        (status, body)
    }

    fn missing(id: &str) -> Answer {
        error(
            404,
            "invalid_request_error",
            "resource_missing",
            &format!("No such payment_intent: '{id}'"),
        )
    }

    pub(crate) fn capture(&mut self, id: &str, capture_fails: bool) -> Answer {
        let Some(pi) = self.intents.get_mut(id) else {
            return Self::missing(id);
        };
        if pi.status != "requires_capture" {
            return self.unexpected_state(id, "captured", "requires_capture");
        }
        if capture_fails {
            // What an expired authorization looks like: released, and the capture refused.
            pi.status = "canceled";
            pi.cancellation_reason = Some("automatic");
            let (status, mut body) = invalid(
                "charge_expired_for_capture",
                "The charge has expired and can no longer be captured: the authorization \
                 was released.",
            );
            body["error"]["payment_intent"] = self.render(id, false);
            return (status, body);
        }
        pi.status = "succeeded";
        if let Some(c) = pi.charge.as_mut() {
            c.captured = true;
            c.amount_captured = pi.amount;
        }
        (200, self.render(id, false))
    }

    pub(crate) fn cancel(&mut self, id: &str) -> Answer {
        let Some(pi) = self.intents.get_mut(id) else {
            return Self::missing(id);
        };
        match pi.status {
            "requires_payment_method"
            | "requires_capture"
            | "requires_confirmation"
            | "requires_action" => {
                pi.status = "canceled";
                pi.cancellation_reason = Some("requested_by_customer");
                (200, self.render(id, false))
            }
            _ => self.unexpected_state(
                id,
                "canceled",
                "requires_payment_method, requires_capture, requires_confirmation, \
                 requires_action, processing",
            ),
        }
    }

    pub(crate) fn refund(&mut self, p: &Params) -> Answer {
        let Some(id) = p.get("payment_intent").map(str::to_owned) else {
            return invalid(
                "parameter_missing",
                "One of the following params should be provided for this request: \
                 payment_intent or charge.",
            );
        };
        if !self.intents.contains_key(&id) {
            return Self::missing(&id);
        }
        let pi = &self.intents[&id];
        if pi.status != "succeeded" {
            return self.unexpected_state(&id, "refunded", "succeeded");
        }
        let charge = pi.charge.clone().expect("a succeeded intent has a charge");
        let left = charge.amount_captured - charge.amount_refunded;
        if left <= 0 {
            return invalid(
                "charge_already_refunded",
                &format!("Charge {} has already been refunded.", charge.id),
            );
        }
        let amount = match p.get("amount").map(str::parse::<i64>) {
            None => left,
            Some(Ok(a)) if a > 0 && a <= left => a,
            Some(Ok(a)) if a > left => {
                return invalid(
                    "amount_too_large",
                    &format!(
                        "Refund amount ({a}) is greater than unrefunded amount on charge ({left})"
                    ),
                );
            }
            Some(_) => return invalid("parameter_invalid_integer", "Invalid integer: amount"),
        };
        let refund = Refund {
            id: self.next_id("re"),
            amount,
            charge: charge.id.clone(),
            payment_intent: id.clone(),
            created: now_unix(),
        };
        if let Some(c) = self.intents.get_mut(&id).and_then(|pi| pi.charge.as_mut()) {
            c.amount_refunded += amount;
        }
        let body = render_refund(&refund, &self.intents[&id].currency);
        self.refunds.push(refund);
        (200, body)
    }

    pub(crate) fn retrieve(&self, id: &str, expand_charge: bool) -> Answer {
        if !self.intents.contains_key(id) {
            return Self::missing(id);
        }
        (200, self.render(id, expand_charge))
    }

    /// `metadata['key']:'value'`, the one query the adapter makes. PaymentIntents younger
    /// than `lag` are not in the index yet.
    pub(crate) fn search(
        &self,
        query: &str,
        limit: usize,
        expand_charge: bool,
        lag: Duration,
    ) -> Answer {
        let Some((key, value)) = parse_metadata_query(query) else {
            return invalid(
                "parameter_invalid_string",
                &format!("The fake supports only metadata['key']:'value' queries: {query}"),
            );
        };
        let data: Vec<Value> = self
            .order
            .iter()
            .rev()
            .map(|id| &self.intents[id])
            .filter(|pi| pi.created_at.elapsed() >= lag)
            .filter(|pi| pi.metadata.get(&key) == Some(&value))
            .take(limit.clamp(1, 100))
            .map(|pi| self.render(&pi.id, expand_charge))
            .collect();
        (
            200,
            json!({
                "object": "search_result", "url": "/v1/payment_intents/search",
                "has_more": false, "next_page": null, "data": data
            }),
        )
    }

    fn render(&self, id: &str, expand_charge: bool) -> Value {
        let pi = &self.intents[id];
        let captured = pi.charge.as_ref().map_or(0, |c| c.amount_captured);
        let latest_charge = match &pi.charge {
            None => Value::Null,
            Some(c) if expand_charge => render_charge(c, pi),
            Some(c) => json!(c.id),
        };
        json!({
            "id": pi.id,
            "object": "payment_intent",
            "amount": pi.amount,
            "amount_capturable": if pi.status == "requires_capture" { pi.amount } else { 0 },
            "amount_received": if pi.status == "succeeded" { captured } else { 0 },
            "cancellation_reason": pi.cancellation_reason,
            "capture_method": pi.capture_method,
            "confirmation_method": "automatic",
            "created": pi.created,
            "currency": pi.currency,
            "description": pi.description,
            "last_payment_error": pi.last_payment_error,
            "latest_charge": latest_charge,
            "livemode": false,
            "metadata": pi.metadata,
            "payment_method": pi.payment_method,
            "status": pi.status,
        })
    }

    /// Every PaymentIntent and refund, for tests to compare with their own books.
    pub(crate) fn report(&self) -> Value {
        let intents: Vec<Value> = self
            .order
            .iter()
            .map(|id| {
                let pi = &self.intents[id];
                let c = pi.charge.as_ref();
                json!({
                    "id": pi.id,
                    "status": pi.status,
                    "amount": pi.amount,
                    "amount_captured": c.map_or(0, |c| c.amount_captured),
                    "amount_refunded": c.map_or(0, |c| c.amount_refunded),
                    "currency": pi.currency,
                    "capture_method": pi.capture_method,
                    "payment_method": pi.payment_method,
                    "cancellation_reason": pi.cancellation_reason,
                    "metadata": pi.metadata,
                    "created": pi.created,
                })
            })
            .collect();
        let refunds: Vec<Value> = self
            .refunds
            .iter()
            .map(|r| render_refund(r, &self.intents[&r.payment_intent].currency))
            .collect();
        json!({"payment_intents": intents, "refunds": refunds})
    }
}

fn render_charge(c: &Charge, pi: &Intent) -> Value {
    json!({
        "id": c.id,
        "object": "charge",
        "amount": pi.amount,
        "amount_captured": c.amount_captured,
        "amount_refunded": c.amount_refunded,
        "captured": c.captured,
        "currency": pi.currency,
        "disputed": false,
        "paid": c.status == "succeeded",
        "payment_intent": pi.id,
        "refunded": c.amount_captured > 0 && c.amount_refunded >= c.amount_captured,
        "status": c.status,
    })
}

fn render_refund(r: &Refund, currency: &str) -> Value {
    json!({
        "id": r.id, "object": "refund", "amount": r.amount, "charge": r.charge,
        "created": r.created, "currency": currency, "payment_intent": r.payment_intent,
        "status": "succeeded"
    })
}

/// Reads `metadata['key']:'value'` (Stripe's query language escapes `'` and `\` with `\`).
fn parse_metadata_query(query: &str) -> Option<(String, String)> {
    let rest = query.trim().strip_prefix("metadata[")?;
    let (key, rest) = quoted(rest)?;
    let rest = rest.strip_prefix("]:")?;
    let (value, rest) = quoted(rest)?;
    rest.trim().is_empty().then_some((key, value))
}

/// A single- or double-quoted literal at the start of `s`, unescaped, and what follows it.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut chars = s.char_indices();
    let (_, q) = chars.next().filter(|(_, c)| *c == '\'' || *c == '"')?;
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?.1),
            c if c == q => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_queries_parse_with_escapes() {
        assert_eq!(
            parse_metadata_query(r"metadata['idempotency_key']:'it\'s'"),
            Some(("idempotency_key".into(), "it's".into()))
        );
        assert_eq!(parse_metadata_query("status:'succeeded'"), None);
        assert_eq!(parse_metadata_query("metadata['k']:'v' AND x"), None);
    }

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn a_manual_payment_moves_as_at_stripe() {
        let mut l = Ledger::default();
        let (s, pi) = l.create(&params(&[
            ("amount", "5000"),
            ("currency", "usd"),
            ("payment_method", "pm_card_visa"),
            ("confirm", "true"),
            ("capture_method", "manual"),
        ]));
        assert_eq!((s, pi["status"].as_str()), (200, Some("requires_capture")));
        let id = pi["id"].as_str().unwrap().to_owned();
        assert_eq!(l.refund(&params(&[("payment_intent", &id)])).0, 400);
        assert_eq!(l.capture(&id, false).1["status"], "succeeded");
        assert_eq!(
            l.capture(&id, false).1["error"]["code"],
            "payment_intent_unexpected_state"
        );
        assert_eq!(
            l.refund(&params(&[("payment_intent", &id)])).1["amount"],
            5000
        );
        assert_eq!(
            l.refund(&params(&[("payment_intent", &id)])).1["error"]["code"],
            "charge_already_refunded"
        );
        let (_, read) = l.retrieve(&id, true);
        assert_eq!(read["latest_charge"]["refunded"], true);
    }
}
