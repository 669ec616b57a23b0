//! The run state machine: claim, settle, retry, re-enqueue.
//!
//! A run is `queued` until an attempt succeeds (`delivered`) or the last
//! attempt fails (`failed`). The Queue is at-least-once and the alarm may
//! re-enqueue a run whose message looks lost, so several messages for one run
//! can exist at once. Two rules make that harmless:
//!
//! - **A consumer must [`claim`] a run before sending it.** A claim takes a
//!   lease; while the lease runs no other claim succeeds, and a finished run is
//!   never claimed again.
//! - **Only the attempt that holds the claim may [`settle`] it.** A late or
//!   duplicate report is [`Settlement::Stale`] and changes nothing, so a run is
//!   never marked twice.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// Longest delay between two attempts.
pub const MAX_RETRY_DELAY_SECONDS: u32 = 3600;
/// A lease outlasts the dispatch timeout by this much, so a slow but live
/// consumer is not overtaken.
pub const LEASE_MARGIN_SECONDS: i64 = 15;
/// A queued run whose message should have been consumed this long ago is
/// presumed lost and re-enqueued by the alarm.
pub const REENQUEUE_GRACE_SECONDS: i64 = 20;
/// The longest wait between two re-sends of one unclaimed run.
pub const MAX_RESEND_SPACING_SECONDS: i64 = 600;
/// A queued run whose message is this late is sent by the next consumer that
/// claims runs of its trigger ([`claimable_ahead`]), long before the alarm
/// would re-send it. A healthy queue hands a message over well within this,
/// so while the queue keeps up no run is claimed ahead of its message.
pub const CLAIM_AHEAD_AFTER_SECONDS: i64 = 2;

/// A run's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for (another) attempt.
    Queued,
    /// An attempt got a 2xx, or the trigger has no target.
    Delivered,
    /// Every attempt failed.
    Failed,
    /// Its route is paused: kept, not attempted, until the route resumes.
    Held,
}

impl RunStatus {
    /// The snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Delivered => "delivered",
            RunStatus::Failed => "failed",
            RunStatus::Held => "held",
        }
    }

    /// Parses [`Self::as_str`].
    pub fn parse(s: &str) -> Option<RunStatus> {
        match s {
            "queued" => Some(RunStatus::Queued),
            "delivered" => Some(RunStatus::Delivered),
            "failed" => Some(RunStatus::Failed),
            "held" => Some(RunStatus::Held),
            _ => None,
        }
    }

    /// Whether nothing more will happen to the run.
    pub fn is_final(self) -> bool {
        matches!(self, RunStatus::Delivered | RunStatus::Failed)
    }
}

/// The part of a run the state machine needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunState {
    /// Current status.
    pub status: RunStatus,
    /// Attempts claimed so far.
    pub attempts: u32,
    /// While set and in the future, an attempt is in flight.
    pub lease_until: Option<Timestamp>,
    /// The earliest time of the next attempt.
    pub next_attempt_at: Timestamp,
    /// Messages re-sent by the alarm since the run was last claimed.
    pub resends: u32,
    /// Not re-sent again before this time (the last re-send's spacing).
    pub resend_after: Option<Timestamp>,
}

impl RunState {
    /// A fresh run, due at once.
    pub fn new(now: Timestamp) -> Self {
        RunState {
            status: RunStatus::Queued,
            attempts: 0,
            lease_until: None,
            next_attempt_at: now,
            resends: 0,
            resend_after: None,
        }
    }
}

/// How many attempts and how far apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before the run fails.
    pub max_attempts: u32,
    /// Delay after the first failure; it doubles after each further one.
    pub base_delay_seconds: u32,
}

impl RetryPolicy {
    /// The delay after failed attempt number `attempt` (1-based).
    pub fn delay_after(&self, attempt: u32) -> u32 {
        let exp = attempt.saturating_sub(1).min(31);
        let delay = u64::from(self.base_delay_seconds) << exp;
        delay.min(u64::from(MAX_RETRY_DELAY_SECONDS)) as u32
    }
}

/// The answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Send it now as attempt number `attempt`; the lease lasts until `lease_until`.
    Dispatch {
        /// 1-based attempt number.
        attempt: u32,
        /// The lease's end.
        lease_until: Timestamp,
    },
    /// The run is final: drop the message.
    Done,
    /// Another attempt holds the lease: drop the message (the holder reports,
    /// or the alarm re-enqueues if it dies).
    InFlight,
    /// Too early (a retry delay is running): try again at `at`.
    NotYet {
        /// When the run becomes due.
        at: Timestamp,
    },
    /// The run is held (its route is paused): drop the message; resuming
    /// the route sends a new one.
    Held,
    /// Every attempt was claimed and the last one's lease ended with no
    /// report (the consumer died while sending, perhaps because of this very
    /// run): fail it with [`exhaust`] and dead-letter it, rather than grant
    /// attempts beyond the policy forever.
    Exhausted,
}

