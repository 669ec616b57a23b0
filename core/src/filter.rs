//! Content filters: which deliveries a route receives.
//!
//! A filter is JSON with up to four sections, `body`, `headers`, `query` and
//! `path`, each matched against the same part of the delivery:
//!
//! ```json
//! {"body": {"action": "opened", "pull_request": {"draft": false},
//!           "repository": {"full_name": {"$startsWith": "acme/"}}},
//!  "headers": {"x-github-event": {"$in": ["pull_request", "push"]}}}
//! ```
//!
//! The rules, all in [`Filter::matches`]:
//!
//! - **Partial nested matching.** An object in the filter matches an object in
//!   the input that has at least its keys, each matching. Other keys of the
//!   input are ignored.
//! - **A key missing from the input does not match**, whatever the filter says
//!   about it, except `{"$exist": false}` (and `$and`/`$or` of such).
//! - **Scalars match by equality**, and a scalar also matches an array that
//!   contains it; an object (without operators) matches an array with an
//!   element it matches. A filter array matches an input array holding a match
//!   for each of its elements.
//! - **Numbers compare numerically** (`1` equals `1.0`); **strings compare
//!   lexicographically**, so RFC 3339 times in UTC order correctly. A value of
//!   another type than the operand never matches.
//! - Operators: `$eq $neq $gt $gte $lt $lte $in $nin $startsWith $endsWith
//!   $exist $and $or $not`. Any other key starting with `$` is an error.
//!
//! Filters are checked when a route is saved ([`Filter::parse`]): at most
//! [`MAX_FILTER_DEPTH`] levels, [`MAX_FILTER_NODES`] values and
//! [`MAX_FILTER_BYTES`] of JSON; every error names the field at fault
//! (`filter.body.action.$foo`). Evaluation never panics and is linear in
//! the filter's size times the largest array it meets.

use std::cmp::Ordering;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::headers::HeaderList;

/// Deepest nesting of a filter (objects, arrays and operators).
pub const MAX_FILTER_DEPTH: usize = 10;
/// Most JSON values in a filter.
pub const MAX_FILTER_NODES: usize = 512;
/// Largest filter, as compact JSON.
pub const MAX_FILTER_BYTES: usize = 16 * 1024;
/// The sections a filter may have.
pub const SECTIONS: [&str; 4] = ["body", "headers", "query", "path"];

/// A filter that cannot be saved, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// The path to the field, e.g. `filter.body.action.$foo`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FilterError {}

/// One operator with its operand.
#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq(Value),
    Neq(Value),
    Cmp(Ordering, bool, Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    StartsWith(String),
    EndsWith(String),
    Exist(bool),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
}

/// One condition of an object node.
#[derive(Debug, Clone, PartialEq)]
enum Cond {
    Field(String, Node),
    Op(Op),
}

/// A compiled filter value.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// A scalar (or null): equality, or containment in an input array.
    Literal(Value),
    /// Every element matches some element of the input array.
    Array(Vec<Node>),
    /// Every condition holds.
    Object(Vec<Cond>),
}

/// A validated, compiled filter. It serialises as the JSON it was parsed
/// from.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    raw: Value,
    sections: Vec<(Section, Node)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Body,
    Headers,
    Query,
    Path,
}

/// What a filter is matched against.
#[derive(Debug, Clone, Default)]
pub struct FilterInput {
    /// The body: its JSON, a form's fields as an object, the text of any
    /// other UTF-8 body; `None` for a binary body.
    pub body: Option<Value>,
    /// Header names (lower case) to values; repeated headers are joined with
    /// `, `.
    pub headers: Value,
    /// Query parameters to values (the last one wins).
    pub query: Value,
    /// The request path, e.g. `/hooks/trg_…`.
    pub path: Value,
}

impl FilterInput {
    /// Builds the input from a delivery's parts. `headers` should be the
    /// stored (redacted) headers, so a filter sees what an operator sees.
    pub fn new(headers: &HeaderList, body: &[u8], path_and_query: &str) -> FilterInput {
        let mut h = Map::new();
        for (name, value) in headers.iter() {
            let name = name.to_ascii_lowercase();
            match h.get_mut(&name) {
                Some(Value::String(existing)) => {
                    existing.push_str(", ");
                    existing.push_str(value);
                }
                _ => {
                    h.insert(name, Value::String(value.to_string()));
                }
            }
        }
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let mut q = Map::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            q.insert(k.into_owned(), Value::String(v.into_owned()));
        }
        FilterInput {
            body: body_value(headers.get("content-type"), body),
            headers: Value::Object(h),
            query: Value::Object(q),
            path: Value::String(path.to_string()),
        }
    }
}

