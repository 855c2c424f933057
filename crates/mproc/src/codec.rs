//! How a typed [`Queue`](crate::Queue) turns items into messages and back.
//!
//! A value that serializes as one string (`String`, `Box<str>`, a
//! `#[serde(transparent)]` wrapper of one) travels as its raw UTF-8 bytes,
//! and one that serializes as bytes or as a sequence of `u8` (`Vec<u8>`,
//! `serde_bytes`) as those raw bytes. Everything else is encoded with
//! postcard. So a `Queue<String>` or `Queue<Vec<u8>>` reads exactly what
//! `mproc queue put` or a [`ByteQueue`](crate::ByteQueue) wrote, and the
//! other way round.
//!
//! Encoding first offers the value to a probe serializer that accepts only
//! those raw shapes and gives up at the first other call; decoding first
//! offers the bytes to a deserializer that does the same. Both sides make
//! the same choice for any type whose `Serialize` and `Deserialize` agree
//! (an empty sequence is empty bytes either way).

use std::fmt;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::ser::{self, Impossible, Serialize};

/// Why the raw form does not apply (or a real error of the raw form).
#[derive(Debug)]
enum RawError {
    /// The value is not one string or one byte sequence: use postcard.
    NotRaw,
    /// The value has the raw shape but the bytes do not fit (not UTF-8).
    Invalid(String),
}

impl fmt::Display for RawError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawError::NotRaw => f.write_str("not a raw string or byte sequence"),
            RawError::Invalid(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for RawError {}

impl ser::Error for RawError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        RawError::Invalid(msg.to_string())
    }
}

impl de::Error for RawError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        RawError::Invalid(msg.to_string())
    }
}

