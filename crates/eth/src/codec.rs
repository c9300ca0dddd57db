//! RLP helpers shared by the message codecs: list decoding with a cap, and exact decoding.

use alloy_rlp::{Decodable, Encodable, Header};

use crate::Error;

/// Decodes an RLP list of `T`, refusing more than `max` items.
///
/// Unlike `Vec::<T>::decode`, the cap is checked while decoding, so a list of a million
/// tiny items stops at item `max + 1`.
pub(crate) fn decode_list<T: Decodable>(
    buf: &mut &[u8],
    max: usize,
    what: &'static str,
) -> Result<Vec<T>, Error> {
    let mut payload = Header::decode_bytes(buf, true)?;
    let mut out = Vec::new();
    while !payload.is_empty() {
        if out.len() == max {
            return Err(Error::ListTooLong { what, max });
        }
        out.push(T::decode(&mut payload)?);
    }
    Ok(out)
}

/// Encodes a list of items.
pub(crate) fn encode_list<T: Encodable>(items: &[T], out: &mut dyn alloy_rlp::BufMut) {
    alloy_rlp::encode_list(items, out);
}

/// Length of the encoding of a list of items.
pub(crate) fn list_length<T: Encodable>(items: &[T]) -> usize {
    alloy_rlp::list_length(items)
}

/// Runs `f` on `payload` and fails if it leaves bytes behind.
pub(crate) fn decode_exact<T>(
    payload: &[u8],
    f: impl FnOnce(&mut &[u8]) -> Result<T, Error>,
) -> Result<T, Error> {
    let mut buf = payload;
    let value = f(&mut buf)?;
    if !buf.is_empty() {
        return Err(Error::TrailingBytes(buf.len()));
    }
    Ok(value)
}

/// Reads the payload of an RLP list header and hands it to `f`, which must consume all
/// of it: a list with extra fields is malformed.
pub(crate) fn decode_fields<T>(
    buf: &mut &[u8],
    f: impl FnOnce(&mut &[u8]) -> Result<T, Error>,
) -> Result<T, Error> {
    let mut payload = Header::decode_bytes(buf, true)?;
    let value = f(&mut payload)?;
    if !payload.is_empty() {
        return Err(Error::Rlp(alloy_rlp::Error::UnexpectedLength));
    }
    Ok(value)
}
