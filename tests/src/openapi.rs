//! Holds every response of the suite to `docs/openapi.json`.
//!
//! For each response the harness sees, the route (path template and method)
//! and the status must be documented, and a JSON body must validate against
//! the documented schema. The validator covers the JSON Schema subset the
//! document uses: `$ref`, `type` (including type arrays), `properties`,
//! `required`, `items`, `enum`, `const`, `oneOf`, `additionalProperties`,
//! `minimum` and `maximum`.

use std::sync::OnceLock;

use serde_json::Value;

fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let text = std::fs::read_to_string(crate::root().join("docs/openapi.json"))
            .expect("read docs/openapi.json");
        serde_json::from_str(&text).expect("docs/openapi.json is JSON")
    })
}

/// The documented path template matching `path`, if any.
pub fn template_of(path: &str) -> Option<(&'static str, &'static Value)> {
    let path = path.split('?').next().unwrap_or(path);
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let paths = spec()["paths"].as_object()?;
    paths.iter().find_map(|(tpl, item)| {
        let tsegs: Vec<&str> = tpl.trim_start_matches('/').split('/').collect();
        let matches = tsegs.len() == segs.len()
            && tsegs
                .iter()
                .zip(&segs)
                .all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s);
        matches.then_some((tpl.as_str(), item))
    })
}

/// Checks one response against the document; panics with the reason.
pub fn check(method: &str, path: &str, status: u16, content_type: Option<&str>, body: &str) {
    let Some((tpl, item)) = template_of(path) else {
        assert_eq!(
            status, 404,
            "{method} {path}: undocumented route answered {status}"
        );
        return;
    };
    let Some(op) = item.get(method.to_ascii_lowercase()) else {
        assert!(
            status == 405 || status == 404,
            "{method} {tpl}: undocumented operation answered {status}"
        );
        return;
    };
    let responses = &op["responses"];
    let Some(resp) = responses
        .get(status.to_string())
        .or_else(|| responses.get("default"))
    else {
        panic!("{method} {tpl}: status {status} is not documented (body: {body})");
    };
    let is_json = content_type.is_some_and(|c| c.starts_with("application/json"));
    if !is_json || body.is_empty() {
        return;
    }
    let Some(schema) = resp.pointer("/content/application~1json/schema") else {
        panic!("{method} {tpl}: {status} answered JSON but documents no JSON schema");
    };
    let value: Value = serde_json::from_str(body)
        .unwrap_or_else(|_| panic!("{method} {tpl}: {status} body is not JSON: {body}"));
    let mut errors = Vec::new();
    validate(schema, &value, "$", &mut errors);
    assert!(
        errors.is_empty(),
        "{method} {tpl} {status} does not match docs/openapi.json:\n  {}\nbody: {body}",
        errors.join("\n  ")
    );
}

fn resolve(schema: &Value) -> &Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.trim_start_matches('#');
            resolve(
                spec()
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling $ref {r}")),
            )
        }
        None => schema,
    }
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => true,
    }
}

/// Validates `v` against `schema`, collecting errors with their JSON path.
pub fn validate(schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(schema);
    if let Some(one_of) = schema.get("oneOf").and_then(Value::as_array) {
        let passing = one_of
            .iter()
            .filter(|s| {
                let mut e = Vec::new();
                validate(s, v, at, &mut e);
                e.is_empty()
            })
            .count();
        if passing != 1 {
            errors.push(format!("{at}: matches {passing} of oneOf"));
        }
        return;
    }
    match schema.get("type") {
        Some(Value::String(t)) if !type_ok(t, v) => {
            errors.push(format!("{at}: expected {t}, got {v}"));
            return;
        }
        Some(Value::Array(ts)) if !ts.iter().filter_map(Value::as_str).any(|t| type_ok(t, v)) => {
            errors.push(format!("{at}: expected one of {ts:?}, got {v}"));
            return;
        }
        _ => {}
    }
    if let Some(c) = schema.get("const") {
        if c != v {
            errors.push(format!("{at}: expected {c}, got {v}"));
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            errors.push(format!("{at}: {v} is not one of {e:?}"));
        }
    }
    if let (Some(min), Some(n)) = (schema.get("minimum").and_then(Value::as_f64), v.as_f64()) {
        if n < min {
            errors.push(format!("{at}: {n} < minimum {min}"));
        }
    }
    if let (Some(max), Some(n)) = (schema.get("maximum").and_then(Value::as_f64), v.as_f64()) {
        if n > max {
            errors.push(format!("{at}: {n} > maximum {max}"));
        }
    }
    if let Some(obj) = v.as_object() {
        if let Some(req) = schema.get("required").and_then(Value::as_array) {
            for r in req.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    errors.push(format!("{at}: missing required {r}"));
                }
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, val) in obj {
            match (
                props.and_then(|p| p.get(k)),
                schema.get("additionalProperties"),
            ) {
                (Some(s), _) => validate(s, val, &format!("{at}.{k}"), errors),
                (None, Some(Value::Bool(false))) => {
                    errors.push(format!("{at}: unexpected property {k}"))
                }
                (None, Some(extra)) if extra.is_object() => {
                    validate(extra, val, &format!("{at}.{k}"), errors)
                }
                _ => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            validate(items, item, &format!("{at}[{i}]"), errors);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(schema: &str, v: Value) -> Vec<String> {
        let mut e = Vec::new();
        validate(
            &json!({"$ref": format!("#/components/schemas/{schema}")}),
            &v,
            "$",
            &mut e,
        );
        e
    }

    #[test]
    fn catches_missing_fields_wrong_types_and_enums() {
        let run = json!({"run_id": "run_1", "status": "queued", "attempts": 0, "last_error": null});
        assert!(errors("Run", run.clone()).is_empty());
        let mut bad = run.clone();
        bad["status"] = json!("exploded");
        assert_eq!(errors("Run", bad).len(), 1);
        let mut bad = run.clone();
        bad.as_object_mut().map(|o| o.remove("attempts"));
        assert_eq!(
            errors("Run", bad),
            vec!["$: missing required attempts".to_string()]
        );
        let mut bad = run;
        bad["attempts"] = json!("1");
        assert_eq!(errors("Run", bad).len(), 1);
    }

    #[test]
    fn matches_templates() {
        assert_eq!(
            template_of("/api/triggers/trg_x/deliveries/dlv_y?x=1").map(|t| t.0),
            Some("/api/triggers/{trigger_id}/deliveries/{delivery_id}")
        );
        assert_eq!(template_of("/api/nope").map(|t| t.0), None);
    }

    #[test]
    #[should_panic(expected = "is not documented")]
    fn refuses_an_undocumented_status() {
        check(
            "GET",
            "/api/triggers/trg_x",
            418,
            Some("application/json"),
            "{}",
        );
    }

    #[test]
    #[should_panic(expected = "undocumented route")]
    fn refuses_an_undocumented_route_that_answers() {
        check(
            "GET",
            "/api/secret-admin",
            200,
            Some("application/json"),
            "{}",
        );
    }
}
