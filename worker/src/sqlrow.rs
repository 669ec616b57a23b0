//! Rows of a Durable Object's SQL cursor read as arrays and bound to row
//! types by column name.
//!
//! workers-rs's `SqlCursor::to_array` asks the runtime for every row as a JS
//! object keyed by column name and walks each object with
//! `serde-wasm-bindgen`. Building those objects is the expensive part: for a
//! change-feed page of 25 columns it took three times as long as the same
//! rows as arrays (`cursor.raw()`), and it was the largest item in the feed's
//! CPU profile. Here the column names are read once per query and each
//! row's values are matched to them in Rust, so a struct still binds by name
//! (the order of a query's columns does not matter) at the cost of arrays.
//! Row types are declared with [`row!`] ([`FromRow`] says why not serde).
//!
//! A page of many rows costs one crossing of the Wasm boundary per value
//! even so: the change feed's pages were mostly that. [`json_select`] wraps
//! a query so that SQLite itself packs every row into one JSON text, in the
//! order of the row type's columns; [`json_page`] reads that single value
//! back with `serde_json`, and [`bind`] binds its rows.

use serde::de::{self, Visitor};
use worker::{SqlCursor, SqlStorageValue};

/// Why a row could not be read.
#[derive(Debug)]
pub struct RowError(String);

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RowError {}

/// A type a query's rows are read into, each field from the column of its
/// name. Declared with [`row!`], which writes the impl from the fields.
///
/// This replaces serde's derived `Deserialize` for rows: serde's visitor
/// for each row type, inlined into a deserializer of its own, was 33 KB of
/// the Wasm for some thirty row types. Here the binding by name is done
/// once per query by code shared by every type ([`arrange`]), and a type's
/// own code is one call per field ([`Row::take`]).
pub trait FromRow: Sized {
    /// The type's fields, which are the columns it reads, in order.
    const COLUMNS: &'static [&'static str];

    /// Reads one row whose values come in `COLUMNS`' order.
    fn from_row(row: &mut Row) -> Result<Self, RowError>;
}

/// Declares a struct and its [`FromRow`] impl: each field is read from the
/// column of its name, as a [`Column`] type (text, integer, or either of
/// them or null).
macro_rules! row {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $( $(#[$fmeta])* $fvis $field: $ty ),*
        }

        impl $crate::sqlrow::FromRow for $name {
            const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),*];

            fn from_row(row: &mut $crate::sqlrow::Row) -> Result<Self, $crate::sqlrow::RowError> {
                let value = $name { $( $field: row.take() ),* };
                match row.error() {
                    Some(e) => Err(e),
                    None => Ok(value),
                }
            }
        }
    };
}
pub(crate) use row;

/// One row's values, in its type's column order, taken field by field.
pub struct Row {
    values: std::vec::IntoIter<SqlStorageValue>,
    columns: std::slice::Iter<'static, &'static str>,
    error: Option<RowError>,
}

impl Row {
    fn new(values: Vec<SqlStorageValue>, columns: &'static [&'static str]) -> Row {
        Row {
            values: values.into_iter(),
            columns: columns.iter(),
            error: None,
        }
    }

    /// The next field's value. A column the query did not answer reads as
    /// null: an optional field is then `None`. A value the field cannot
    /// hold gives its type's default here and is reported by
    /// [`Row::error`]. (A `?` on each field instead would make the row
    /// type's code drop every field read so far at each of them.)
    pub fn take<T: Column + Default>(&mut self) -> T {
        let column = self.columns.next().copied().unwrap_or("?");
        let value = self.values.next().unwrap_or(SqlStorageValue::Null);
        match T::from_value(value, column) {
            Ok(v) => v,
            Err(e) => {
                self.error.get_or_insert(e);
                T::default()
            }
        }
    }

    /// The first field that could not be read, if one could not.
    pub fn error(&mut self) -> Option<RowError> {
        self.error.take()
    }
}

/// A field type a row can hold.
pub trait Column: Sized {
    /// Reads `value`, the value of `column`.
    fn from_value(value: SqlStorageValue, column: &str) -> Result<Self, RowError>;
}

/// Why `value` is not the `expected` kind of `column`'s field.
fn mismatch(column: &str, expected: &str, value: &SqlStorageValue) -> RowError {
    let found = match value {
        SqlStorageValue::Null => "null (or no such column)",
        SqlStorageValue::Boolean(_) => "a boolean",
        SqlStorageValue::Integer(_) => "an integer",
        SqlStorageValue::Float(_) => "a real",
        SqlStorageValue::String(_) => "text",
        SqlStorageValue::Blob(_) => "a blob",
    };
    RowError(format!(
        "column `{column}`: expected {expected}, found {found}"
    ))
}

impl Column for String {
    fn from_value(value: SqlStorageValue, column: &str) -> Result<Self, RowError> {
        match value {
            SqlStorageValue::String(s) => Ok(s),
            other => Err(mismatch(column, "text", &other)),
        }
    }
}

