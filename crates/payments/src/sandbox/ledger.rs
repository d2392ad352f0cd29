//! The sandbox's books: one row per idempotency key, and the rules for moving a payment from
//! one state to the next. The rules are plain functions of a row, so both storage backends
//! apply exactly the same ones inside their own transactions.

use boxoffice_domain::payments::{Authorization, PaymentError, PaymentRequest, PaymentState};

use super::postgres::PgLedger;
use super::sqlite::SqliteLedger;

/// The storage behind a [`Sandbox`](super::Sandbox). An enum rather than a trait object: there
/// are exactly two, and both live in this crate.
#[derive(Debug)]
pub(crate) enum Ledger {
    Sqlite(SqliteLedger),
    Postgres(PgLedger),
}

impl Ledger {
    /// Records `fresh` unless a payment with its idempotency key exists already. Returns the
    /// row that is in the ledger afterwards and whether it is the one just inserted.
    pub(crate) async fn insert_or_get(
        &self,
        fresh: Record,
    ) -> Result<(Record, bool), PaymentError> {
        match self {
            Ledger::Sqlite(l) => l.insert_or_get(fresh).await,
            Ledger::Postgres(l) => l.insert_or_get(fresh).await,
        }
    }

    pub(crate) async fn by_key(&self, key: &str) -> Result<Option<Record>, PaymentError> {
        match self {
            Ledger::Sqlite(l) => l.by_key(key).await,
            Ledger::Postgres(l) => l.by_key(key).await,
        }
    }

    pub(crate) async fn by_ref(&self, provider_ref: &str) -> Result<Option<Record>, PaymentError> {
        match self {
            Ledger::Sqlite(l) => l.by_ref(provider_ref).await,
            Ledger::Postgres(l) => l.by_ref(provider_ref).await,
        }
    }

    /// Applies `op` to the payment named `provider_ref`: reads its row under a write lock,
    /// asks [`decide`], writes the change (if any) and commits, then answers with the
    /// decision's result.
    pub(crate) async fn apply(&self, provider_ref: &str, op: Op) -> Result<(), PaymentError> {
        match self {
            Ledger::Sqlite(l) => l.apply(provider_ref, op).await,
            Ledger::Postgres(l) => l.apply(provider_ref, op).await,
        }
    }
}

/// Where a payment stands in the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Authorized,
    Captured,
    Declined,
    Voided,
    Refunded,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Authorized => "authorized",
            Status::Captured => "captured",
            Status::Declined => "declined",
            Status::Voided => "voided",
            Status::Refunded => "refunded",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "authorized" => Status::Authorized,
            "captured" => Status::Captured,
            "declined" => Status::Declined,
            "voided" => Status::Voided,
            "refunded" => Status::Refunded,
            _ => return None,
        })
    }
}

/// One payment, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub key: String,
    pub provider_ref: String,
    pub amount_cents: i64,
    /// Upper-case ISO code, as [`boxoffice_domain::money::Currency`] prints it.
    pub currency: String,
    pub method: String,
    pub description: String,
    pub booking_ref: String,
    pub status: Status,
    pub decline_reason: Option<String>,
    /// How many more capture attempts fail before one succeeds (`pm_card_captureFails`);
    /// negative: every capture is refused (`pm_card_captureRefused`).
    pub capture_failures_left: i64,
}

impl Record {
    /// Whether `req` is the request this payment was created from. Like Stripe, the sandbox
    /// refuses to reuse an idempotency key for a different request.
    pub(crate) fn same_request(&self, req: &PaymentRequest) -> bool {
        self.key == req.idempotency_key
            && self.amount_cents == req.amount_cents
            && self.currency == req.currency.as_str()
            && self.method == req.method
            && self.description == req.description
            && self.booking_ref == req.booking_ref
    }

