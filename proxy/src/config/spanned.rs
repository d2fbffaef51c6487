//! A TOML value tree that keeps key and value spans, for key checking and line numbers.
//!
//! `toml::Spanned` cannot be used: it errors on implicit tables (`[a.b]` headers, dotted keys),
//! which have no span. These visitors speak the same serde protocol but accept both the spanned
//! form and the plain one, so a missing span only costs a line number, never the key check.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A TOML tree with the spans the parser knows.
pub(crate) enum Node {
    Table(Vec<(Sp<String>, Sp<Node>)>),
    Array(Vec<Sp<Node>>),
    Leaf,
}

pub(crate) struct Sp<T> {
    pub span: Option<std::ops::Range<usize>>,
    pub value: T,
}

/// serde_spanned's protocol names (as used by `toml` 0.8 / `toml_edit` 0.22).
const SPANNED_NAME: &str = "$__serde_spanned_private_Spanned";
const SPANNED_START: &str = "$__serde_spanned_private_start";
const SPANNED_END: &str = "$__serde_spanned_private_end";
const SPANNED_VALUE: &str = "$__serde_spanned_private_value";
const SPANNED_FIELDS: &[&str] = &[SPANNED_START, SPANNED_END, SPANNED_VALUE];
/// How `toml` hands a datetime to `deserialize_any`.
const DATETIME_KEY: &str = "$__toml_private_datetime";

/// Plain (unspanned) payloads: what the spanned wrapper contains.
trait Payload<'de>: Sized + Deserialize<'de> {
    /// Handles a map that turned out not to be the spanned wrapper; `first` is its first key.
    fn from_plain_map<A: MapAccess<'de>>(
        first: Option<Sp<String>>,
        map: A,
    ) -> Result<Self, A::Error>;
    fn from_str_value(s: &str) -> Option<Self>;
}

impl<'de, T: Payload<'de>> Deserialize<'de> for Sp<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct(
            SPANNED_NAME,
            SPANNED_FIELDS,
            SpVisitor(std::marker::PhantomData),
        )
    }
}

struct SpVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Payload<'de>> Visitor<'de> for SpVisitor<T> {
    type Value = Sp<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Sp<T>, A::Error> {
        let first: Option<Sp<String>> = map.next_key()?;
        if first.as_ref().map(|k| k.value.as_str()) != Some(SPANNED_START) {
            return Ok(Sp {
                span: None,
                value: T::from_plain_map(first, map)?,
            });
        }
        let start: usize = map.next_value()?;
        let mut end = start;
        let mut value = None;
        while let Some(k) = map.next_key::<String>()? {
            match k.as_str() {
                SPANNED_END => end = map.next_value()?,
                SPANNED_VALUE => value = Some(map.next_value::<T>()?),
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        let value = value.ok_or_else(|| de::Error::missing_field(SPANNED_VALUE))?;
        Ok(Sp {
            span: Some(start..end.max(start)),
            value,
        })
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Sp<T>, E> {
        T::from_str_value(v)
            .map(|value| Sp { span: None, value })
            .ok_or_else(|| E::custom("unexpected string"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Sp<T>, E> {
        self.visit_str("")
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Sp<T>, E> {
        self.visit_str("")
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Sp<T>, E> {
        self.visit_str("")
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Sp<T>, E> {
        self.visit_str("")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Sp<T>, A::Error> {
        let value = T::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(Sp { span: None, value })
    }
}

impl<'de> Payload<'de> for String {
    fn from_plain_map<A: MapAccess<'de>>(_: Option<Sp<String>>, _: A) -> Result<Self, A::Error> {
        Err(de::Error::custom("expected a key"))
    }
    fn from_str_value(s: &str) -> Option<Self> {
        Some(s.to_owned())
    }
}

impl<'de> Payload<'de> for Node {
    fn from_plain_map<A: MapAccess<'de>>(
        first: Option<Sp<String>>,
        mut map: A,
    ) -> Result<Self, A::Error> {
        if first.as_ref().map(|k| k.value.as_str()) == Some(DATETIME_KEY) {
            map.next_value::<de::IgnoredAny>()?;
            return Ok(Node::Leaf);
        }
        let mut entries = Vec::new();
        if let Some(k) = first {
            entries.push((k, map.next_value::<Sp<Node>>()?));
        }
        while let Some(k) = map.next_key::<Sp<String>>()? {
            entries.push((k, map.next_value::<Sp<Node>>()?));
        }
        Ok(Node::Table(entries))
    }
    fn from_str_value(_: &str) -> Option<Self> {
        Some(Node::Leaf)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element::<Sp<Node>>()? {
            items.push(v);
        }
        Ok(Node::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Node, A::Error> {
        let mut map = map;
        let first: Option<Sp<String>> = map.next_key()?;
        Node::from_plain_map(first, map)
    }
}
