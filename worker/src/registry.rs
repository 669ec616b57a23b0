//! The Registry Durable Object: the list of triggers.
//!
//! Ingress never touches it; only trigger listing (the operator's and the
//! backfill's) does. Each Trigger object pushes its view here after every
//! configuration change, and its alarm retries a push that failed, so the
//! registry converges on the triggers' own state. Deleted triggers stay listed
//! with `deleted_at` (listed with `include_deleted=true`), so the backfill
//! can mark their rows. Listing is oldest first, paged by `(created_at, id)`.

use edgehook_core::query;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::json;
use worker::{durable_object, Env, Method, Request, Response, SqlStorageValue as V, State};

use crate::error::{ApiError, ApiResult};
use crate::http;
use crate::sqlrow::row;

/// The trigger registry (a single instance).
#[durable_object]
pub struct Registry {
    state: State,
    #[allow(dead_code)]
    env: Env,
}

impl worker::DurableObject for Registry {
    fn new(state: State, env: Env) -> Self {
        Registry { state, env }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        Ok(match self.route(req).await {
            Ok(resp) => resp,
            Err(e) => e.into_response(),
        })
    }
}

row! {
    struct Row {
        id: String,
        created_at: String,
        view: String,
    }
}

/// A trigger's view (`core::api::TriggerView`) as the registry keeps it: a
/// JSON object whose fields stay in their order. The registry reads only a
/// few of them and rewrites only `url`; a typed `TriggerView` reader, which
/// nothing else in the Worker needs, was 16 KB of the Wasm.
struct ViewObject(Vec<(String, serde_json::Value)>);

impl ViewObject {
    fn get(&self, name: &str) -> Option<&serde_json::Value> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    fn id_of(&self) -> String {
        self.get("id")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    fn set(&mut self, name: &str, value: serde_json::Value) {
        match self.0.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value,
            None => self.0.push((name.to_string(), value)),
        }
    }
}

impl<'de> Deserialize<'de> for ViewObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ViewObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a trigger view object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<ViewObject, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = access.next_entry()? {
                    out.push(entry);
                }
                Ok(ViewObject(out))
            }
        }
        deserializer.deserialize_map(V)
    }
}

impl Serialize for ViewObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Registry {
    fn sql(&self) -> worker::SqlStorage {
        self.state.storage().sql()
    }

    fn migrate(&self) -> ApiResult<()> {
        self.sql()
            .exec(
                "CREATE TABLE IF NOT EXISTS triggers (
                    id TEXT PRIMARY KEY,
                    created_at TEXT NOT NULL,
                    deleted INTEGER NOT NULL DEFAULT 0,
                    view TEXT NOT NULL
                )",
                None,
            )
            .map_err(|e| ApiError::internal("registry migrate", e))?;
        Ok(())
    }

    async fn route(&self, mut req: Request) -> ApiResult<Response> {
        self.migrate()?;
        let url = http::ReqUrl::of(&req);
        let path = url.path().to_string();
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (req.method(), segs.as_slice()) {
            // A view older than the stored one is ignored: pushes can arrive
            // out of order (a retry from the alarm after a newer patch), and
            // `updated_at` only moves forward.
            (Method::Put, ["triggers", id]) => {
                let body = req.bytes().await?;
                let view: ViewObject = serde_json::from_slice(&body)
                    .map_err(|e| ApiError::internal("registry body", e))?;
                let field = |name: &str| view.get(name).and_then(serde_json::Value::as_str);
                if field("id") != Some(*id) {
                    return Err(ApiError::bad_request("id mismatch"));
                }
                let created_at = field("created_at")
                    .ok_or_else(|| ApiError::bad_request("a view has a created_at"))?
                    .to_string();
                let deleted = field("deleted_at").is_some();
                let text = serde_json::to_string(&view)
                    .map_err(|e| ApiError::internal("registry json", e))?;
                self.sql()
                    .exec(
                        "INSERT INTO triggers (id, created_at, deleted, view) VALUES (?, ?, ?, ?)
                         ON CONFLICT (id) DO UPDATE SET deleted = excluded.deleted, view = excluded.view
                         WHERE json_extract(triggers.view, '$.updated_at') <= json_extract(excluded.view, '$.updated_at')",
                        vec![
                            V::String((*id).to_string()),
                            V::String(created_at),
                            V::Integer(i64::from(deleted)),
                            V::String(text),
                        ],
                    )
                    .map_err(|e| ApiError::internal("registry upsert", e))?;
                Ok(http::json(200, &json!({"ok": true})))
            }
            (Method::Get, ["triggers"]) => {
                let include_deleted =
                    http::query_param(&url, "include_deleted").as_deref() == Some("true");
                let limit = i64::from(query::limit(
                    http::query_param(&url, "limit").as_deref(),
                    100,
                    1000,
                )?);
                // Oldest first; the cursor is the last row's (created_at, id).
                let (after_at, after_id) =
                    query::trigger_cursor(http::query_param(&url, "cursor").as_deref())?
                        .unwrap_or_default();
                let rows: Vec<Row> = self
                    .sql()
                    .exec(
                        "SELECT id, created_at, view FROM triggers
                         WHERE (created_at > ? OR (created_at = ? AND id > ?)) AND (deleted = 0 OR ? = 1)
                         ORDER BY created_at, id LIMIT ?",
                        vec![
                            V::String(after_at.clone()),
                            V::String(after_at),
                            V::String(after_id),
                            V::Integer(i64::from(include_deleted)),
                            V::Integer(limit + 1),
                        ],
                    )
                    .map_err(|e| ApiError::internal("registry list", e))
                    .and_then(|c| {
                        crate::sqlrow::all(&c).map_err(|e| ApiError::internal("registry list", e))
                    })?;
                let more = rows.len() as i64 > limit;
                let rows: Vec<Row> = rows.into_iter().take(limit as usize).collect();
                let next = if more {
                    rows.last()
                        .map(|r| query::encode_trigger_cursor(&r.created_at, &r.id))
                } else {
                    None
                };
                // Ingress URLs follow the origin of the operator's request
                // (or PUBLIC_BASE_URL), which the edge passes on; a view
                // keeps the one it was stored with otherwise.
                let base = req.headers().get(crate::wire::BASE_URL)?;
                let views: Vec<ViewObject> = rows
                    .iter()
                    .filter_map(|r| edgehook_core::encoding::json_from_str(&r.view).ok())
                    .map(|mut v: ViewObject| {
                        if let Some(base) = &base {
                            v.set("url", format!("{base}/hooks/{}", v.id_of()).into());
                        }
                        v
                    })
                    .collect();
                Ok(http::json(
                    200,
                    &json!({"triggers": views, "next_cursor": next}),
                ))
            }
            _ => Err(ApiError::NotFound("route")),
        }
    }
}
