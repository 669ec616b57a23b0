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
