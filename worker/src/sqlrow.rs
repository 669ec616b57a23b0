//! Rows of a Durable Object's SQL cursor read as arrays and deserialized by
//! column name.
//!
//! workers-rs's `SqlCursor::to_array` asks the runtime for every row as a JS
//! object keyed by column name and walks each object with
//! `serde-wasm-bindgen`. Building those objects is the expensive part: for a
//! change-feed page of 25 columns it took three times as long as the same
//! rows as arrays (`cursor.raw()`), and it was the largest item in the feed's
//! CPU profile. Here the column names are read once per query and each
//! row's values are matched to them in Rust, so a struct still binds by name
//! (the order of a query's columns does not matter) at the cost of arrays.
//!
//! A page of many rows costs one crossing of the Wasm boundary per value
//! even so: the change feed's pages were mostly that. [`json_select`] wraps
//! a query so that SQLite itself packs every row into one JSON text, named
//! by the struct's own fields ([`field_names`]); [`JsonPage`] reads that
//! single value back with `serde_json`, and [`bind_all`] binds its rows.

use serde::de::value::{SeqDeserializer, StringDeserializer};
use serde::de::{self, DeserializeOwned, IntoDeserializer, MapAccess, Visitor};
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

impl de::Error for RowError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        RowError(msg.to_string())
    }
}

/// Every remaining row of `cursor` as a `T`, bound by column name.
pub fn all<T: DeserializeOwned>(cursor: &SqlCursor) -> Result<Vec<T>, RowError> {
    let names = cursor.column_names();
    let mut out = Vec::new();
    for row in cursor.raw() {
        let values = row.map_err(|e| RowError(e.to_string()))?;
        out.push(T::deserialize(RowDeserializer {
            names: &names,
            values,
        })?);
    }
    Ok(out)
}

