//! Model-based tests of the ledger rules and the run state machine.
//!
//! A model ledger (the SQL of `worker/src/ledger/` as plain Rust: the holder
//! lookup, retention, dead letters) is driven by the core's own decisions
//! (`ingest::decide`, `run::claim`, `run::settle`, `run::needs_reenqueue`)
//! through any sequence of receive, duplicate, reject, replay, claim, report,
//! alarm, dead-letter send, retention and the passing of time. After every
//! step the invariants of ARCHITECTURE.md must hold.

use edgehook_core::api::DeliveryStatus;
use edgehook_core::ingest::{decide, Decision, Facts};
use edgehook_core::provider::EventType;
use edgehook_core::run::{
    self, AttemptOutcome, Claim, RetryPolicy, RunState, RunStatus, Settlement,
};
use edgehook_core::trigger::{TriggerConfig, TriggerCreate};
use edgehook_core::weburl::{ParsedUrl, UrlParser};
use edgehook_core::Timestamp;
use proptest::prelude::*;

/// The URL parser the configuration checks take. The model's trigger has no
/// target URL, so nothing is ever asked of it; were one added, it would be
/// refused, and the test would say so at its first step.
struct NoUrls;

impl UrlParser for NoUrls {
    fn parse(&self, _: &str) -> Option<ParsedUrl> {
        None
    }
}

const LEASE_SECONDS: i64 = 45;
const POLICY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    base_delay_seconds: 5,
};

#[derive(Debug, Clone)]
enum Op {
    /// A request with dedupe key `key` (if any); `genuine` or not; of an
    /// event type the trigger routes or not.
    Receive {
        key: Option<u8>,
        genuine: bool,
        routed: bool,
    },
    Replay(usize),
    Claim(usize),
    Report {
        run: usize,
        success: bool,
        stale: bool,
    },
    Alarm,
    DeadLetterSent(usize),
    Retention,
    Wait(u32),
    /// The route pauses: its idle queued runs are held, and so is any run
    /// whose attempt fails while it is paused.
    Pause,
    /// The route resumes: held runs are released.
    Resume,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (proptest::option::of(0u8..4), any::<bool>(), prop::bool::weighted(0.8))
            .prop_map(|(key, genuine, routed)| Op::Receive { key, genuine, routed }),
        1 => (0usize..64).prop_map(Op::Replay),
        3 => (0usize..64).prop_map(Op::Claim),
        3 => (0usize..64, prop::bool::weighted(0.4), prop::bool::weighted(0.1))
            .prop_map(|(run, success, stale)| Op::Report { run, success, stale }),
        2 => Just(Op::Alarm),
        1 => (0usize..64).prop_map(Op::DeadLetterSent),
        1 => Just(Op::Retention),
        2 => prop_oneof![1u32..30, 30u32..600, 3_000u32..100_000].prop_map(Op::Wait),
        1 => Just(Op::Pause),
        1 => Just(Op::Resume),
    ]
}

#[derive(Debug, Clone)]
struct Delivery {
    key: Option<u8>,
    status: DeliveryStatus,
    replay_of: Option<usize>,
    received: Timestamp,
    run: Option<usize>,
    attempt_count: u32,
}

#[derive(Debug, Clone)]
struct Run {
    delivery: usize,
    state: RunState,
    /// Attempts the target saw succeed.
    successes: u32,
    /// Claims granted.
    dispatches: u32,
    dlq_pending: bool,
    dead_lettered: bool,
    deleted: bool,
}

struct Model {
    cfg: TriggerConfig,
    now: Timestamp,
    deliveries: Vec<Option<Delivery>>,
    runs: Vec<Run>,
    paused: bool,
}

impl Model {
    fn new() -> Model {
        let req: TriggerCreate = serde_json::from_value(serde_json::json!({
            "name": "model", "provider": "github",
            "signing_secret": "model-test-github-secret",
            "event_types": ["push"], "dedupe_window_seconds": 3600, "retention_days": 1
        }))
        .expect("request");
        Model {
            cfg: TriggerConfig::create("trg_model".into(), req, Timestamp(0), &NoUrls)
                .expect("config"),
            now: Timestamp::from_secs(1_700_000_000),
            deliveries: Vec::new(),
            runs: Vec::new(),
            paused: false,
        }
    }