impl Column for i64 {
    fn from_value(value: SqlStorageValue, column: &str) -> Result<Self, RowError> {
        match value {
            SqlStorageValue::Integer(n) => Ok(n),
            other => Err(mismatch(column, "an integer", &other)),
        }
    }
}

impl<T: Column> Column for Option<T> {
    fn from_value(value: SqlStorageValue, column: &str) -> Result<Self, RowError> {
        match value {
            SqlStorageValue::Null => Ok(None),
            other => T::from_value(other, column).map(Some),
        }
    }
}

/// Where each of `wanted` is among a query's column `names`, if it is.
fn positions(names: &[String], wanted: &[&str]) -> Vec<Option<usize>> {
    wanted
        .iter()
        .map(|w| names.iter().position(|n| n == w))
        .collect()
}

/// A row's `values` put in the order `positions` gives, a missing column as
/// null. (Columns no field names are dropped, as serde dropped unknown
/// fields.)
fn arrange(mut values: Vec<SqlStorageValue>, positions: &[Option<usize>]) -> Vec<SqlStorageValue> {
    let in_order =
        positions.len() == values.len() && positions.iter().enumerate().all(|(n, p)| *p == Some(n));
    if in_order {
        return values;
    }
    positions
        .iter()
        .map(|p| {
            p.and_then(|n| values.get_mut(n))
                .map_or(SqlStorageValue::Null, |v| {
                    std::mem::replace(v, SqlStorageValue::Null)
                })
        })
        .collect()
}

/// Every remaining row of `cursor`, its values in the order of `columns`
/// (matched by name), for a [`FromRow`] type to read. Not generic, so one
/// copy serves every row type.
pub fn all_values(
    cursor: &SqlCursor,
    columns: &[&str],
) -> Result<Vec<Vec<SqlStorageValue>>, RowError> {
    let positions = positions(&cursor.column_names(), columns);
    cursor
        .raw()
        .map(|row| {
            row.map(|values| arrange(values, &positions))
                .map_err(|e| RowError(e.to_string()))
        })
        .collect()
}

/// Rows in `T`'s column order read as `T`s.
pub fn bind<T: FromRow>(rows: Vec<Vec<SqlStorageValue>>) -> Result<Vec<T>, RowError> {
    rows.into_iter()
        .map(|values| T::from_row(&mut Row::new(values, T::COLUMNS)))
        .collect()
}

/// Every remaining row of `cursor` as a `T`, bound by column name.
pub fn all<T: FromRow>(cursor: &SqlCursor) -> Result<Vec<T>, RowError> {
    bind(all_values(cursor, T::COLUMNS)?)
}

/// `query`, whose columns are named `fields`, wrapped so that it answers
/// one row of one column: a JSON array of its rows, each an array of those
/// columns in that order, in the query's order. (SQLite aggregates a
/// subquery's rows in the order the subquery yields them.) Blob columns
/// cannot be read this way: JSON holds no blobs.
pub fn json_select(fields: &[&str], query: &str) -> String {
    let mut out = String::with_capacity(query.len() + 64 + fields.len() * 16);
    out.push_str("SELECT json_group_array(json_array(");
    for (n, f) in fields.iter().enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        out.push_str("q.");
        out.push_str(f);
    }
    out.push_str(")) FROM (");
    out.push_str(query);
    out.push_str(") q");
    out
}

/// The rows a [`json_select`] query answered, each row's values in the
/// order of the fields it named. (The page is read into column values by one
/// small visitor, rather than straight into a row type: that would add a
/// JSON deserializer for each row type to the Wasm, 11 KB gzipped for three.
/// Reading it through a `serde_json::Value` tree first cost a tenth of the
/// change feed's CPU.)
pub fn json_page(cursor: &SqlCursor) -> Result<Vec<Vec<SqlStorageValue>>, RowError> {
    let row = cursor
        .raw()
        .next()
        .ok_or_else(|| RowError("a JSON page query answered no row".into()))?
        .map_err(|e| RowError(e.to_string()))?;
    let Some(SqlStorageValue::String(text)) = row.into_iter().next() else {
        return Err(RowError("a JSON page query answered no text".into()));
    };
    parse_json_page(&text)
}

/// A JSON array of arrays of values, each array a row.
fn parse_json_page(text: &str) -> Result<Vec<Vec<SqlStorageValue>>, RowError> {
    let rows: Vec<Vec<PageValue>> = edgehook_core::encoding::json_from_str(text)
        .map_err(|e| RowError(format!("a JSON page: {e}")))?;
    // A newtype's vector is collected in place: no copy of a row.
    Ok(rows
        .into_iter()
        .map(|row| row.into_iter().map(|PageValue(v)| v).collect())
        .collect())
}

/// One column's value in a JSON page: null, a boolean, a number or a string.
struct PageValue(SqlStorageValue);