/// Claims a run for one attempt; on [`Claim::Dispatch`], apply it with
/// [`apply_claim`].
pub fn claim(state: &RunState, now: Timestamp, lease_seconds: i64, max_attempts: u32) -> Claim {
    if state.status.is_final() {
        return Claim::Done;
    }
    if state.status == RunStatus::Held {
        return Claim::Held;
    }
    if state.lease_until.is_some_and(|l| l > now) {
        return Claim::InFlight;
    }
    if state.attempts >= max_attempts {
        return Claim::Exhausted;
    }
    if state.next_attempt_at > now {
        return Claim::NotYet {
            at: state.next_attempt_at,
        };
    }
    Claim::Dispatch {
        attempt: state.attempts + 1,
        lease_until: now.plus_secs(lease_seconds),
    }
}

/// The state after a successful claim.
///
/// A claim proves the queue delivered a message, so the re-send backoff
/// starts over.
pub fn apply_claim(state: &RunState, attempt: u32, lease_until: Timestamp) -> RunState {
    RunState {
        attempts: attempt,
        lease_until: Some(lease_until),
        resends: 0,
        resend_after: None,
        ..*state
    }
}

/// The state of a run failed by [`Claim::Exhausted`].
pub fn exhaust(state: &RunState) -> RunState {
    RunState {
        status: RunStatus::Failed,
        lease_until: None,
        resends: 0,
        resend_after: None,
        ..*state
    }
}

/// The state of a run whose route paused: kept, with no attempt in flight
/// and no alarm, until [`release`].
pub fn hold(state: &RunState) -> RunState {
    RunState {
        status: RunStatus::Held,
        lease_until: None,
        resends: 0,
        resend_after: None,
        ..*state
    }
}

/// The state of a held run when its route resumes: due at `now`, with its
/// attempts so far still counted.
pub fn release(state: &RunState, now: Timestamp) -> RunState {
    if state.status != RunStatus::Held {
        return *state;
    }
    RunState {
        status: RunStatus::Queued,
        lease_until: None,
        next_attempt_at: now,
        resends: 0,
        resend_after: None,
        ..*state
    }
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptOutcome {
    /// The target's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Why it failed, if it did (no secrets, no bodies).
    pub error: Option<String>,
}

impl AttemptOutcome {
    /// Whether the attempt succeeded: a 2xx answer.
    pub fn is_success(&self) -> bool {
        matches!(self.status, Some(s) if (200..300).contains(&s))
    }

    /// A short description for `last_error`.
    pub fn describe(&self) -> Option<String> {
        if self.is_success() {
            return None;
        }
        Some(match (&self.error, self.status) {
            (Some(e), _) => e.clone(),
            (None, Some(s)) => format!("target answered HTTP {s}"),
            (None, None) => "no answer from target".to_string(),
        })
    }
}

/// What a report does to a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Mark delivered.
    Delivered,
    /// Mark the failure and try again at `at`.
    Retry {
        /// When the next attempt is due.
        at: Timestamp,
        /// The delay, for the queue message.
        delay_seconds: u32,
    },
    /// Mark failed and dead-letter.
    Failed,
    /// Not the current attempt, or already final: change nothing.
    Stale,
}

/// Settles attempt `attempt` with `outcome`.
pub fn settle(
    state: &RunState,
    attempt: u32,
    outcome: &AttemptOutcome,
    now: Timestamp,
    policy: RetryPolicy,
) -> Settlement {
    if state.status != RunStatus::Queued || attempt != state.attempts || state.lease_until.is_none()
    {
        return Settlement::Stale;
    }
    if outcome.is_success() {
        return Settlement::Delivered;
    }
    if attempt >= policy.max_attempts {
        return Settlement::Failed;
    }
    let delay = policy.delay_after(attempt);
    Settlement::Retry {
        at: now.plus_secs(i64::from(delay)),
        delay_seconds: delay,
    }
}

