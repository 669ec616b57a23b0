//! The Rust floor for `make bench`: `bench/floor/floor.js`'s admission
//! written with workers-rs, the way edgehook is built.
//!
//! It verifies a GitHub signature (HMAC-SHA-256 in Wasm, as edgehook does),
//! hands the delivery to a SQLite Durable Object by JavaScript RPC (through
//! `entry.mjs`, as edgehook's Trigger), inserts it there unless its id is
//! known, sets an alarm if none is set and sends one queue message. Nothing
//! else. Against the JavaScript floor it measures what Rust, Wasm and
//! wasm-bindgen cost on this platform before any of edgehook's own work;
//! against edgehook, what edgehook's work costs.
//!
//! With the variable `FLOOR_LEDGER = "edgehook"` it is the ledger floor: the
//! object has edgehook's schema (`edgehook_core::schema`) and admits a new
//! delivery with edgehook's statements, in edgehook's order: the dedupe
//! holder lookup, the counters, the delivery row, its body and one run. That
//! is the least work any Worker storing what edgehook's ledger stores does;
//! against edgehook it measures everything edgehook does besides its SQL.
// `#[durable_object]` generates undocumented public glue.
#![allow(missing_docs)]

use hmac::{Hmac, Mac};
use sha2::Sha256;
use worker::wasm_bindgen::prelude::wasm_bindgen;
use worker::wasm_bindgen::JsValue;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{
    durable_object, event, js_sys, web_sys, Context, DurableObject, Env, Request, Response, Result,
    SqlStorageValue, State,
};

/// The header GitHub signs with.
const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// The header that names a GitHub delivery.
const DELIVERY_HEADER: &str = "x-github-delivery";