impl<'de> de::Deserialize<'de> for PageValue {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Scalar;
        impl Visitor<'_> for Scalar {
            type Value = PageValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a column's value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<PageValue, E> {
                Ok(PageValue(SqlStorageValue::Null))
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<PageValue, E> {
                Ok(PageValue(SqlStorageValue::Boolean(b)))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<PageValue, E> {
                Ok(PageValue(SqlStorageValue::Integer(n)))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<PageValue, E> {
                Ok(PageValue(match i64::try_from(n) {
                    Ok(i) => SqlStorageValue::Integer(i),
                    Err(_) => SqlStorageValue::Float(n as f64),
                }))
            }
            fn visit_f64<E: de::Error>(self, x: f64) -> Result<PageValue, E> {
                Ok(PageValue(SqlStorageValue::Float(x)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PageValue, E> {
                Ok(PageValue(SqlStorageValue::String(s.to_string())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<PageValue, E> {
                Ok(PageValue(SqlStorageValue::String(s)))
            }
        }
        deserializer.deserialize_any(Scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    row! {
        #[derive(Debug, PartialEq)]
        struct Page {
            id: String,
            seq: i64,
            headers: Option<String>,
        }
    }

    fn text(s: &str) -> SqlStorageValue {
        SqlStorageValue::String(s.to_string())
    }

    /// What `all` does with a cursor of `names` and `rows`.
    fn read(names: &[&str], rows: Vec<Vec<SqlStorageValue>>) -> Result<Vec<Page>, RowError> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let positions = positions(&names, Page::COLUMNS);
        bind(rows.into_iter().map(|r| arrange(r, &positions)).collect())
    }

    #[test]
    fn a_row_types_columns_are_its_fields_in_order() {
        assert_eq!(Page::COLUMNS, &["id", "seq", "headers"]);
    }

    #[test]
    fn each_field_is_read_from_the_column_of_its_name_whatever_their_order() {
        let rows = read(
            &["seq", "extra", "headers", "id"],
            vec![vec![
                SqlStorageValue::Integer(7),
                text("ignored"),
                text("[]"),
                text("dlv_1"),
            ]],
        )
        .expect("a row");
        assert_eq!(
            rows,
            vec![Page {
                id: "dlv_1".into(),
                seq: 7,
                headers: Some("[]".into())
            }]
        );
    }

    #[test]
    fn an_optional_field_is_none_for_null_or_a_column_not_answered() {
        let null = read(
            &["id", "seq", "headers"],
            vec![vec![
                text("a"),
                SqlStorageValue::Integer(1),
                SqlStorageValue::Null,
            ]],
        )
        .expect("a row with null");
        assert_eq!(null[0].headers, None);
        let absent = read(
            &["id", "seq"],
            vec![vec![text("a"), SqlStorageValue::Integer(1)]],
        )
        .expect("a row without the column");
        assert_eq!(absent[0].headers, None);
    }

    #[test]
    fn a_required_field_that_is_missing_or_of_another_type_is_an_error_naming_it() {
        let missing = read(&["id"], vec![vec![text("a")]]).expect_err("no seq");
        assert!(missing.to_string().contains("`seq`"), "{missing}");
        let wrong = read(
            &["id", "seq"],
            vec![vec![text("a"), SqlStorageValue::Float(1.5)]],
        )
        .expect_err("a real seq");
        assert!(
            wrong
                .to_string()
                .contains("`seq`: expected an integer, found a real"),
            "{wrong}"
        );
        let wrong = read(
            &["id", "seq", "headers"],
            vec![vec![
                SqlStorageValue::Integer(3),
                SqlStorageValue::Integer(1),
                SqlStorageValue::Null,
            ]],
        )
        .expect_err("an integer id");
        assert!(wrong.to_string().contains("`id`: expected text"), "{wrong}");
    }

    fn from_json_page(text: &str) -> Result<Vec<Page>, RowError> {
        bind(parse_json_page(text)?)
    }

    #[test]
    fn a_page_query_is_wrapped_to_give_each_row_as_an_array_in_field_order() {
        assert_eq!(
            json_select(Page::COLUMNS, "SELECT headers, id, seq FROM t ORDER BY seq"),
            "SELECT json_group_array(json_array(q.id, q.seq, q.headers)) \
             FROM (SELECT headers, id, seq FROM t ORDER BY seq) q"
        );
    }

    #[test]
    fn a_json_page_binds_each_value_to_its_field() {
        let rows: Vec<Page> =
            from_json_page(r#"[["dlv_1",7,null],["dlv_2",8,"[[\"a\",\"b\"]]"]]"#).expect("a page");
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].id.as_str(), rows[0].seq), ("dlv_1", 7));
        assert_eq!(rows[0].headers, None);
        assert_eq!(rows[1].headers.as_deref(), Some(r#"[["a","b"]]"#));
        assert!(from_json_page("[]").expect("an empty page").is_empty());
    }

    #[test]
    fn a_malformed_json_page_is_an_error_not_a_panic() {
        for text in [
            "",
            "{}",
            "[1]",
            r#"[["dlv_1"]]"#,
            r#"[["dlv_1","x",null]]"#,
            r#"[[{},1,null]]"#,
        ] {
            assert!(from_json_page(text).is_err(), "{text}");
        }
    }
}