    /// The answer the first authorization gave, which every replay repeats.
    pub(crate) fn authorization(&self) -> Authorization {
        match self.status {
            Status::Declined => Authorization::Declined {
                reason: self.decline_reason.clone().unwrap_or_default(),
            },
            _ => Authorization::Approved {
                provider_ref: self.provider_ref.clone(),
            },
        }
    }

    pub(crate) fn state(&self) -> PaymentState {
        let provider_ref = self.provider_ref.clone();
        let amount_cents = self.amount_cents;
        match self.status {
            Status::Authorized => PaymentState::Authorized {
                provider_ref,
                amount_cents,
            },
            Status::Captured => PaymentState::Captured {
                provider_ref,
                amount_cents,
            },
            Status::Declined => PaymentState::Declined,
            Status::Voided => PaymentState::Voided { provider_ref },
            Status::Refunded => PaymentState::Refunded {
                provider_ref,
                amount_cents,
            },
        }
    }
}

/// A request to move a payment on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Capture,
    Void,
    /// Refunds are in full (as the port promises); the amount must match what was taken.
    Refund {
        amount_cents: i64,
    },
}

/// What to write back to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Change {
    pub status: Status,
    pub capture_failures_left: i64,
}

/// The outcome of [`decide`]: a change to commit (possibly none) and the answer to give
/// after committing it. Both are needed: a failed capture of `pm_card_captureFails` must
/// still commit that it used up its failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    pub change: Option<Change>,
    pub result: Result<(), PaymentError>,
}

impl Decision {
    fn ok(change: Option<Change>) -> Self {
        Self {
            change,
            result: Ok(()),
        }
    }

    fn reject(msg: String) -> Self {
        Self {
            change: None,
            result: Err(PaymentError::Rejected(msg)),
        }
    }
}

/// The state machine. Repeating an operation that already happened succeeds without a change
/// (that is what makes capture, void and refund idempotent); an operation the payment's state
/// does not allow is `Rejected`, as Stripe answers it with a 400.
pub(crate) fn decide(op: Op, rec: &Record) -> Decision {
    let id = &rec.provider_ref;
    let to = |status| {
        Some(Change {
            status,
            capture_failures_left: rec.capture_failures_left,
        })
    };
    match (op, rec.status) {
        (_, Status::Declined) => Decision::reject(format!("payment {id} was declined")),

        // `pm_card_captureRefused`: the authorization lapses before anyone captures it.
        (Op::Capture, Status::Authorized) if rec.capture_failures_left < 0 => Decision::reject(
            format!("the authorization of payment {id} has expired and cannot be captured"),
        ),
        (Op::Capture, Status::Authorized) if rec.capture_failures_left > 0 => Decision {
            change: Some(Change {
                status: Status::Authorized,
                capture_failures_left: rec.capture_failures_left - 1,
            }),
            result: Err(PaymentError::Unavailable(
                "sandbox: capture failed, try again (pm_card_captureFails)".into(),
            )),
        },
        (Op::Capture, Status::Authorized) => Decision::ok(to(Status::Captured)),
        (Op::Capture, Status::Captured) => Decision::ok(None),
        (Op::Capture, Status::Voided) => {
            Decision::reject(format!("payment {id} was voided and cannot be captured"))
        }
        (Op::Capture, Status::Refunded) => {
            Decision::reject(format!("payment {id} was refunded and cannot be captured"))
        }

        (Op::Void, Status::Authorized) => Decision::ok(to(Status::Voided)),
        (Op::Void, Status::Voided) => Decision::ok(None),
        (Op::Void, Status::Captured | Status::Refunded) => Decision::reject(format!(
            "payment {id} was captured and cannot be voided; refund it instead"
        )),

        (Op::Refund { amount_cents }, _) if amount_cents != rec.amount_cents => {
            Decision::reject(format!(
                "refund of {amount_cents} does not match the {} captured by payment {id}; \
                 the sandbox refunds in full only",
                rec.amount_cents
            ))
        }
        (Op::Refund { .. }, Status::Captured) => Decision::ok(to(Status::Refunded)),
        (Op::Refund { .. }, Status::Refunded) => Decision::ok(None),
        (Op::Refund { .. }, Status::Authorized) => Decision::reject(format!(
            "payment {id} was not captured and cannot be refunded; void it instead"
        )),
        (Op::Refund { .. }, Status::Voided) => {
            Decision::reject(format!("payment {id} was voided and cannot be refunded"))
        }
    }
}

