//! `backfill`: syncs every edgehook trigger's ledger into PostgreSQL.
//!
//! It applies `migrations/` (recorded, idempotent), lists the triggers (deleted
//! ones too, so their rows can be marked), reads each trigger's change feed
//! from its stored cursor, and upserts deliveries and runs together with the
//! new cursor in one transaction per page. Running it twice changes nothing;
//! interrupting it loses nothing.
//!
//! This is the only crate that knows PostgreSQL. Exit codes: 0 done, 1 other
//! failure, 2 usage, 3 the edge refused the token, 4 the edge is unreachable,
//! 5 the database is unreachable or read-only.

mod db;
mod edge;
mod sync;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// Command-line options.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "backfill",
    version,
    about = "Sync edgehook's delivery ledgers into PostgreSQL"
)]
pub struct Options {
    /// Base URL of the edge, e.g. https://hooks.example.com
    #[arg(long, env = "EDGEHOOK_URL")]
    pub url: String,
    /// The management API's bearer token (ADMIN_TOKEN)
    #[arg(long, env = "EDGEHOOK_ADMIN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// PostgreSQL connection URL (sslmode=require is honoured)
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Keep syncing until interrupted
    #[arg(long)]
    pub follow: bool,
    /// Pause between rounds with --follow, in seconds
    #[arg(long, default_value_t = 10.0)]
    pub interval: f64,
    /// Triggers synced at once (one database connection each)
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Changes requested per page (the edge also bounds pages by bytes)
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub page_size: u32,
    /// Sync only these triggers (repeatable)
    #[arg(long = "trigger")]
    pub triggers: Vec<String>,
    /// Plain log lines even on a terminal
    #[arg(long)]
    pub no_progress: bool,
}

impl Options {
    fn interval(&self) -> Duration {
        Duration::from_secs_f64(self.interval.clamp(0.1, 86_400.0))
    }
}

/// A failure with its own exit code and a message for a person.
#[derive(Debug)]
pub enum Fatal {
    /// The edge answered 401 or 403.
    BadToken,
    /// The edge could not be reached.
    EdgeUnreachable(String),
    /// The database could not be reached, refused us, or is read-only.
    Database(String),
    /// Some triggers failed with an error of their own; every other trigger
    /// was synced.
    TriggersFailed(u64),
}

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fatal::BadToken => f.write_str(
                "the edge refused the admin token (401): check --token or EDGEHOOK_ADMIN_TOKEN",
            ),
            Fatal::EdgeUnreachable(why) => write!(f, "cannot reach the edge: {why}"),
            Fatal::Database(why) => write!(f, "database: {why}"),
            Fatal::TriggersFailed(n) => write!(
                f,
                "{n} trigger(s) could not be synced (see above); the others were"
            ),
        }
    }
}

impl std::error::Error for Fatal {}

impl Fatal {
    fn exit_code(&self) -> u8 {
        match self {
            Fatal::BadToken => 3,
            Fatal::EdgeUnreachable(_) => 4,
            Fatal::Database(_) => 5,
            Fatal::TriggersFailed(_) => 6,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let opts = Options::parse();
    match sync::run(opts).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => match err.downcast_ref::<Fatal>() {
            Some(fatal) => {
                eprintln!("backfill: {fatal}");
                ExitCode::from(fatal.exit_code())
            }
            None => {
                eprintln!("backfill: {err:#}");
                ExitCode::from(1)
            }
        },
    }
}