/// Whether `header` is `sha256=` and the hex HMAC-SHA-256 of `body` under
/// `secret`, compared in constant time.
fn verified(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(sig) = header
        .and_then(|h| h.strip_prefix("sha256="))
        .and_then(|h| hex::decode(h).ok())
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

fn json(status: u16, text: &str) -> Result<Response> {
    let resp = Response::from_bytes(text.as_bytes().to_vec())?.with_status(status);
    resp.headers().set("content-type", "application/json")?;
    Ok(resp)
}

#[wasm_bindgen]
extern "C" {
    /// A `Ledger` object's stub, seen through its RPC method.
    #[wasm_bindgen(extends = js_sys::Object)]
    type LedgerRpc;

    /// `Ledger.admit(id, body)`: whether the delivery was new.
    #[wasm_bindgen(method, catch)]
    fn admit(
        this: &LedgerRpc,
        id: &str,
        body: &JsValue,
    ) -> std::result::Result<js_sys::Promise, JsValue>;
}

/// The path of a URL as the runtime serializes it: from the first `/` after
/// the host to the query.
fn path_of(url: &str) -> &str {
    let rest = &url[url.find("://").map_or(0, |i| i + 3)..];
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    path.split(['?', '#']).next().unwrap_or("/")
}

/// The Worker: verify, then admit by RPC. It takes the runtime's request as
/// it is, as edgehook's edge does: a `worker::Request` would read the `cf`
/// object, which neither floor needs.
#[event(fetch)]
pub async fn fetch(req: web_sys::Request, env: Env, _ctx: Context) -> Result<Response> {
    let url = req.url();
    let path = path_of(&url);
    if path == "/healthz" {
        return json(200, r#"{"ok":true}"#);
    }
    let buffer = JsFuture::from(req.array_buffer()?).await?;
    let body = js_sys::Uint8Array::new(&buffer).to_vec();
    let secret = env.secret("FLOOR_SECRET")?.to_string();
    let headers = req.headers();
    let signature = headers.get(SIGNATURE_HEADER)?;
    if !verified(secret.as_bytes(), &body, signature.as_deref()) {
        return json(401, r#"{"error":"invalid_signature"}"#);
    }
    let Some(id) = headers.get(DELIVERY_HEADER)? else {
        return json(400, r#"{"error":"missing_delivery_id"}"#);
    };
    let stub = env
        .durable_object("LEDGER")?
        .id_from_name(path)?
        .get_stub()?;
    let rpc: LedgerRpc = stub.into_rpc();
    let fresh = JsFuture::from(rpc.admit(&id, &buffer)?)
        .await?
        .as_bool()
        .unwrap_or(false);
    json(
        200,
        if fresh {
            r#"{"status":"accepted"}"#
        } else {
            r#"{"status":"duplicate"}"#
        },
    )
}

/// One ledger: deliveries by id.
#[durable_object]
pub struct Ledger {
    state: State,
    env: Env,
    /// Whether this is the ledger floor (`FLOOR_LEDGER = "edgehook"`).
    edgehook_rows: bool,
}

/// The headers a GitHub delivery's row stores, as edgehook stores them:
/// a JSON list of pairs, the signature reduced to a fingerprint.
const STORED_HEADERS: &str = r#"[["accept","*/*"],["content-type","application/json"],["user-agent","GitHub-Hookshot/0000000"],["x-github-delivery","00000000-0000-0000-0000-000000000000"],["x-github-event","push"],["x-github-hook-id","000000000"],["x-hub-signature-256","sha256:00000000"]]"#;

impl DurableObject for Ledger {
    fn new(state: State, env: Env) -> Self {
        let edgehook_rows = env
            .var("FLOOR_LEDGER")
            .is_ok_and(|v| v.to_string() == "edgehook");
        let sql = state.storage().sql();
        if edgehook_rows {
            // Every step, on a new object only: some steps add columns,
            // which cannot run twice.
            let fresh = sql
                .exec(
                    "SELECT name FROM sqlite_master WHERE name = 'deliveries'",
                    None,
                )
                .map(|c| c.raw().next().is_none())
                .expect("read the schema");
            if fresh {
                for stmt in edgehook_core::schema::MIGRATIONS
                    .iter()
                    .flat_map(|s| s.iter())
                {
                    sql.exec(stmt, None).expect("create edgehook's schema");
                }
            }
        } else {
            sql.exec(
                "CREATE TABLE IF NOT EXISTS deliveries (id TEXT PRIMARY KEY, received_at INTEGER NOT NULL, body BLOB NOT NULL)",
                None,
            )
            .expect("create the deliveries table");
        }
        Ledger {
            state,
            env,
            edgehook_rows,
        }
    }

    async fn fetch(&self, _req: Request) -> Result<Response> {
        json(404, r#"{"error":"rpc_only"}"#)
    }

    async fn alarm(&self) -> Result<Response> {
        Response::ok("")
    }
}

#[wasm_bindgen(
    wasm_bindgen = ::worker::wasm_bindgen,
    wasm_bindgen_futures = ::worker::wasm_bindgen_futures,
    js_sys = ::worker::js_sys
)]
impl Ledger {
    /// Inserts the delivery unless its id is known; a new one gets an alarm
    /// (the re-send guarantee) and its queue message.
    #[wasm_bindgen(js_name = admit)]
    pub async fn admit_rpc(
        &self,
        id: String,
        body: js_sys::ArrayBuffer,
    ) -> std::result::Result<bool, JsValue> {
        self.admit(id, js_sys::Uint8Array::new(&body).to_vec())
            .await
            .map_err(|e| JsValue::from_str(&e.to_string()))
    }
}

impl Ledger {
    async fn admit(&self, id: String, body: Vec<u8>) -> Result<bool> {
        let now = js_sys::Date::now() as i64;
        let storage = self.state.storage();
        let fresh = if self.edgehook_rows {
            self.insert_as_edgehook(&id, now, body)?
        } else {
            storage
                .sql()
                .exec(
                    "INSERT INTO deliveries (id, received_at, body) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING",
                    vec![
                        SqlStorageValue::String(id.clone()),
                        SqlStorageValue::Integer(now),
                        SqlStorageValue::Blob(body),
                    ],
                )?
                .rows_written()
                > 0
        };
        if fresh {
            if storage.get_alarm().await?.is_none() {
                storage.set_alarm(now + 60_000).await?;
            }
            self.env
                .queue("RUNS")?
                .send(std::collections::HashMap::from([("id", id)]))
                .await?;
        }
        Ok(fresh)
    }
}

thread_local! {
    /// The holder query, made once, as edgehook makes it.
    static FIND_HOLDER: String = edgehook_core::schema::find_holder_query();
}

impl Ledger {
    /// edgehook's admission of a new GitHub delivery with one run, statement
    /// for statement (`worker/src/ledger`): whether it was new.
    fn insert_as_edgehook(&self, id: &str, now: i64, body: Vec<u8>) -> Result<bool> {
        use edgehook_core::schema;
        use SqlStorageValue as V;
        let sql = self.state.storage().sql();
        // A GitHub delivery's dedupe key is its delivery id.
        let key = id.to_string();
        let held = FIND_HOLDER.with(|q| {
            sql.exec(
                q,
                vec![V::String(key.clone()), V::Integer(now - 86_400_000)],
            )
            .map(|c| c.raw().next().is_some())
        })?;
        if held {
            return Ok(false);
        }
        let size = edgehook_core::ingest::stored_size(STORED_HEADERS.len(), body.len()) as i64;
        let mut seq = None;
        for row in sql
            .exec(
                schema::COUNT_STORED_BYTES,
                vec![
                    V::Integer(size),
                    // The bench trigger's budget, as edgehook passes it.
                    V::Integer(edgehook_core::trigger::MAX_STORAGE_BUDGET_BYTES as i64),
                ],
            )?
            .raw()
        {
            if let [V::String(name), V::Integer(value)] = row?.as_slice() {
                if name == "seq" {
                    seq = Some(*value);
                }
            }
        }
        let seq = seq.ok_or_else(|| worker::Error::RustError("no seq counter".into()))?;
        let run_id = format!("run_{id}");
        let text = |t: &str| V::String(t.to_string());
        sql.exec(
            schema::INSERT_DELIVERY,
            vec![
                text(id),
                V::Integer(seq),
                V::Integer(now),
                text("queued"),
                V::String(key),
                text("valid"),
                text("current"),
                text("push"),
                V::Null,
                V::Null,
                V::Null,
                text(STORED_HEADERS),
                V::Integer(body.len() as i64),
                text(&run_id),
                V::Integer(0),
                V::Integer(size),
                V::Null,
            ],
        )?;
        sql.exec(
            schema::INSERT_BODY,
            vec![text(id), V::Integer(0), V::Blob(body)],
        )?;
        sql.exec(
            schema::INSERT_RUN,
            vec![
                V::String(run_id),
                text(id),
                text("queued"),
                V::Integer(now),
                V::Integer(now),
                V::Integer(now),
                V::Null,
            ],
        )?;
        Ok(true)
    }
}