/// The names of `T`'s fields, in order: what its derived `Deserialize`
/// asks a deserializer for (a struct with renamed or flattened fields has
/// no such fixed list and gets `None`).
pub fn field_names<'de, T: de::Deserialize<'de>>() -> Option<&'static [&'static str]> {
    /// Records the field list `deserialize_struct` is called with, then
    /// stops the deserialization.
    struct Names<'a>(&'a mut Option<&'static [&'static str]>);

    impl<'de> de::Deserializer<'de> for Names<'_> {
        type Error = RowError;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, RowError> {
            Err(RowError("not a struct".into()))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, RowError> {
            *self.0 = Some(fields);
            Err(RowError("names only".into()))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    let mut names = None;
    let _ = T::deserialize(Names(&mut names));
    names
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

/// The rows a [`json_select`] query answered, as values named by column.
/// (The page is read into column values by one small visitor, rather than
/// straight into a row type: that would add a JSON deserializer for each row
/// type to the Wasm, 11 KB gzipped for three. Reading it through a
/// `serde_json::Value` tree first cost a tenth of the change feed's CPU.)
pub struct JsonPage {
    names: Vec<String>,
    rows: Vec<Vec<SqlStorageValue>>,
}

impl JsonPage {
    /// Reads the one value a [`json_select`] over `fields` answered.
    pub fn read(cursor: &SqlCursor, fields: &[&str]) -> Result<JsonPage, RowError> {
        let row = cursor
            .raw()
            .next()
            .ok_or_else(|| RowError("a JSON page query answered no row".into()))?
            .map_err(|e| RowError(e.to_string()))?;
        let Some(SqlStorageValue::String(text)) = row.into_iter().next() else {
            return Err(RowError("a JSON page query answered no text".into()));
        };
        JsonPage::parse(&text, fields)
    }

    /// A JSON array of arrays of values, each array a row of `fields`.
    fn parse(text: &str, fields: &[&str]) -> Result<JsonPage, RowError> {
        let rows: Vec<Vec<PageValue>> = edgehook_core::encoding::json_from_str(text)
            .map_err(|e| RowError(format!("a JSON page: {e}")))?;
        Ok(JsonPage {
            names: fields.iter().map(|f| (*f).to_string()).collect(),
            // A newtype's vector is collected in place: no copy of a row.
            rows: rows
                .into_iter()
                .map(|row| row.into_iter().map(|PageValue(v)| v).collect())
                .collect(),
        })
    }
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

/// Every row of `page` as a `T`, bound by name as [`all`] binds them.
pub fn bind_all<T: DeserializeOwned>(page: JsonPage) -> Result<Vec<T>, RowError> {
    let names = page.names;
    page.rows
        .into_iter()
        .map(|values| {
            T::deserialize(RowDeserializer {
                names: &names,
                values,
            })
        })
        .collect()
}

/// One row: a map from column name to value.
struct RowDeserializer<'a> {
    names: &'a [String],
    values: Vec<SqlStorageValue>,
}

impl<'de> de::Deserializer<'de> for RowDeserializer<'_> {
    type Error = RowError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RowError> {
        visitor.visit_map(RowAccess {
            names: self.names.iter(),
            values: self.values.into_iter(),
            next: None,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct RowAccess<'a> {
    names: std::slice::Iter<'a, String>,
    values: std::vec::IntoIter<SqlStorageValue>,
    next: Option<SqlStorageValue>,
}

impl<'de> MapAccess<'de> for RowAccess<'_> {
    type Error = RowError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, RowError> {
        match (self.names.next(), self.values.next()) {
            (Some(name), Some(value)) => {
                self.next = Some(value);
                seed.deserialize(name.as_str().into_deserializer())
                    .map(Some)
            }
            _ => Ok(None),
        }
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, RowError> {
        let value = self.next.take().unwrap_or(SqlStorageValue::Null);
        seed.deserialize(ValueDeserializer(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.values.len())
    }
}

/// One column's value.
struct ValueDeserializer(SqlStorageValue);

impl<'de> de::Deserializer<'de> for ValueDeserializer {
    type Error = RowError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RowError> {
        match self.0 {
            SqlStorageValue::Null => visitor.visit_unit(),
            SqlStorageValue::Boolean(b) => visitor.visit_bool(b),
            SqlStorageValue::Integer(n) => visitor.visit_i64(n),
            SqlStorageValue::Float(x) => visitor.visit_f64(x),
            SqlStorageValue::String(s) => visitor.visit_string(s),
            SqlStorageValue::Blob(b) => visitor.visit_byte_buf(b),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RowError> {
        match self.0 {
            SqlStorageValue::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    /// A `Vec<u8>` asks for a sequence; a blob is one.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RowError> {
        match self.0 {
            SqlStorageValue::Blob(b) => visitor.visit_seq(SeqDeserializer::new(b.into_iter())),
            _ => self.deserialize_any(visitor),
        }
    }

    /// A unit variant stored as its name.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, RowError> {
        match self.0 {
            SqlStorageValue::String(s) => {
                visitor.visit_enum(StringDeserializer::<RowError>::new(s))
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, RowError> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple tuple_struct map struct identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Page {
        id: String,
        seq: i64,
        headers: Option<String>,
    }

    #[test]
    fn a_structs_field_names_are_read_from_its_deserialize() {
        assert_eq!(field_names::<Page>(), Some(&["id", "seq", "headers"][..]));
        assert_eq!(field_names::<String>(), None);
    }

    fn from_json_page(text: &str) -> Result<Vec<Page>, RowError> {
        let fields = field_names::<Page>().unwrap_or_default();
        bind_all(JsonPage::parse(text, fields)?)
    }

    #[test]
    fn a_page_query_is_wrapped_to_give_each_row_as_an_array_in_field_order() {
        let fields = field_names::<Page>().unwrap_or_default();
        assert_eq!(
            json_select(fields, "SELECT headers, id, seq FROM t ORDER BY seq"),
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
