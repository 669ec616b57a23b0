//! PostgreSQL for tests: `DATABASE_URL` when it is set (the role must be able
//! to create databases), otherwise a throwaway cluster started with `initdb`
//! and `pg_ctl` on a free loopback port and stopped when the test process
//! exits. Every test gets a fresh database.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A PostgreSQL server for the tests of one process.
pub struct Pg {
    /// A URL with the right to create databases.
    pub admin_url: String,
    /// Host and port, for building URLs.
    host_port: String,
    user: String,
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a PostgreSQL tool, as the `postgres` user when we are root (initdb
/// refuses to run as root).
fn pg_tool(tool: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", tool]);
        c
    } else {
        Command::new(tool)
    }
}

impl Pg {
    /// The server shared by this test process.
    pub fn shared() -> &'static Pg {
        static PG: OnceLock<Pg> = OnceLock::new();
        PG.get_or_init(|| match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => Pg::external(url),
            _ => Pg::throwaway(),
        })
    }

    fn external(url: String) -> Pg {
        let rest = url.split("://").nth(1).unwrap_or("");
        let (userinfo, after) = rest.split_once('@').unwrap_or(("postgres", rest));
        let host_port = after
            .split('/')
            .next()
            .unwrap_or("127.0.0.1:5432")
            .to_string();
        Pg {
            admin_url: url.clone(),
            host_port,
            user: userinfo.to_string(),
        }
    }

    fn throwaway() -> Pg {
        let dir: PathBuf = std::env::temp_dir().join(format!("edgehook-pg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("pg dir");
        if is_root() {
            run(
                Command::new("chown").arg("postgres").arg(&dir),
                "chown the cluster dir",
            );
        }
        let data = dir.join("data");
        run(
            pg_tool("initdb").arg("-D").arg(&data).args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ]),
            "initdb",
        );
        let port = crate::free_port();
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            dir.display()
        );
        run(
            pg_tool("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.join("log"))
                .args(["-w", "-o", &opts, "start"]),
            "pg_ctl start",
        );
        // Stop the cluster when this test process exits.
        let stop = if is_root() {
            format!(
                "runuser -u postgres -- pg_ctl -D '{}' -m immediate stop",
                data.display()
            )
        } else {
            format!("pg_ctl -D '{}' -m immediate stop", data.display())
        };
        let _ = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "while kill -0 {} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf '{}'",
                std::process::id(),
                dir.display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        Pg {
            admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            host_port: format!("127.0.0.1:{port}"),
            user: "postgres".into(),
        }
    }

    /// A new, empty database; returns its URL.
    pub fn fresh_database(&self) -> String {
        let name = format!("edgehook_test_{}", crate::unique("db").replace('-', "_"));
        let mut admin =
            postgres::Client::connect(&self.admin_url, postgres::NoTls).expect("connect as admin");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        format!("postgres://{}@{}/{name}", self.user, self.host_port)
    }

    /// A URL on which nothing listens.
    pub fn unreachable_url() -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/nothing",
            crate::free_port()
        )
    }
}