/// Substrings of query parameter names whose values are not stored.
const SECRET_PARAM_PARTS: &[&str] = &[
    "token", "key", "secret", "sig", "password", "auth", "code", "session",
];

/// A query string as the ledger keeps it: values of parameters whose names
/// look like credentials are replaced by `[redacted]`, so a token passed in a
/// webhook URL never reaches a response.
pub fn redact_query(query: &str) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let lower = k.to_ascii_lowercase();
        if SECRET_PARAM_PARTS.iter().any(|p| lower.contains(p)) {
            out.append_pair(&k, crate::headers::REDACTED);
        } else {
            out.append_pair(&k, &v);
        }
    }
    out.finish()
}

/// The body as a filter sees it.
fn body_value(content_type: Option<&str>, body: &[u8]) -> Option<Value> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Some(v);
    }
    let form = content_type.is_some_and(|ct| {
        ct.split(';').next().is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    });
    if form {
        let mut fields = Map::new();
        for (k, v) in form_urlencoded::parse(body) {
            let v = v.into_owned();
            // A form's JSON field (GitHub's and Slack's `payload`) is
            // matched as JSON.
            let value = crate::encoding::json_from_str::<Value>(&v)
                .ok()
                .filter(|j| j.is_object() || j.is_array())
                .unwrap_or(Value::String(v));
            fields.insert(k.into_owned(), value);
        }
        return Some(Value::Object(fields));
    }
    std::str::from_utf8(body)
        .ok()
        .map(|s| Value::String(s.to_string()))
}

struct Parser {
    nodes: usize,
}

fn err(field: &str, message: impl Into<String>) -> FilterError {
    FilterError {
        field: field.to_string(),
        message: message.into(),
    }
}

impl Parser {
    fn node(&mut self, v: &Value, path: &str, depth: usize) -> Result<Node, FilterError> {
        self.nodes += 1;
        if self.nodes > MAX_FILTER_NODES {
            return Err(err(
                path,
                format!("the filter has more than {MAX_FILTER_NODES} values"),
            ));
        }
        if depth > MAX_FILTER_DEPTH {
            return Err(err(
                path,
                format!("the filter is nested deeper than {MAX_FILTER_DEPTH} levels"),
            ));
        }
        match v {
            Value::Array(items) => Ok(Node::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.node(item, &format!("{path}[{i}]"), depth + 1))
                    .collect::<Result<_, _>>()?,
            )),
            Value::Object(map) => {
                let mut conds = Vec::with_capacity(map.len());
                for (key, value) in map {
                    let here = format!("{path}.{key}");
                    if key.starts_with('$') {
                        conds.push(Cond::Op(self.op(key, value, &here, depth + 1)?));
                    } else {
                        conds.push(Cond::Field(
                            key.clone(),
                            self.node(value, &here, depth + 1)?,
                        ));
                    }
                }
                Ok(Node::Object(conds))
            }
            scalar => Ok(Node::Literal(scalar.clone())),
        }
    }

    fn scalars(&mut self, v: &Value, path: &str) -> Result<Vec<Value>, FilterError> {
        let Value::Array(items) = v else {
            return Err(err(path, "must be an array of values"));
        };
        self.nodes += items.len();
        if self.nodes > MAX_FILTER_NODES {
            return Err(err(
                path,
                format!("the filter has more than {MAX_FILTER_NODES} values"),
            ));
        }
        if items.iter().any(|i| i.is_object() || i.is_array()) {
            return Err(err(path, "must hold strings, numbers, booleans or null"));
        }
        Ok(items.clone())
    }

    fn nodes_list(
        &mut self,
        v: &Value,
        path: &str,
        depth: usize,
    ) -> Result<Vec<Node>, FilterError> {
        match v {
            Value::Array(items) if !items.is_empty() => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.node(item, &format!("{path}[{i}]"), depth + 1))
                .collect(),
            _ => Err(err(path, "must be a non-empty array of filters")),
        }
    }

    fn op(&mut self, key: &str, v: &Value, path: &str, depth: usize) -> Result<Op, FilterError> {
        let comparable = |v: &Value| -> Result<Value, FilterError> {
            if v.is_number() || v.is_string() {
                Ok(v.clone())
            } else {
                Err(err(path, "must be a number or a string"))
            }
        };
        let string = |v: &Value| -> Result<String, FilterError> {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| err(path, "must be a string"))
        };
        Ok(match key {
            "$eq" => Op::Eq(self.operand(v, path, depth)?),
            "$neq" => Op::Neq(self.operand(v, path, depth)?),
            "$gt" => Op::Cmp(Ordering::Greater, false, comparable(v)?),
            "$gte" => Op::Cmp(Ordering::Greater, true, comparable(v)?),
            "$lt" => Op::Cmp(Ordering::Less, false, comparable(v)?),
            "$lte" => Op::Cmp(Ordering::Less, true, comparable(v)?),
            "$in" => Op::In(self.scalars(v, path)?),
            "$nin" => Op::Nin(self.scalars(v, path)?),
            "$startsWith" => Op::StartsWith(string(v)?),
            "$endsWith" => Op::EndsWith(string(v)?),
            "$exist" => Op::Exist(v.as_bool().ok_or_else(|| err(path, "must be true or false"))?),
            "$and" => Op::And(self.nodes_list(v, path, depth)?),
            "$or" => Op::Or(self.nodes_list(v, path, depth)?),
            "$not" => Op::Not(Box::new(self.node(v, path, depth)?)),
            other => {
                return Err(err(
                    path,
                    format!(
                        "unknown operator {other}; use one of $eq $neq $gt $gte $lt $lte $in $nin $startsWith $endsWith $exist $and $or $not"
                    ),
                ))
            }
        })
    }

    /// The operand of `$eq`/`$neq`: any JSON value, counted towards the size.
    fn operand(&mut self, v: &Value, path: &str, depth: usize) -> Result<Value, FilterError> {
        // Parsed only to count and bound it; equality uses the value itself.
        if v.is_object() || v.is_array() {
            self.node(v, path, depth)?;
        }
        Ok(v.clone())
    }
}

