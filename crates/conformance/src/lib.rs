//! One suite of store behaviours that every [`Store`] backend must pass.
//!
//! A backend crate runs the whole suite in its own tests with one line:
//!
//! ```text
//! boxoffice_conformance::store_suite!(crate_under_test::fresh_store);
//! ```
//!
//! where `fresh_store` is an `async fn() -> Harness` that builds an empty store of that kind
//! (a new SQLite file, a new PostgreSQL database). Each behaviour below becomes one
//! `#[tokio::test]`, so failures name the behaviour and the backend.

pub mod booking_suite;
pub mod feed;
pub mod fixtures;
pub mod payment_suite;
pub mod queue_suite;
pub mod resale_suite;
pub mod suite;
pub mod transfer_suite;

use std::sync::Arc;

use boxoffice_domain::feed::ChangeFeed;
use boxoffice_domain::ports::Store;

/// A store under test, and whatever must stay alive (and be cleaned up) with it.
pub struct Harness {
    pub store: Arc<dyn Store>,
    /// The same store, as the change feed search indexers follow.
    pub feed: Arc<dyn ChangeFeed>,
    pub guard: Box<dyn Send + Sync>,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("store", &self.store)
            .finish()
    }
}

/// Expands to one test per behaviour of the suite, each given a fresh store by `$factory`.
#[macro_export]
macro_rules! store_suite {
    ($factory:path) => {
        $crate::store_suite!(@tests $factory;
            created_event_reads_back_identically,
            seat_map_lists_every_seat_and_counts_sections,
            bulk_created_events_are_complete_and_open,
            bulk_creation_can_be_repeated,
            unknown_event_is_none,
            events_at_one_venue_share_it,
            stadium_sized_event_is_laid_out,
        );
        $crate::store_suite!(@booking $factory;
            holds_exact_seats_all_or_nothing,
            best_available_prefers_front_adjacent_seats,
            customer_limit_counts_holds_and_purchases,
            parallel_holds_cannot_beat_the_limit,
            parallel_holds_on_one_seat_have_one_winner,
            a_burst_of_holds_answers_each_as_alone,
            expired_holds_never_block_and_are_swept,
            bulk_created_events_lay_out_seats_on_first_hold,
            commit_is_idempotent_and_settles_once,
            parallel_commits_with_one_key_start_once,
            a_burst_of_commits_answers_each_as_alone,
            declines_return_the_hold_and_lapsed_approvals_retake_seats,
            approval_after_release_is_lapsed_when_seats_are_gone,
            release_and_cancel,
            details_and_check_in,
            check_in_is_bound_to_its_event,
        );
        $crate::store_suite!(@payments $factory;
            unresolved_payments_free_the_seats_but_stay_open,
            deferred_payments_wait_their_turn,
            a_reused_key_after_purge_is_refused,
            commits_are_judged_at_the_time_they_act,
            a_new_hold_never_ends_a_pending_booking,
            used_tickets_are_not_refunded,
            revocations_void_tickets_and_reopen_seats,
            booking_reads_are_one_snapshot,
            limit_exceeded_while_seats_are_taken_is_the_limit,
        );
        $crate::store_suite!(@resale $factory;
            listings_respect_the_cap_and_can_be_withdrawn,
            buying_a_listing_reissues_the_ticket_and_schedules_a_payout,
            a_lapsed_reservation_puts_the_listing_back,
            the_door_and_a_sale_never_both_win,
            cancelling_an_event_refunds_voids_and_claws_back,
            a_paying_buyer_keeps_the_listing_and_refunds_claw_back,
            organizer_reports_count_sales_and_resales,
        );
        $crate::store_suite!(@transfers $factory;
            offer_accept_reissues_the_ticket,
            cancelled_and_lapsed_transfers_cannot_be_accepted,
            the_door_and_an_accept_never_both_win,
            revocations_page_through_void_and_reissued_tickets,
        );
        $crate::store_suite!(@queue $factory;
            the_waiting_room_policy_reads_back,
            joining_twice_keeps_the_place,
            admission_goes_in_order_within_the_rate_and_the_free_seats,
            parallel_admission_rounds_never_exceed_the_allowance,
            a_lapsed_admission_queues_again_at_the_back,
            a_queued_payment_is_marked,
        );
        $crate::store_suite!(@feed_tests $factory;
            feed_reports_each_created_event_once,
            feed_snapshot_excludes_later_writes,
            feed_pages_through_the_whole_catalog,
            feed_cursor_of_another_database_is_not_used,
            feed_wait_wakes_on_a_change,
            feed_prunes_what_every_reader_applied,
            feed_forgets_silent_readers,
        );
    };
    (@booking $factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let harness = $factory().await;
                $crate::booking_suite::$name(harness.store.clone()).await;
                drop(harness);
            }
        )*
    };
    (@payments $factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let harness = $factory().await;
                $crate::payment_suite::$name(harness.store.clone()).await;
                drop(harness);
            }
        )*
    };
    (@resale $factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let harness = $factory().await;
                $crate::resale_suite::$name(harness.store.clone()).await;
                drop(harness);
            }
        )*
    };
    (@transfers $factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let harness = $factory().await;
                $crate::transfer_suite::$name(harness.store.clone()).await;
                drop(harness);
            }
        )*
    };
    (@queue $factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let harness = $factory().await;
                $crate::queue_suite::$name(harness.store.clone()).await;
                drop(harness);
            }
        )*
    };
    (@feed_tests $factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let harness = $factory().await;
                $crate::feed::$name(harness.store.clone(), harness.feed.clone()).await;
                drop(harness);
            }
        )*
    };
    (@tests $factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let harness = $factory().await;
                $crate::suite::$name(harness.store.clone()).await;
                drop(harness);
            }
        )*
    };
}
