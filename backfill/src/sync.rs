//! The sync loop: list triggers, then drain each trigger's change feed into
//! the database with bounded concurrency, once or (`--follow`) until stopped.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::future::try_join_all;
use indicatif::{ProgressBar, ProgressStyle};
use tokio_postgres::Client;

use crate::db::{self, PageRows, Written};
use crate::edge::{Edge, PageBytes};
use crate::Options;

/// Attempts at writing one page before the sync fails.
const DB_ATTEMPTS: u32 = 5;

/// What a sync wrote.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    triggers: u64,
    deliveries: u64,
    runs: u64,
    attempts: u64,
    routes: u64,
    pages: u64,
    /// Triggers whose sync failed with an error of their own.
    failed: u64,
}

impl Stats {
    fn add(&mut self, o: Stats) {
        self.triggers += o.triggers;
        self.deliveries += o.deliveries;
        self.runs += o.runs;
        self.attempts += o.attempts;
        self.routes += o.routes;
        self.pages += o.pages;
        self.failed += o.failed;
    }

    fn rows(&self) -> u64 {
        self.deliveries + self.runs + self.attempts + self.routes
    }
}

/// Progress: a bar on a terminal, log lines otherwise.
#[derive(Clone)]
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new(opts: &Options) -> Progress {
        let bar = (!opts.no_progress && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            let style =
                ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} triggers  {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress { bar }
    }

    fn start_round(&self, triggers: usize) {
        if let Some(b) = &self.bar {
            b.set_length(triggers as u64);
            b.set_position(0);
        }
    }

    fn rows(&self, total: u64) {
        if let Some(b) = &self.bar {
            b.set_message(format!("{total} rows"));
        }
    }

    fn trigger_done(&self, id: &str, s: &Stats, cursor: i64) {
        match &self.bar {
            Some(b) => b.inc(1),
            None if s.rows() > 0 => eprintln!(
                "backfill: {id}: {} deliveries, {} runs, {} attempts, {} routes written (cursor {cursor})",
                s.deliveries, s.runs, s.attempts, s.routes
            ),
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Runs the backfill as `opts` says.
pub async fn run(opts: Options) -> Result<()> {
    let edge = Edge::new(&opts.url, &opts.token)?;
    let mut admin = db::connect(&opts.database_url).await?;
    let ran = db::migrate(&mut admin).await?;
    if ran > 0 {
        eprintln!("backfill: applied {ran} migration(s)");
    }
    let progress = Progress::new(&opts);
    let started = Instant::now();
    // A trigger's own failure (a page the database refuses, a feed that
    // cannot be read) is reported and skipped; the other triggers go on, and
    // the exit code says something failed.
    let mut total = Stats::default();
    let mut stop = Box::pin(tokio::signal::ctrl_c());
    loop {
        let round = sync_round(&opts, &edge, &admin, &progress);
        let stats = if opts.follow {
            tokio::select! {
                r = round => r?,
                _ = &mut stop => break,
            }
        } else {
            round.await?
        };
        total.add(stats);
        if !opts.follow {
            break;
        }
        if stats.rows() > 0 {
            eprintln!("backfill: {} rows this round", stats.rows());
        }
        tokio::select! {
            _ = tokio::time::sleep(opts.interval()) => {}
            _ = &mut stop => break,
        }
    }
    progress.finish();
    let secs = started.elapsed().as_secs_f64();
    if total.failed > 0 {
        println!(
            "backfill: {} trigger(s) failed; their cursors stay where the last committed page left them",
            total.failed
        );
    }
    println!(
        "backfill: {} triggers, {} rows ({} deliveries, {} runs, {} attempts, {} routes) in {:.2} s, {:.0} rows/s",
        total.triggers,
        total.rows(),
        total.deliveries,
        total.runs,
        total.attempts,
        total.routes,
        secs,
        total.rows() as f64 / secs.max(1e-9)
    );
    if total.failed > 0 {
        return Err(anyhow::anyhow!(crate::Fatal::TriggersFailed(total.failed)));
    }
    Ok(())
}

async fn sync_round(
    opts: &Options,
    edge: &Edge,
    admin: &Client,
    progress: &Progress,
) -> Result<Stats> {
    let mut triggers = edge.triggers().await?;
    if !opts.triggers.is_empty() {
        triggers.retain(|t| opts.triggers.contains(&t.id));
    }
    db::upsert_triggers(admin, &triggers).await?;
    progress.start_round(triggers.len());
    let queue: Arc<Mutex<VecDeque<String>>> =
        Arc::new(Mutex::new(triggers.iter().map(|t| t.id.clone()).collect()));
    let rows = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let workers = (0..usize::from(opts.concurrency).min(triggers.len())).map(|_| {
        let queue = queue.clone();
        let rows = rows.clone();
        async move {
            let mut conn = Conn::open(&opts.database_url).await?;
            let mut stats = Stats::default();
            loop {
                let next = queue
                    .lock()
                    .map_err(|_| anyhow::anyhow!("queue poisoned"))?
                    .pop_front();
                let Some(id) = next else { break };
                match sync_trigger(edge, &mut conn, &id, opts.page_size, &rows, progress).await {
                    Ok((s, cursor)) => {
                        progress.trigger_done(&id, &s, cursor);
                        stats.add(s);
                    }
                    // Whatever stops every trigger (a bad token, an edge or
                    // database that is gone) still stops the run.
                    Err(e) if e.downcast_ref::<crate::Fatal>().is_some() => return Err(e),
                    Err(e) => {
                        eprintln!(
                            "backfill: trigger {id} failed, continuing with the others: {e:#}"
                        );
                        stats.failed += 1;
                        // The connection may be mid-transaction or broken.
                        let _ = conn.reopen().await;
                    }
                }
            }
            Ok::<Stats, anyhow::Error>(stats)
        }
    });
    let mut total = Stats::default();
    for s in try_join_all(workers).await? {
        total.add(s);
    }
    total.triggers = triggers.len() as u64;
    Ok(total)
}

/// A connection that reopens itself after a transient failure.
struct Conn {
    url: String,
    client: Client,
}

impl Conn {
    async fn open(url: &str) -> Result<Conn> {
        Ok(Conn {
            url: url.to_string(),
            client: db::connect(url).await?,
        })
    }

    async fn reopen(&mut self) -> Result<()> {
        self.client = db::connect(&self.url).await?;
        Ok(())
    }
}

async fn sync_trigger(
    edge: &Edge,
    conn: &mut Conn,
    id: &str,
    page_size: u32,
    rows: &std::sync::atomic::AtomicU64,
    progress: &Progress,
) -> Result<(Stats, i64)> {
    let mut stats = Stats::default();
    // Routes first: a run's route is then in the database when the run is.
    if let Some(routes) = edge.routes(id).await? {
        stats.routes += db::upsert_routes(&conn.client, id, &routes)
            .await
            .with_context(|| format!("writing the routes of {id}"))?;
    }
    let after = db::cursor(&conn.client, id).await?;
    // Three tasks work at once, each a page apart: a reader fetches pages,
    // reading only each one's head to ask for the next; a decoder decodes
    // them into rows; this task writes. The edge's page is the slowest
    // step, so the reader does nothing else. Channels of two between them:
    // a slow page on one side does not stall the others. Each page still
    // commits with its cursor, in order.
    let (raw_tx, mut raw) = tokio::sync::mpsc::channel::<Result<PageBytes>>(2);
    let (tx, mut pages) = tokio::sync::mpsc::channel::<Result<PageRows>>(2);
    let reader = {
        let edge = edge.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let mut after = after;
            loop {
                let page = edge.changes(&id, after, page_size).await;
                let head = page.as_ref().ok().map(PageBytes::head);
                if let Some(h) = head {
                    after = h.next_after;
                }
                let more = head.is_some_and(|h| h.has_more && h.count > 0);
                // The decoder has stopped (the writer failed): so does the
                // reader.
                if raw_tx.send(page).await.is_err() || !more {
                    return;
                }
            }
        })
    };
    let decoder = tokio::spawn(async move {
        while let Some(page) = raw.recv().await {
            let rows = page.and_then(PageBytes::decode).and_then(PageRows::new);
            if tx.send(rows).await.is_err() {
                return;
            }
        }
    });
    // The reader and the decoder stop with the writer, also when this
    // future is dropped.
    let _reader = AbortOnDrop(reader);
    let _decoder = AbortOnDrop(decoder);
    let mut cursor = after;
    // A page is tried by COPY when its rows are likely all new: in a first
    // backfill (the cursor starts at 0), or in a catch-up whose pages come
    // full (more follow). Small incremental rounds (`--follow`) are mostly
    // deliveries whose runs moved on, so they upsert at once. Once a COPY
    // meets a row already there, the rest of this sync upserts: at most one
    // page's COPY is wasted (and its rows left for vacuum) per sync.
    let first_backfill = after == 0;
    let mut copying = true;
    // Whether the reader owes another page: a reader that ended without the
    // edge saying the feed was done (it cannot, short of a panic) must not
    // pass for a finished sync.
    let mut owed = true;
    while let Some(page) = pages.recv().await {
        let page = page?;
        owed = page.more_follow();
        if page.is_empty() {
            break;
        }
        let try_copy = copying && (first_backfill || page.has_more);
        let written = write_with_retry(conn, id, &page, try_copy).await?;
        copying &= written.copied || !try_copy;
        stats.deliveries += written.deliveries;
        stats.runs += written.runs;
        stats.attempts += written.attempts;
        stats.pages += 1;
        let page_rows = written.deliveries + written.runs + written.attempts;
        let total = rows.fetch_add(page_rows, std::sync::atomic::Ordering::Relaxed) + page_rows;
        progress.rows(total);
        cursor = page.next_after;
    }
    if owed {
        anyhow::bail!("reading the change feed of {id} stopped before its end");
    }
    Ok((stats, cursor))
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Writes a page; on a transient database failure, reconnects and writes it
/// again (the page and its cursor commit together, so a retry is exact).
async fn write_with_retry(
    conn: &mut Conn,
    id: &str,
    page: &PageRows,
    try_copy: bool,
) -> Result<Written> {
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        match db::apply_page(&mut conn.client, id, page, try_copy).await {
            Ok(w) => return Ok(w),
            Err(e) if attempt < DB_ATTEMPTS && db::is_transient(&e) => {
                eprintln!("backfill: {id}: {e:#}; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                attempt += 1;
                // A failed reconnect is retried by the next round of the loop.
                let _ = conn.reopen().await;
            }
            Err(e) => return Err(e).with_context(|| format!("writing changes of {id}")),
        }
    }
}