/// Ledger failures are the PSP being unavailable: the caller cannot tell what happened and
/// reconciles later. Driver errors carry no credentials (the URL's password is never in them).
pub(crate) fn unavailable(what: &str, e: impl std::fmt::Display) -> PaymentError {
    PaymentError::Unavailable(format!("sandbox ledger: {what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: Status) -> Record {
        Record {
            key: "k".into(),
            provider_ref: "pi_sbx_1".into(),
            amount_cents: 500,
            currency: "USD".into(),
            method: "pm_card_visa".into(),
            description: "d".into(),
            booking_ref: "b".into(),
            status,
            decline_reason: None,
            capture_failures_left: 0,
        }
    }

    const ALL: [Status; 5] = [
        Status::Authorized,
        Status::Captured,
        Status::Declined,
        Status::Voided,
        Status::Refunded,
    ];

    #[test]
    fn status_names_round_trip() {
        for s in ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("pending"), None);
    }

    #[test]
    fn legal_moves_change_state_and_repeats_do_nothing() {
        let refund = Op::Refund { amount_cents: 500 };
        for (op, from, to) in [
            (Op::Capture, Status::Authorized, Some(Status::Captured)),
            (Op::Capture, Status::Captured, None),
            (Op::Void, Status::Authorized, Some(Status::Voided)),
            (Op::Void, Status::Voided, None),
            (refund, Status::Captured, Some(Status::Refunded)),
            (refund, Status::Refunded, None),
        ] {
            let d = decide(op, &record(from));
            assert_eq!(d.result, Ok(()), "{op:?} from {from:?}");
            assert_eq!(d.change.map(|c| c.status), to, "{op:?} from {from:?}");
        }
    }

    #[test]
    fn illegal_moves_are_rejected_without_change() {
        let refund = Op::Refund { amount_cents: 500 };
        for (op, from) in [
            (Op::Capture, Status::Voided),
            (Op::Capture, Status::Refunded),
            (Op::Capture, Status::Declined),
            (Op::Void, Status::Captured),
            (Op::Void, Status::Refunded),
            (Op::Void, Status::Declined),
            (refund, Status::Authorized),
            (refund, Status::Voided),
            (refund, Status::Declined),
            (Op::Refund { amount_cents: 499 }, Status::Captured),
            (Op::Refund { amount_cents: 501 }, Status::Refunded),
        ] {
            let d = decide(op, &record(from));
            assert!(
                matches!(d.result, Err(PaymentError::Rejected(_))),
                "{op:?} from {from:?}: {d:?}"
            );
            assert_eq!(d.change, None, "{op:?} from {from:?}");
        }
    }

    #[test]
    fn a_failing_capture_uses_up_its_failure_and_keeps_the_authorization() {
        let mut rec = record(Status::Authorized);
        rec.capture_failures_left = 1;
        let d = decide(Op::Capture, &rec);
        assert!(matches!(d.result, Err(PaymentError::Unavailable(_))));
        assert_eq!(
            d.change,
            Some(Change {
                status: Status::Authorized,
                capture_failures_left: 0
            })
        );
    }

    #[test]
    fn replays_repeat_the_first_answer() {
        let mut rec = record(Status::Refunded);
        assert_eq!(
            rec.authorization(),
            Authorization::Approved {
                provider_ref: "pi_sbx_1".into()
            }
        );
        rec.status = Status::Declined;
        rec.decline_reason = Some("Your card was declined.".into());
        assert_eq!(
            rec.authorization(),
            Authorization::Declined {
                reason: "Your card was declined.".into()
            }
        );
    }
}