/// The state after a settlement (unchanged for [`Settlement::Stale`]). A
/// report, like a claim, proves a consumer is alive: the re-send spacing
/// starts over.
pub fn apply_settlement(state: &RunState, settlement: Settlement) -> RunState {
    if settlement == Settlement::Stale {
        return *state;
    }
    let state = &RunState {
        resends: 0,
        resend_after: None,
        ..*state
    };
    match settlement {
        Settlement::Delivered => RunState {
            status: RunStatus::Delivered,
            lease_until: None,
            ..*state
        },
        Settlement::Failed => RunState {
            status: RunStatus::Failed,
            lease_until: None,
            ..*state
        },
        Settlement::Retry { at, .. } => RunState {
            lease_until: None,
            next_attempt_at: at,
            ..*state
        },
        Settlement::Stale => *state,
    }
}

/// When the alarm should look at a run again: for an attempt in flight, when
/// its lease ends (the lease already outlasts the timeout, so an unreported
/// attempt is dead by then); otherwise [`REENQUEUE_GRACE_SECONDS`] after it
/// became due, by which time a healthy queue has delivered its message. In
/// both cases never before the spacing of its last re-send has passed. `None` for a
/// final run.
pub fn recheck_at(state: &RunState) -> Option<Timestamp> {
    if state.status != RunStatus::Queued {
        return None;
    }
    let due = match state.lease_until {
        Some(lease) => lease,
        None => state.next_attempt_at.plus_secs(REENQUEUE_GRACE_SECONDS),
    };
    Some(state.resend_after.map_or(due, |after| due.max(after)))
}

/// The wait after the `n`th re-send (0-based) of an unclaimed run before
/// the next: the grace, doubling, capped at [`MAX_RESEND_SPACING_SECONDS`].
/// During a consumer outage a run is re-sent about
/// [`max_resends_within`]`(duration)` times, not once per alarm.
pub fn resend_spacing_seconds(n: u32) -> i64 {
    let doubled = REENQUEUE_GRACE_SECONDS.saturating_mul(1i64 << n.min(20));
    doubled.min(MAX_RESEND_SPACING_SECONDS)
}

/// The state after the alarm re-sent a run's message at `now`.
pub fn apply_resend(state: &RunState, now: Timestamp) -> RunState {
    RunState {
        resends: state.resends.saturating_add(1),
        resend_after: Some(now.plus_secs(resend_spacing_seconds(state.resends))),
        ..*state
    }
}

/// The most re-sends one run can get within `seconds` of becoming due while
/// no consumer claims it: the bound the alarm keeps during an outage.
pub fn max_resends_within(seconds: i64) -> u32 {
    let mut t = REENQUEUE_GRACE_SECONDS;
    let mut n = 0;
    while t <= seconds {
        t += resend_spacing_seconds(n);
        n += 1;
    }
    n
}

/// The state after the consumer gave back `attempt` without starting it
/// (its send slots stayed busy past what the lease allows): queued and idle
/// again, with the attempt count it had before the claim, so the attempt is
/// neither counted nor shown. `None` when that attempt no longer holds the
/// run: the give-back is stale and changes nothing.
pub fn give_back(state: &RunState, attempt: u32) -> Option<RunState> {
    (state.status == RunStatus::Queued && state.attempts == attempt && state.lease_until.is_some())
        .then(|| RunState {
            attempts: attempt.saturating_sub(1),
            lease_until: None,
            ..*state
        })
}

/// Whether a consumer that claims other runs of the trigger at `now` should
/// take this one too: it is queued, no attempt of it is in flight or was
/// ever left unreported (no lease), and it became due at least
/// [`CLAIM_AHEAD_AFTER_SECONDS`] ago, so its message is late: the queue is
/// behind, or the message was lost. Its own message, when it comes, finds
/// the run leased or final and is dropped, as any duplicate is.
pub fn claimable_ahead(state: &RunState, now: Timestamp) -> bool {
    state.status == RunStatus::Queued
        && state.lease_until.is_none()
        && state.next_attempt_at <= now.minus_secs(CLAIM_AHEAD_AFTER_SECONDS)
}

