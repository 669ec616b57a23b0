//! When a Trigger object's alarm fires next.
//!
//! One alarm per object does all the background work: re-sending runs whose
//! messages look lost, retrying owed dead letters and registry copies, and
//! retention. After each run it is set to the earliest time any of them is
//! due; [`next_alarm`] is that choice, as a pure function.

use crate::time::Timestamp;

/// How often retention runs while deliveries are stored.
pub const RETENTION_INTERVAL_SECONDS: i64 = 3600;
/// How soon retention runs again when it stopped at its per-alarm cap, so a
/// backlog of expired deliveries drains in minutes, not one batch an hour.
pub const RETENTION_BACKLOG_SECONDS: i64 = 5;
/// How soon a registry copy that failed is tried again.
pub const REGISTRY_RETRY_SECONDS: i64 = 30;
/// The alarm never fires again sooner than this after it ran.
pub const MIN_GAP_MS: i64 = 1000;
/// Slack after a run's check time, so the check finds it due.
pub const RUN_CHECK_SLACK_MS: i64 = 500;

/// What the alarm found when it ran at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmState {
    /// When it ran.
    pub now: Timestamp,
    /// The earliest time a run or an owed dead letter needs a look.
    pub next_run_check: Option<Timestamp>,
    /// Whether the registry still lacks the trigger's latest view.
    pub registry_dirty: bool,
    /// Whether any delivery is stored (retention then has work later).
    pub has_deliveries: bool,
    /// Whether retention stopped at its cap with more expired deliveries.
    pub retention_backlog: bool,
}

/// When the alarm should fire next; `None` when nothing will be due.
pub fn next_alarm(s: &AlarmState) -> Option<Timestamp> {
    let now = s.now;
    let retention = if s.retention_backlog {
        Some(now.plus_secs(RETENTION_BACKLOG_SECONDS))
    } else if s.has_deliveries {
        Some(now.plus_secs(RETENTION_INTERVAL_SECONDS))
    } else {
        None
    };
    let runs = s.next_run_check.map(|due| {
        due.plus_millis(RUN_CHECK_SLACK_MS)
            .max(now.plus_millis(MIN_GAP_MS))
    });
    let registry = s
        .registry_dirty
        .then(|| now.plus_secs(REGISTRY_RETRY_SECONDS));
    [runs, registry, retention].into_iter().flatten().min()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_700_000_000_000);

    fn idle() -> AlarmState {
        AlarmState {
            now: NOW,
            next_run_check: None,
            registry_dirty: false,
            has_deliveries: false,
            retention_backlog: false,
        }
    }

    #[test]
    fn nothing_to_do_sets_no_alarm() {
        assert_eq!(next_alarm(&idle()), None);
    }

    #[test]
    fn a_retention_backlog_comes_back_in_seconds_not_an_hour() {
        let stored = AlarmState {
            has_deliveries: true,
            ..idle()
        };
        assert_eq!(next_alarm(&stored), Some(NOW.plus_secs(3600)));
        let backlog = AlarmState {
            retention_backlog: true,
            ..stored
        };
        assert_eq!(next_alarm(&backlog), Some(NOW.plus_secs(5)));
        // Even with a run due much later.
        let with_run = AlarmState {
            next_run_check: Some(NOW.plus_secs(600)),
            ..backlog
        };
        assert_eq!(next_alarm(&with_run), Some(NOW.plus_secs(5)));
    }

    #[test]
    fn runs_are_checked_when_due_but_never_in_a_tight_loop() {
        let due_later = AlarmState {
            next_run_check: Some(NOW.plus_secs(40)),
            has_deliveries: true,
            ..idle()
        };
        assert_eq!(next_alarm(&due_later), Some(NOW.plus_millis(40_500)));
        // Overdue (a run that is re-sent later sits in its spacing): at
        // least a second apart.
        let overdue = AlarmState {
            next_run_check: Some(NOW.minus_secs(100)),
            ..due_later
        };
        assert_eq!(next_alarm(&overdue), Some(NOW.plus_millis(1000)));
        let dirty = AlarmState {
            registry_dirty: true,
            ..idle()
        };
        assert_eq!(next_alarm(&dirty), Some(NOW.plus_secs(30)));
    }
}