    /// `Ledger::find_holder`: the oldest non-replay delivery with the key,
    /// in a status that holds it, within the window.
    fn holder(&self, key: u8) -> Option<usize> {
        let cutoff = self.cfg.dedupe_cutoff(self.now);
        self.deliveries
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.as_ref().map(|d| (i, d)))
            .filter(|(_, d)| {
                d.key == Some(key)
                    && d.replay_of.is_none()
                    && d.received >= cutoff
                    && DeliveryStatus::HOLDS_DEDUPE_KEY.contains(&d.status)
            })
            .min_by_key(|(i, d)| (d.received, *i))
            .map(|(i, _)| i)
    }

    fn insert(&mut self, d: Delivery, with_run: bool) {
        let id = self.deliveries.len();
        let mut d = d;
        if with_run {
            d.run = Some(self.runs.len());
            let fresh = RunState::new(self.now);
            self.runs.push(Run {
                delivery: id,
                // A run of a paused route is stored held.
                state: if self.paused {
                    run::hold(&fresh)
                } else {
                    fresh
                },
                successes: 0,
                dispatches: 0,
                dlq_pending: false,
                dead_lettered: false,
                deleted: false,
            });
        }
        self.deliveries.push(Some(d));
    }

    fn mirror(&mut self, run: usize) {
        let r = &self.runs[run];
        if let Some(d) = self.deliveries[r.delivery].as_mut() {
            d.status = DeliveryStatus::of_run(r.state.status);
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Receive {
                key,
                genuine,
                routed,
            } => {
                let base = Delivery {
                    key,
                    status: DeliveryStatus::Queued,
                    replay_of: None,
                    received: self.now,
                    run: None,
                    attempt_count: 1,
                };
                if !genuine {
                    self.insert(
                        Delivery {
                            status: DeliveryStatus::Rejected,
                            ..base
                        },
                        false,
                    );
                    return;
                }
                let facts = Facts {
                    dedupe_key: key.map(|k| format!("k{k}")),
                    event: EventType {
                        name: Some(if routed { "push" } else { "issues" }.into()),
                        action: None,
                    },
                };
                let holder = key.and_then(|k| self.holder(k));
                match decide(&self.cfg, &facts, holder.is_some()) {
                    Decision::Duplicate => {
                        let h = holder.expect("a duplicate has a holder");
                        let d = self.deliveries[h].as_mut().expect("holder exists");
                        assert!(d.replay_of.is_none(), "a replay held a dedupe key");
                        d.attempt_count += 1;
                    }
                    Decision::Ignore(_) => self.insert(
                        Delivery {
                            status: DeliveryStatus::Ignored,
                            ..base
                        },
                        false,
                    ),
                    Decision::Run => self.insert(base, true),
                }
            }
            Op::Replay(i) => {
                let Some(Some(orig)) = self.deliveries.get(i % self.deliveries.len().max(1)) else {
                    return;
                };
                if orig.status == DeliveryStatus::Rejected {
                    return;
                }
                let d = Delivery {
                    key: orig.key,
                    status: DeliveryStatus::Queued,
                    replay_of: Some(i % self.deliveries.len()),
                    received: self.now,
                    run: None,
                    attempt_count: 1,
                };
                self.insert(d, true);
            }
            Op::Claim(i) => {
                let Some(run) = self.pick_run(i) else { return };
                let state = self.runs[run].state;
                match run::claim(&state, self.now, LEASE_SECONDS, POLICY.max_attempts) {
                    Claim::Dispatch {
                        attempt,
                        lease_until,
                    } => {
                        assert!(!state.status.is_final(), "a final run was claimed");
                        let r = &mut self.runs[run];
                        r.state = run::apply_claim(&state, attempt, lease_until);
                        r.dispatches += 1;
                    }
                    Claim::Done => assert!(state.status.is_final()),
                    Claim::Held => assert_eq!(state.status, RunStatus::Held),
                    Claim::Exhausted => {
                        assert!(state.attempts >= POLICY.max_attempts);
                        let r = &mut self.runs[run];
                        r.state = run::exhaust(&state);
                        r.dlq_pending = true;
                        self.mirror(run);
                    }
                    Claim::InFlight | Claim::NotYet { .. } => {}
                }
            }
            Op::Report {
                run,
                success,
                stale,
            } => {
                let Some(run) = self.pick_run(run) else {
                    return;
                };
                let state = self.runs[run].state;
                let attempt = if stale {
                    state.attempts.wrapping_sub(1)
                } else {
                    state.attempts
                };
                let outcome = AttemptOutcome {
                    status: Some(if success { 200 } else { 500 }),
                    error: None,
                };
                let settlement = run::settle(&state, attempt, &outcome, self.now, POLICY);
                let r = &mut self.runs[run];
                if settlement == Settlement::Delivered {
                    r.successes += 1;
                }
                if settlement == Settlement::Failed {
                    r.dlq_pending = true;
                }
                r.state = run::apply_settlement(&state, settlement);
                if self.paused && matches!(settlement, Settlement::Retry { .. }) {
                    r.state = run::hold(&r.state);
                }
                self.mirror(run);
            }
            Op::Pause => {
                self.paused = true;
                let now = self.now;
                for r in self.runs.iter_mut().filter(|r| !r.deleted) {
                    let idle = r.state.lease_until.is_none_or(|l| l <= now);
                    if r.state.status == RunStatus::Queued && idle {
                        r.state = run::hold(&r.state);
                    }
                }
            }
            Op::Resume => {
                self.paused = false;
                let now = self.now;
                for r in self.runs.iter_mut().filter(|r| !r.deleted) {
                    r.state = run::release(&r.state, now);
                }
            }
            Op::Alarm => {
                let now = self.now;
                for r in self.runs.iter_mut().filter(|r| !r.deleted) {
                    if run::needs_reenqueue(&r.state, now) {
                        r.state = run::apply_resend(&r.state, now);
                    }
                }
            }
            Op::DeadLetterSent(i) => {
                if let Some(run) = self.pick_run(i) {
                    let r = &mut self.runs[run];
                    if r.dlq_pending {
                        r.dlq_pending = false;
                        r.dead_lettered = true;
                    }
                }
            }
            Op::Retention => {
                // `Ledger::enforce_retention`.
                let cutoff = self.cfg.retention_cutoff(self.now);
                for i in 0..self.deliveries.len() {
                    let Some(d) = &self.deliveries[i] else {
                        continue;
                    };
                    let owed = d.run.is_some_and(|r| self.runs[r].dlq_pending);
                    if d.received < cutoff && d.status != DeliveryStatus::Queued && !owed {
                        if let Some(r) = d.run {
                            let run = &mut self.runs[r];
                            assert!(run.state.status.is_final(), "retention deleted an open run");
                            assert!(!run.dlq_pending, "retention deleted an owed dead letter");
                            run.deleted = true;
                        }
                        self.deliveries[i] = None;
                    }
                }
            }
            Op::Wait(secs) => self.now = self.now.plus_secs(i64::from(secs)),
        }
    }

    fn pick_run(&self, i: usize) -> Option<usize> {
        if self.runs.is_empty() {
            return None;
        }
        let run = i % self.runs.len();
        (!self.runs[run].deleted).then_some(run)
    }

    fn check(&self) {
        let live: Vec<(usize, &Delivery)> = self
            .deliveries
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.as_ref().map(|d| (i, d)))
            .collect();
        // Exactly-once admission: two holders of one key are further apart
        // than the dedupe window.
        let window = self.cfg.dedupe_window_seconds as i64 * 1000;
        for (i, a) in &live {
            for (j, b) in &live {
                let holds = |d: &Delivery| {
                    d.replay_of.is_none() && DeliveryStatus::HOLDS_DEDUPE_KEY.contains(&d.status)
                };
                if i < j && a.key.is_some() && a.key == b.key && holds(a) && holds(b) {
                    assert!(
                        (b.received.millis() - a.received.millis()).abs() > window,
                        "two holders of one key within the window"
                    );
                }
            }
        }
        for (i, d) in &live {
            match d.status {
                DeliveryStatus::Rejected | DeliveryStatus::Ignored => {
                    assert!(d.run.is_none(), "a {:?} delivery has a run", d.status)
                }
                _ => {
                    let run = &self.runs[d.run.expect("an admitted delivery has a run")];
                    assert_eq!(run.delivery, *i, "one run per delivery");
                    assert_eq!(d.status, DeliveryStatus::of_run(run.state.status));
                }
            }
        }
        for r in &self.runs {
            assert!(r.successes <= 1, "a run was delivered twice");
            assert!(r.state.attempts <= POLICY.max_attempts);
            assert!(
                r.dispatches == r.state.attempts,
                "every attempt was a claim"
            );
            if r.state.status == RunStatus::Delivered {
                assert_eq!(r.successes, 1);
            }
            if r.state.status == RunStatus::Held {
                assert!(self.paused, "a run is held only while its route is paused");
                assert_eq!(run::recheck_at(&r.state), None, "a held run needs no alarm");
            }
            if r.state.status == RunStatus::Failed {
                assert!(
                    r.dlq_pending || r.dead_lettered,
                    "a failed run owes no dead letter"
                );
            }
            // Re-sends of an unclaimed run are spaced: no more than the
            // bound since it became due.
            if r.state.status == RunStatus::Queued {
                let since = (self.now.millis() - r.state.next_attempt_at.millis()) / 1000;
                assert!(r.state.resends <= run::max_resends_within(since.max(0)));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn any_sequence_keeps_the_ledger_invariants(ops in prop::collection::vec(op(), 1..120)) {
        let mut m = Model::new();
        for op in &ops {
            m.apply(op);
            m.check();
        }
    }
}