impl Filter {
    /// Validates and compiles `v`, the `filter` field of a route.
    pub fn parse(v: &Value) -> Result<Filter, FilterError> {
        let Value::Object(map) = v else {
            return Err(err(
                "filter",
                "must be an object with body, headers, query or path",
            ));
        };
        let size = serde_json::to_vec(v).map_or(usize::MAX, |b| b.len());
        if size > MAX_FILTER_BYTES {
            return Err(err(
                "filter",
                format!("must be at most {MAX_FILTER_BYTES} bytes of JSON"),
            ));
        }
        let mut parser = Parser { nodes: 0 };
        let mut sections = Vec::new();
        for (key, value) in map {
            let section = match key.as_str() {
                "body" => Section::Body,
                "headers" => Section::Headers,
                "query" => Section::Query,
                "path" => Section::Path,
                _ => {
                    return Err(err(
                        &format!("filter.{key}"),
                        "unknown section; use body, headers, query or path",
                    ))
                }
            };
            let mut node = parser.node(value, &format!("filter.{key}"), 1)?;
            if section == Section::Headers {
                node = lowercase_fields(node);
            }
            sections.push((section, node));
        }
        Ok(Filter {
            raw: v.clone(),
            sections,
        })
    }

    /// The filter as given.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// Whether `input` passes every section of the filter.
    pub fn matches(&self, input: &FilterInput) -> bool {
        self.sections.iter().all(|(section, node)| {
            let value = match section {
                Section::Body => input.body.as_ref(),
                Section::Headers => Some(&input.headers),
                Section::Query => Some(&input.query),
                Section::Path => Some(&input.path),
            };
            eval(node, value)
        })
    }

    /// Whether the filter reads the body (if not, callers may skip parsing it).
    pub fn reads_body(&self) -> bool {
        self.sections.iter().any(|(s, _)| *s == Section::Body)
    }
}

