//! The primitives of Kafka's flexible message encoding, as the metadata records use
//! them: big-endian integers, unsigned varints, compact (length + 1) strings and
//! arrays, 16-byte UUIDs, and the tagged-field section.
//!
//! [`Reader`] never trusts a length: a string or array longer than the bytes left
//! fails before anything is allocated, so a corrupt or hostile record costs at
//! most its own size.

use uuid::Uuid;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("truncated: {needed} more byte(s) needed for {what}")]
    Truncated { what: &'static str, needed: usize },
    #[error("{what} of {len} exceeds the {left} byte(s) left")]
    TooLong {
        what: &'static str,
        len: u64,
        left: usize,
    },
    #[error("unsigned varint longer than 5 bytes")]
    VarintTooLong,
    #[error("{0} is not valid UTF-8")]
    NotUtf8(&'static str),
    #[error("{what} has invalid value {value}")]
    Invalid { what: &'static str, value: i64 },
}

/// A cursor over bytes that are not trusted.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.bytes.len() < n {
            return Err(WireError::Truncated {
                what,
                needed: n - self.bytes.len(),
            });
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub fn i8(&mut self, what: &'static str) -> Result<i8, WireError> {
        Ok(i8::from_be_bytes(self.array(what)?))
    }

    pub fn bool(&mut self, what: &'static str) -> Result<bool, WireError> {
        match self.i8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(WireError::Invalid {
                what,
                value: i64::from(other),
            }),
        }
    }

    pub fn i16(&mut self, what: &'static str) -> Result<i16, WireError> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    pub fn i32(&mut self, what: &'static str) -> Result<i32, WireError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    pub fn i64(&mut self, what: &'static str) -> Result<i64, WireError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    pub fn uuid(&mut self, what: &'static str) -> Result<Uuid, WireError> {
        Ok(Uuid::from_bytes(self.array(what)?))
    }

    /// An unsigned varint of at most 5 bytes (a Java int).
    pub fn uvarint(&mut self, what: &'static str) -> Result<u32, WireError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let byte = self.take(1, what)?[0];
            value |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::VarintTooLong)
    }

    /// A compact length (stored + 1; 0 is null), checked against the bytes left
    /// times `min_item_bytes`.
    fn compact_len(
        &mut self,
        what: &'static str,
        min_item_bytes: usize,
    ) -> Result<Option<usize>, WireError> {
        let stored = self.uvarint(what)?;
        if stored == 0 {
            return Ok(None);
        }
        let len = (stored - 1) as usize;
        if len.saturating_mul(min_item_bytes.max(1)) > self.bytes.len() {
            return Err(WireError::TooLong {
                what,
                len: u64::from(stored - 1),
                left: self.bytes.len(),
            });
        }
        Ok(Some(len))
    }

    pub fn compact_nullable_string(
        &mut self,
        what: &'static str,
    ) -> Result<Option<String>, WireError> {
        let Some(len) = self.compact_len(what, 1)? else {
            return Ok(None);
        };
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| WireError::NotUtf8(what))
    }

    pub fn compact_string(&mut self, what: &'static str) -> Result<String, WireError> {
        self.compact_nullable_string(what)?
            .ok_or(WireError::Invalid { what, value: -1 })
    }

    /// Non-null compact bytes, borrowed from the input.
    pub fn compact_bytes(&mut self, what: &'static str) -> Result<&'a [u8], WireError> {
        let len = self
            .compact_len(what, 1)?
            .ok_or(WireError::Invalid { what, value: -1 })?;
        self.take(len, what)
    }

    /// A nullable compact array; `item` reads one element of at least `min_item_bytes`.
    pub fn compact_nullable_array<T>(
        &mut self,
        what: &'static str,
        min_item_bytes: usize,
        mut item: impl FnMut(&mut Reader<'a>) -> Result<T, WireError>,
    ) -> Result<Option<Vec<T>>, WireError> {
        let Some(len) = self.compact_len(what, min_item_bytes)? else {
            return Ok(None);
        };
        let mut items = Vec::with_capacity(len);
        for _ in 0..len {
            items.push(item(self)?);
        }
        Ok(Some(items))
    }

    pub fn compact_array<T>(
        &mut self,
        what: &'static str,
        min_item_bytes: usize,
        item: impl FnMut(&mut Reader<'a>) -> Result<T, WireError>,
    ) -> Result<Vec<T>, WireError> {
        self.compact_nullable_array(what, min_item_bytes, item)?
            .ok_or(WireError::Invalid { what, value: -1 })
    }

    pub fn compact_i32_array(&mut self, what: &'static str) -> Result<Vec<i32>, WireError> {
        self.compact_array(what, 4, |r| r.i32(what))
    }

    pub fn compact_nullable_i32_array(
        &mut self,
        what: &'static str,
    ) -> Result<Option<Vec<i32>>, WireError> {
        self.compact_nullable_array(what, 4, |r| r.i32(what))
    }

    /// The tagged-field section: `field(tag, reader over its bytes)` for each one;
    /// tags must ascend, and each field must use all of its bytes.
    pub fn tagged_fields(
        &mut self,
        mut field: impl FnMut(u32, &mut Reader<'a>) -> Result<(), WireError>,
    ) -> Result<(), WireError> {
        let count = self.uvarint("tagged field count")?;
        let mut last: Option<u32> = None;
        for _ in 0..count {
            let tag = self.uvarint("tag")?;
            if last.is_some_and(|l| tag <= l) {
                return Err(WireError::Invalid {
                    what: "tagged field order",
                    value: i64::from(tag),
                });
            }
            last = Some(tag);
            let size = self.uvarint("tagged field size")? as usize;
            if size > self.bytes.len() {
                return Err(WireError::TooLong {
                    what: "tagged field",
                    len: size as u64,
                    left: self.bytes.len(),
                });
            }
            let mut inner = Reader::new(self.take(size, "tagged field")?);
            field(tag, &mut inner)?;
            if inner.remaining() != 0 {
                return Err(WireError::Invalid {
                    what: "tagged field size",
                    value: size as i64,
                });
            }
        }
        Ok(())
    }
}

/// Appends Kafka's encodings to a buffer.
#[derive(Debug, Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn i8(&mut self, v: i8) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }

    pub fn i16(&mut self, v: i16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn uuid(&mut self, v: &Uuid) {
        self.buf.extend_from_slice(v.as_bytes());
    }

    pub fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn compact_len(&mut self, len: Option<usize>) {
        let stored = len.map_or(0, |l| l + 1);
        self.uvarint(u32::try_from(stored).expect("metadata fields are far below 4 GiB"));
    }

    pub fn compact_string(&mut self, v: &str) {
        self.compact_len(Some(v.len()));
        self.buf.extend_from_slice(v.as_bytes());
    }

    pub fn compact_bytes(&mut self, v: &[u8]) {
        self.compact_len(Some(v.len()));
        self.buf.extend_from_slice(v);
    }

    pub fn compact_nullable_string(&mut self, v: Option<&str>) {
        match v {
            Some(v) => self.compact_string(v),
            None => self.compact_len(None),
        }
    }

    pub fn compact_array<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Writer, &T)) {
        self.compact_len(Some(items.len()));
        for i in items {
            item(self, i);
        }
    }

    pub fn compact_i32_array(&mut self, items: &[i32]) {
        self.compact_array(items, |w, v| w.i32(*v));
    }

    pub fn compact_nullable_i32_array(&mut self, items: Option<&[i32]>) {
        match items {
            Some(items) => self.compact_i32_array(items),
            None => self.compact_len(None),
        }
    }

    /// The tagged-field section from `(tag, encoded field)` pairs in ascending tag order.
    pub fn tagged_fields(&mut self, fields: &[(u32, Vec<u8>)]) {
        self.uvarint(fields.len() as u32);
        for (tag, bytes) in fields {
            self.uvarint(*tag);
            self.uvarint(bytes.len() as u32);
            self.buf.extend_from_slice(bytes);
        }
    }

    /// One field encoded on its own (the body of a tagged field).
    pub fn field(encode: impl FnOnce(&mut Writer)) -> Vec<u8> {
        let mut w = Writer::default();
        encode(&mut w);
        w.buf
    }
}