/// Encodes `item` into `buf`: raw bytes for a string or byte sequence,
/// postcard for everything else.
pub(crate) fn encode<T: Serialize + ?Sized>(item: &T, buf: &mut Vec<u8>) -> Result<(), String> {
    buf.clear();
    match item.serialize(RawProbe { buf: &mut *buf }) {
        Ok(()) => return Ok(()),
        Err(RawError::NotRaw) => {}
        Err(RawError::Invalid(m)) => return Err(m),
    }
    buf.clear();
    let taken = std::mem::take(buf);
    match postcard::to_extend(item, taken) {
        Ok(v) => {
            *buf = v;
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Decodes a whole message written by [`encode`] (or by any byte producer
/// for a string or byte-sequence type).
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match T::deserialize(RawDe { bytes }) {
        Ok(v) => Ok(v),
        Err(RawError::NotRaw) => postcard::from_bytes(bytes).map_err(|e| e.to_string()),
        Err(RawError::Invalid(m)) => Err(m),
    }
}

/// Defines serializer methods that refuse their value.
macro_rules! not_raw {
    ($($name:ident($($arg:ty),*);)*) => {
        $(fn $name(self, $(_: $arg),*) -> Result<(), RawError> {
            Err(RawError::NotRaw)
        })*
    };
}

/// Defines the serializer methods that refuse every value, for a
/// serializer whose own methods cover the raw shapes it accepts.
macro_rules! refuse_the_rest {
    () => {
        type Ok = ();
        type Error = RawError;
        type SerializeTuple = Impossible<(), RawError>;
        type SerializeTupleStruct = Impossible<(), RawError>;
        type SerializeTupleVariant = Impossible<(), RawError>;
        type SerializeMap = Impossible<(), RawError>;
        type SerializeStruct = Impossible<(), RawError>;
        type SerializeStructVariant = Impossible<(), RawError>;

        not_raw! {
            serialize_bool(bool);
            serialize_i8(i8);
            serialize_i16(i16);
            serialize_i32(i32);
            serialize_i64(i64);
            serialize_i128(i128);
            serialize_u16(u16);
            serialize_u32(u32);
            serialize_u64(u64);
            serialize_u128(u128);
            serialize_f32(f32);
            serialize_f64(f64);
            serialize_char(char);
            serialize_none();
            serialize_unit();
            serialize_unit_struct(&'static str);
            serialize_unit_variant(&'static str, u32, &'static str);
        }

        fn serialize_some<V: Serialize + ?Sized>(self, _: &V) -> Result<(), RawError> {
            Err(RawError::NotRaw)
        }
        fn serialize_newtype_struct<V: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: &V,
        ) -> Result<(), RawError> {
            Err(RawError::NotRaw)
        }
        fn serialize_newtype_variant<V: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &V,
        ) -> Result<(), RawError> {
            Err(RawError::NotRaw)
        }
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, RawError> {
            Err(RawError::NotRaw)
        }
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleStruct, RawError> {
            Err(RawError::NotRaw)
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, RawError> {
            Err(RawError::NotRaw)
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, RawError> {
            Err(RawError::NotRaw)
        }
        fn serialize_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStruct, RawError> {
            Err(RawError::NotRaw)
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant, RawError> {
            Err(RawError::NotRaw)
        }
        // The same choice as postcard, so that types that serialize
        // differently for people (addresses, for instance) agree with it.
        fn is_human_readable(&self) -> bool {
            false
        }
    };
}

/// Accepts a top-level string, byte string or sequence of `u8`.
struct RawProbe<'b> {
    buf: &'b mut Vec<u8>,
}

impl<'b> ser::Serializer for RawProbe<'b> {
    type SerializeSeq = RawSeq<'b>;
    refuse_the_rest!();

    fn serialize_str(self, v: &str) -> Result<(), RawError> {
        self.buf.extend_from_slice(v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), RawError> {
        self.buf.extend_from_slice(v);
        Ok(())
    }
    fn serialize_u8(self, _: u8) -> Result<(), RawError> {
        Err(RawError::NotRaw)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<RawSeq<'b>, RawError> {
        Ok(RawSeq { buf: self.buf })
    }
}

/// The elements of a top-level sequence: only `u8`s.
struct RawSeq<'b> {
    buf: &'b mut Vec<u8>,
}

impl ser::SerializeSeq for RawSeq<'_> {
    type Ok = ();
    type Error = RawError;
    fn serialize_element<V: Serialize + ?Sized>(&mut self, v: &V) -> Result<(), RawError> {
        v.serialize(ByteProbe {
            buf: &mut *self.buf,
        })
    }
    fn end(self) -> Result<(), RawError> {
        Ok(())
    }
}

/// One element of a raw sequence: a `u8` and nothing else.
struct ByteProbe<'b> {
    buf: &'b mut Vec<u8>,
}

impl ser::Serializer for ByteProbe<'_> {
    type SerializeSeq = Impossible<(), RawError>;
    refuse_the_rest!();

    fn serialize_u8(self, v: u8) -> Result<(), RawError> {
        self.buf.push(v);
        Ok(())
    }
    fn serialize_str(self, _: &str) -> Result<(), RawError> {
        Err(RawError::NotRaw)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), RawError> {
        Err(RawError::NotRaw)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, RawError> {
        Err(RawError::NotRaw)
    }
}

/// Reads a whole message as a string, bytes, or a sequence of `u8`.
struct RawDe<'de> {
    bytes: &'de [u8],
}

impl<'de> de::Deserializer<'de> for RawDe<'de> {
    type Error = RawError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, RawError> {
        Err(RawError::NotRaw)
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RawError> {
        match std::str::from_utf8(self.bytes) {
            Ok(s) => visitor.visit_borrowed_str(s),
            Err(e) => Err(RawError::Invalid(format!(
                "the message is not UTF-8 text: {e}"
            ))),
        }
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RawError> {
        self.deserialize_str(visitor)
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RawError> {
        visitor.visit_borrowed_bytes(self.bytes)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RawError> {
        visitor.visit_borrowed_bytes(self.bytes)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RawError> {
        visitor.visit_seq(RawSeqAccess {
            bytes: self.bytes.iter(),
        })
    }
    fn is_human_readable(&self) -> bool {
        false
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char
        option unit unit_struct newtype_struct tuple tuple_struct map struct
        enum identifier ignored_any
    }
}

/// The bytes of a message as a sequence of `u8` elements.
struct RawSeqAccess<'de> {
    bytes: std::slice::Iter<'de, u8>,
}

impl<'de> de::SeqAccess<'de> for RawSeqAccess<'de> {
    type Error = RawError;
    fn next_element_seed<S: de::DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, RawError> {
        match self.bytes.next() {
            Some(&b) => seed.deserialize(ByteDe(b)).map(Some),
            None => Ok(None),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.bytes.len())
    }
}

/// One element of a raw sequence: it is a `u8` only to a `u8`.
struct ByteDe(u8);

impl<'de> de::Deserializer<'de> for ByteDe {
    type Error = RawError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, RawError> {
        Err(RawError::NotRaw)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RawError> {
        visitor.visit_u8(self.0)
    }
    fn is_human_readable(&self) -> bool {
        false
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn round<T: Serialize + DeserializeOwned + PartialEq + fmt::Debug>(v: T) -> Vec<u8> {
        let mut buf = Vec::new();
        encode(&v, &mut buf).unwrap();
        assert_eq!(decode::<T>(&buf).unwrap(), v);
        buf
    }

    #[test]
    fn strings_and_bytes_are_raw() {
        assert_eq!(round(String::from("héllo")), "héllo".as_bytes());
        assert_eq!(round(String::new()), b"");
        assert_eq!(round(vec![0u8, 255, 10]), [0, 255, 10]);
        assert_eq!(round(Box::<str>::from("x")), b"x");
        // Whatever bytes a shell put, a Vec<u8> reads them.
        assert_eq!(decode::<Vec<u8>>(&[1, 2, 3]).unwrap(), [1, 2, 3]);
    }

    #[test]
    fn everything_else_is_postcard() {
        for v in [0u64, 1, 300, u64::MAX] {
            assert_eq!(round(v), postcard::to_allocvec(&v).unwrap());
        }
        let v = vec![1u32, 70000];
        assert_eq!(round(v.clone()), postcard::to_allocvec(&v).unwrap());
        let s = vec!["a".to_string(), "bc".to_string()];
        assert_eq!(round(s.clone()), postcard::to_allocvec(&s).unwrap());
        let o = Some("x".to_string());
        assert_eq!(round(o.clone()), postcard::to_allocvec(&o).unwrap());
        let t = (1u8, "two".to_string());
        assert_eq!(round(t.clone()), postcard::to_allocvec(&t).unwrap());
        let m: BTreeMap<u8, u8> = [(1, 2)].into();
        assert_eq!(round(m.clone()), postcard::to_allocvec(&m).unwrap());
        assert_eq!(round(Vec::<u32>::new()), b"");
        let addr: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        round(addr);
        round('é');
        round(());
    }

    #[test]
    fn a_string_is_not_read_from_bytes_that_are_not_utf8() {
        let e = decode::<String>(&[0xff, 0xfe]).unwrap_err();
        assert!(e.contains("UTF-8"), "{e}");
    }
}