/// Header names are case-insensitive: the filter's top-level field names
/// are lowered to match the input's.
fn lowercase_fields(node: Node) -> Node {
    match node {
        Node::Object(conds) => Node::Object(
            conds
                .into_iter()
                .map(|c| match c {
                    Cond::Field(k, n) => Cond::Field(k.to_ascii_lowercase(), n),
                    Cond::Op(Op::And(ns)) => {
                        Cond::Op(Op::And(ns.into_iter().map(lowercase_fields).collect()))
                    }
                    Cond::Op(Op::Or(ns)) => {
                        Cond::Op(Op::Or(ns.into_iter().map(lowercase_fields).collect()))
                    }
                    Cond::Op(Op::Not(n)) => Cond::Op(Op::Not(Box::new(lowercase_fields(*n)))),
                    other => other,
                })
                .collect(),
        ),
        other => other,
    }
}

impl Serialize for Filter {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Filter, D::Error> {
        let v = Value::deserialize(d)?;
        Filter::parse(&v).map_err(serde::de::Error::custom)
    }
}

/// Equality of JSON values, numbers by value.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// `input` equals `want`, or (for a non-array `want`) is an array holding it.
fn eq_or_contains(input: &Value, want: &Value) -> bool {
    if json_eq(input, want) {
        return true;
    }
    match input {
        Value::Array(items) if !want.is_array() => items.iter().any(|i| json_eq(i, want)),
        _ => false,
    }
}

/// Orders two values of the same comparable type; `None` for a mismatch.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.as_str().cmp(y.as_str())),
        _ => None,
    }
}

/// Applies `test` to a scalar input, or to any element of an array input.
fn any_scalar(input: &Value, test: impl Fn(&Value) -> bool) -> bool {
    match input {
        Value::Array(items) => items.iter().any(test),
        other => test(other),
    }
}

fn eval(node: &Node, input: Option<&Value>) -> bool {
    match node {
        Node::Literal(want) => input.is_some_and(|v| eq_or_contains(v, want)),
        Node::Array(wants) => match input {
            Some(Value::Array(items)) => wants
                .iter()
                .all(|w| items.iter().any(|item| eval(w, Some(item)))),
            _ => false,
        },
        Node::Object(conds) => {
            let has_fields = conds.iter().any(|c| matches!(c, Cond::Field(..)));
            match input {
                // An object with fields matches an array through any element.
                Some(Value::Array(items)) if has_fields => {
                    items.iter().any(|item| eval_conds(conds, Some(item)))
                }
                // `{}` asks only that the value be there.
                None if conds.is_empty() => false,
                other => eval_conds(conds, other),
            }
        }
    }
}

fn eval_conds(conds: &[Cond], input: Option<&Value>) -> bool {
    conds.iter().all(|c| match c {
        Cond::Field(key, sub) => match input {
            Some(Value::Object(map)) => eval(sub, map.get(key)),
            // The field of a missing value is missing too (only `$exist:
            // false` matches it); a field of a scalar never matches.
            None => eval(sub, None),
            Some(_) => false,
        },
        Cond::Op(op) => eval_op(op, input),
    })
}

fn eval_op(op: &Op, input: Option<&Value>) -> bool {
    let Some(v) = input else {
        // A missing key matches nothing but `$exist: false` and the
        // combinations of it.
        return match op {
            Op::Exist(want) => !want,
            Op::And(nodes) => nodes.iter().all(|n| eval(n, None)),
            Op::Or(nodes) => nodes.iter().any(|n| eval(n, None)),
            _ => false,
        };
    };
    match op {
        Op::Eq(want) => eq_or_contains(v, want),
        Op::Neq(want) => !eq_or_contains(v, want),
        Op::Cmp(ord, or_equal, want) => any_scalar(v, |x| {
            compare(x, want).is_some_and(|o| o == *ord || (*or_equal && o == Ordering::Equal))
        }),
        Op::In(list) => any_scalar(v, |x| list.iter().any(|w| json_eq(x, w))),
        Op::Nin(list) => !any_scalar(v, |x| list.iter().any(|w| json_eq(x, w))),
        Op::StartsWith(prefix) => any_scalar(v, |x| {
            x.as_str().is_some_and(|s| s.starts_with(prefix.as_str()))
        }),
        Op::EndsWith(suffix) => any_scalar(v, |x| {
            x.as_str().is_some_and(|s| s.ends_with(suffix.as_str()))
        }),
        Op::Exist(want) => *want,
        Op::And(nodes) => nodes.iter().all(|n| eval(n, Some(v))),
        Op::Or(nodes) => nodes.iter().any(|n| eval(n, Some(v))),
        Op::Not(node) => !eval(node, Some(v)),
    }
}

#[cfg(test)]
mod tests;