/// Whether the alarm should re-enqueue a run at `now`: its message looks lost
/// or its attempt died.
pub fn needs_reenqueue(state: &RunState, now: Timestamp) -> bool {
    recheck_at(state).is_some_and(|at| now >= at)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        base_delay_seconds: 10,
    };
    const T0: Timestamp = Timestamp(1_000_000);

    fn ok() -> AttemptOutcome {
        AttemptOutcome {
            status: Some(204),
            error: None,
        }
    }
    fn err500() -> AttemptOutcome {
        AttemptOutcome {
            status: Some(500),
            error: None,
        }
    }

    fn claimed(state: &RunState, now: Timestamp) -> (RunState, u32) {
        match claim(state, now, 45, POLICY.max_attempts) {
            Claim::Dispatch {
                attempt,
                lease_until,
            } => (apply_claim(state, attempt, lease_until), attempt),
            other => panic!("expected dispatch, got {other:?}"),
        }
    }

    #[test]
    fn success_on_first_attempt() {
        let s = RunState::new(T0);
        let (s, a) = claimed(&s, T0);
        assert_eq!(a, 1);
        assert_eq!(
            claim(&s, T0, 45, POLICY.max_attempts),
            Claim::InFlight,
            "a second message finds the lease"
        );
        let st = settle(&s, a, &ok(), T0, POLICY);
        assert_eq!(st, Settlement::Delivered);
        let s = apply_settlement(&s, st);
        assert_eq!(s.status, RunStatus::Delivered);
        assert_eq!(
            claim(&s, T0.plus_secs(999), 45, POLICY.max_attempts),
            Claim::Done,
            "never sent again"
        );
        assert_eq!(
            settle(&s, a, &ok(), T0, POLICY),
            Settlement::Stale,
            "never marked twice"
        );
    }

    #[test]
    fn retries_with_backoff_then_fails() {
        let mut s = RunState::new(T0);
        let mut now = T0;
        let mut delays = Vec::new();
        loop {
            let (c, a) = claimed(&s, now);
            let st = settle(&c, a, &err500(), now, POLICY);
            s = apply_settlement(&c, st);
            match st {
                Settlement::Retry { at, delay_seconds } => {
                    delays.push(delay_seconds);
                    assert!(matches!(
                        claim(&s, now, 45, POLICY.max_attempts),
                        Claim::NotYet { .. }
                    ));
                    now = at;
                }
                Settlement::Failed => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(delays, vec![10, 20]);
        assert_eq!(s.status, RunStatus::Failed);
        assert_eq!(s.attempts, 3);
    }

    #[test]
    fn stale_reports_change_nothing() {
        let s = RunState::new(T0);
        let (s1, a1) = claimed(&s, T0);
        // The lease expires and another consumer claims attempt 2.
        let later = T0.plus_secs(100);
        let (s2, a2) = claimed(&s1, later);
        assert_eq!(a2, 2);
        assert_eq!(settle(&s2, a1, &ok(), later, POLICY), Settlement::Stale);
        assert_eq!(settle(&s2, a2, &ok(), later, POLICY), Settlement::Delivered);
    }

    #[test]
    fn attempts_that_never_report_end_in_failure() {
        // The consumer dies during every attempt: each lease just ends.
        let mut s = RunState::new(T0);
        let mut now = T0;
        for expected in 1..=POLICY.max_attempts {
            let (c, a) = claimed(&s, now);
            assert_eq!(a, expected);
            s = c;
            now = now.plus_secs(46);
        }
        assert_eq!(
            claim(&s, now, 45, POLICY.max_attempts),
            Claim::Exhausted,
            "no attempt beyond the policy"
        );
        let failed = exhaust(&s);
        assert_eq!(failed.status, RunStatus::Failed);
        assert_eq!(failed.attempts, POLICY.max_attempts);
        assert_eq!(claim(&failed, now, 45, POLICY.max_attempts), Claim::Done);
    }

    #[test]
    fn a_held_run_is_not_attempted_nor_rechecked_until_released() {
        let s = RunState::new(T0);
        let (leased, a) = claimed(&s, T0);
        // The route pauses while attempt 1 is in flight; it fails.
        let st = settle(&leased, a, &err500(), T0, POLICY);
        let retry = apply_settlement(&leased, st);
        let held = hold(&retry);
        assert_eq!(held.status, RunStatus::Held);
        assert!(!held.status.is_final());
        assert_eq!(claim(&held, T0.plus_secs(999), 45, 3), Claim::Held);
        assert_eq!(recheck_at(&held), None, "no alarm for a held run");
        assert_eq!(settle(&held, a, &ok(), T0, POLICY), Settlement::Stale);
        let later = T0.plus_secs(5000);
        let released = release(&held, later);
        assert_eq!(released.status, RunStatus::Queued);
        assert_eq!(released.attempts, 1, "attempts so far still count");
        let (_, a2) = claimed(&released, later);
        assert_eq!(a2, 2);
        assert_eq!(release(&RunState::new(T0), later), RunState::new(T0));
    }

    #[test]
    fn delay_is_capped() {
        let p = RetryPolicy {
            max_attempts: 50,
            base_delay_seconds: 600,
        };
        assert_eq!(p.delay_after(1), 600);
        assert_eq!(p.delay_after(2), 1200);
        assert_eq!(p.delay_after(10), MAX_RETRY_DELAY_SECONDS);
        assert_eq!(p.delay_after(40), MAX_RETRY_DELAY_SECONDS);
    }

    /// An hour of consumer outage, with an alarm that fires every second
    /// (the worst case: other runs keep it busy): the run is re-sent only
    /// when its spacing allows, and the total stays within the stated bound.
    #[test]
    fn an_hour_of_outage_resends_a_run_a_bounded_number_of_times() {
        let mut s = RunState::new(T0);
        let mut sent = 1; // the first send, at ingest
        let mut times = Vec::new();
        for sec in 0..=3600 {
            let now = T0.plus_secs(sec);
            if needs_reenqueue(&s, now) {
                s = apply_resend(&s, now);
                sent += 1;
                times.push(sec);
            }
        }
        assert_eq!(
            times,
            vec![20, 40, 80, 160, 320, 640, 1240, 1840, 2440, 3040]
        );
        assert_eq!(sent, 11, "at most 11 messages per run in an hour of outage");
        assert_eq!(max_resends_within(3600), 10);
        // Later, one re-send every MAX_RESEND_SPACING_SECONDS.
        assert_eq!(max_resends_within(7200) - max_resends_within(3600), 6);

        // Once a consumer claims the run, the spacing starts over.
        let (claimed_state, _) = claimed(&s, T0.plus_secs(3601));
        assert_eq!(claimed_state.resends, 0);
        assert_eq!(claimed_state.resend_after, None);
    }

    #[test]
    fn reenqueue_only_when_the_message_looks_lost() {
        let s = RunState::new(T0);
        assert!(!needs_reenqueue(&s, T0));
        assert!(!needs_reenqueue(
            &s,
            T0.plus_secs(REENQUEUE_GRACE_SECONDS - 1)
        ));
        assert!(needs_reenqueue(&s, T0.plus_secs(REENQUEUE_GRACE_SECONDS)));
        let (leased, _) = claimed(&s, T0);
        assert!(!needs_reenqueue(&leased, T0.plus_secs(44)), "in flight");
        assert!(
            needs_reenqueue(&leased, T0.plus_secs(45 + REENQUEUE_GRACE_SECONDS)),
            "holder died"
        );
        let done = apply_settlement(&leased, Settlement::Delivered);
        assert!(!needs_reenqueue(&done, T0.plus_secs(10_000)));
        assert_eq!(recheck_at(&done), None);
    }

    #[test]
    fn an_attempt_given_back_unstarted_leaves_no_trace() {
        let s = RunState::new(T0);
        let (leased, attempt) = claimed(&s, T0);
        let back = give_back(&leased, attempt).expect("the holder gives it back");
        assert_eq!(back.attempts, s.attempts, "not counted");
        assert_eq!(back.lease_until, None, "claimable again at once");
        assert_eq!(back.next_attempt_at, s.next_attempt_at);
        let (again, next) = claimed(&back, T0.plus_secs(1));
        assert_eq!(next, attempt, "the next claim makes the same attempt");
        // Only the attempt that holds the run may give it back.
        assert_eq!(give_back(&again, attempt + 1), None);
        assert_eq!(give_back(&back, attempt), None, "twice");
        let done = apply_settlement(&again, Settlement::Delivered);
        assert_eq!(give_back(&done, next), None);
    }

    #[test]
    fn only_a_late_idle_queued_run_is_claimed_ahead() {
        let late = T0.plus_secs(CLAIM_AHEAD_AFTER_SECONDS);
        let s = RunState::new(T0);
        assert!(!claimable_ahead(&s, T0), "its message is not late yet");
        assert!(!claimable_ahead(&s, late.plus_millis(-1)));
        assert!(claimable_ahead(&s, late));
        // Long before the alarm would re-send it.
        assert!(!needs_reenqueue(&s, late));

        let (leased, attempt) = claimed(&s, T0);
        assert!(
            !claimable_ahead(&leased, T0.plus_secs(3600)),
            "an attempt in flight (or dead) is the alarm's, by its lease"
        );
        // A retry is claimed ahead once its own time is late, not before.
        let retry = settle(&leased, attempt, &err500(), T0.plus_secs(1), POLICY);
        let Settlement::Retry { at, .. } = retry else {
            panic!("expected a retry, got {retry:?}");
        };
        let waiting = apply_settlement(&leased, retry);
        assert!(!claimable_ahead(&waiting, at));
        assert!(claimable_ahead(
            &waiting,
            at.plus_secs(CLAIM_AHEAD_AFTER_SECONDS)
        ));
        let done = apply_settlement(&leased, Settlement::Delivered);
        assert!(!claimable_ahead(&done, T0.plus_secs(3600)));
        let held = hold(&s);
        assert!(!claimable_ahead(&held, T0.plus_secs(3600)), "paused");
    }
}
