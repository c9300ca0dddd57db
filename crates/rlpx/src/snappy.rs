//! Snappy (raw block format) for `p2p` v5 message payloads (devp2p `rlpx.md`,
//! "Message Compression": every message after Hello is compressed; the
//! uncompressed size is checked against the limit before decompressing).

use bytes::{Bytes, BytesMut};

use crate::Error;

/// The largest message payload we accept after decompression: 16 MiB
/// (WIRE.md §2; rlpx.md: "messages over 16 MiB decompressed are a protocol
/// error"). Checked against Snappy's declared length before any allocation.
pub const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// The declared uncompressed length of `input`, refused if over `max`
/// (reads only the varint header; allocates nothing).
pub fn checked_decompress_len(input: &[u8], max: usize) -> Result<usize, Error> {
    let size = snap::raw::decompress_len(input).map_err(Error::Snappy)?;
    if size > max {
        return Err(Error::MessageTooLarge { size, max });
    }
    Ok(size)
}

/// Reusable Snappy state for one direction of a session.
pub(crate) struct Snappy {
    encoder: snap::raw::Encoder,
    decoder: snap::raw::Decoder,
    /// Decompressed payloads are split off this buffer, so its allocation is
    /// reused once the consumer drops earlier payloads.
    out: BytesMut,
}

impl Snappy {
    pub(crate) fn new() -> Self {
        Self {
            encoder: snap::raw::Encoder::new(),
            decoder: snap::raw::Decoder::new(),
            out: BytesMut::new(),
        }
    }

    /// Decompresses `input` (at most `max` bytes of output, checked before
    /// allocating) into a fresh `Bytes`.
    pub(crate) fn decompress(&mut self, input: &[u8], max: usize) -> Result<Bytes, Error> {
        let size = checked_decompress_len(input, max)?;
        self.out.clear();
        self.out.resize(size, 0);
        let written = self
            .decoder
            .decompress(input, &mut self.out)
            .map_err(Error::Snappy)?;
        // snap checks the output length against the header; be strict anyway.
        if written != size {
            return Err(Error::InvalidMessage("snappy length mismatch"));
        }
        Ok(self.out.split_to(size).freeze())
    }

    /// Appends the compressed form of `input` to `out`.
    pub(crate) fn compress_into(&mut self, input: &[u8], out: &mut BytesMut) -> Result<(), Error> {
        let start = out.len();
        out.resize(start + snap::raw::max_compress_len(input.len()), 0);
        match self.encoder.compress(input, &mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(Error::Snappy(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decompress(input: &[u8]) -> Result<Vec<u8>, Error> {
        Snappy::new()
            .decompress(input, MAX_MESSAGE_SIZE)
            .map(|b| b.to_vec())
    }

    /// Vectors from golang/snappy `snappy_test.go`, `TestDecode` (hand-built
    /// raw Snappy blocks exercising each tag form), valid cases.
    #[test]
    fn golang_snappy_decode_vectors() {
        let lit40: Vec<u8> = (0u8..40).collect();
        let mut lit40_input = vec![0x28, 0x9c];
        lit40_input.extend_from_slice(&lit40);
        let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
            // decodedLen=0; valid input
            (b"\x00".to_vec(), b"".to_vec()),
            // decodedLen=3; tagLiteral, 0-byte length; length=3
            (b"\x03\x08\xff\xff\xff".to_vec(), b"\xff\xff\xff".to_vec()),
            // decodedLen=40; tagLiteral, 0-byte length; length=40
            (lit40_input, lit40),
            // decodedLen=3; tagLiteral, 1-byte length; length=3
            (
                b"\x03\xf0\x02\xff\xff\xff".to_vec(),
                b"\xff\xff\xff".to_vec(),
            ),
            // decodedLen=3; tagLiteral, 2-byte length; length=3
            (
                b"\x03\xf4\x02\x00\xff\xff\xff".to_vec(),
                b"\xff\xff\xff".to_vec(),
            ),
            // decodedLen=3; tagLiteral, 3-byte length; length=3
            (
                b"\x03\xf8\x02\x00\x00\xff\xff\xff".to_vec(),
                b"\xff\xff\xff".to_vec(),
            ),
            // decodedLen=3; tagLiteral, 4-byte length; length=3
            (
                b"\x03\xfc\x02\x00\x00\x00\xff\xff\xff".to_vec(),
                b"\xff\xff\xff".to_vec(),
            ),
            // decodedLen=4; tagLiteral (4 bytes "abcd")
            (b"\x04\x0cabcd".to_vec(), b"abcd".to_vec()),
            // decodedLen=13; tagLiteral (4 bytes "abcd"); tagCopy1; length=9 offset=4
            (b"\x0d\x0cabcd\x15\x04".to_vec(), b"abcdabcdabcda".to_vec()),
            // decodedLen=8; tagLiteral (4 bytes "abcd"); tagCopy1; length=4 offset=4
            (b"\x08\x0cabcd\x01\x04".to_vec(), b"abcdabcd".to_vec()),
            // decodedLen=8; tagLiteral (4 bytes "abcd"); tagCopy1; length=4 offset=2
            (b"\x08\x0cabcd\x01\x02".to_vec(), b"abcdcdcd".to_vec()),
            // decodedLen=8; tagLiteral (4 bytes "abcd"); tagCopy1; length=4 offset=1
            (b"\x08\x0cabcd\x01\x01".to_vec(), b"abcddddd".to_vec()),
            // decodedLen=6; tagLiteral (4 bytes "abcd"); tagCopy2; length=2 offset=3
            (b"\x06\x0cabcd\x06\x03\x00".to_vec(), b"abcdbc".to_vec()),
        ];
        for (input, want) in cases {
            assert_eq!(decompress(&input).unwrap(), want, "input {input:02x?}");
        }
    }

    /// golang/snappy `TestDecode` (ErrCorrupt cases) and `TestInvalidVarint`.
    #[test]
    fn golang_snappy_corrupt_vectors() {
        let cases: &[&[u8]] = &[
            b"\x02\x08\xff\xff\xff",                         // not enough dst bytes
            b"\x03\x08\xff\xff",                             // not enough src bytes
            b"\x01\xf0",             // 1-byte length; not enough length bytes
            b"\x01\xf4\x00",         // 2-byte length; not enough length bytes
            b"\x01\xf8\x00\x00",     // 3-byte length; not enough length bytes
            b"\x01\xfc\x00\x00\x00", // 4-byte length; not enough length bytes
            b"\x01\xfc\x02\x00\x00\x00\xff\xff\xff", // not enough dst bytes
            b"\x04\xfc\x02\x00\x00\x00\xff", // not enough src bytes
            b"\x04\x01",             // tagCopy1; not enough extra bytes
            b"\x04\x02\x00",         // tagCopy2; not enough extra bytes
            b"\x08\x0cabcd\x01\x00", // zero offset
            b"\x09\x0cabcd\x01\x04", // inconsistent dLen
            b"\x08\x0cabcd\x01\x05", // offset too large
            b"\x07\x0cabcd\x01\x04", // length too large
            b"\xff",                 // varint: final byte has continuation bit
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00", // varint overflows u64
            b"\x80\x80\x80\x80\x10", // varint overflows u32
        ];
        for input in cases {
            assert!(decompress(input).is_err(), "input {input:02x?}");
        }
    }

    /// Short inputs compress to a single literal (golang/snappy's `"\x04\x0cabcd"`
    /// above, read the other way; snappy `format_description.txt`, literal tag).
    #[test]
    fn compress_short_literal() {
        let mut out = BytesMut::new();
        Snappy::new().compress_into(b"abcd", &mut out).unwrap();
        assert_eq!(&out[..], b"\x04\x0cabcd");
        let mut out = BytesMut::new();
        Snappy::new().compress_into(b"", &mut out).unwrap();
        assert_eq!(&out[..], b"\x00");
    }

    #[test]
    fn one_gib_header_refused_before_allocating() {
        // varint(1 GiB) followed by nothing: refused from the header alone.
        let one_gib: &[u8] = &[0x80, 0x80, 0x80, 0x80, 0x04];
        assert_eq!(snap::raw::decompress_len(one_gib).unwrap(), 1 << 30);
        let mut snappy = Snappy::new();
        assert!(matches!(
            snappy.decompress(one_gib, MAX_MESSAGE_SIZE),
            Err(Error::MessageTooLarge { size, max: MAX_MESSAGE_SIZE }) if size == 1 << 30
        ));
        assert_eq!(snappy.out.capacity(), 0, "nothing allocated");
        // Exactly the limit plus one is refused too.
        let mut header = Vec::new();
        let mut n = MAX_MESSAGE_SIZE + 1;
        while n >= 0x80 {
            header.push((n as u8) | 0x80);
            n >>= 7;
        }
        header.push(n as u8);
        assert!(matches!(
            checked_decompress_len(&header, MAX_MESSAGE_SIZE),
            Err(Error::MessageTooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn prop_round_trip(data in prop::collection::vec(any::<u8>(), 0..5000), repeat in 1usize..4) {
            let data: Vec<u8> = data.iter().copied().cycle().take(data.len() * repeat).collect();
            let mut s = Snappy::new();
            let mut out = BytesMut::from(&b"prefix"[..]);
            s.compress_into(&data, &mut out).unwrap();
            prop_assert_eq!(&out[..6], b"prefix");
            prop_assert_eq!(&s.decompress(&out[6..], MAX_MESSAGE_SIZE).unwrap()[..], &data[..]);
        }

        #[test]
        fn prop_declared_size_over_limit_refused(size in (MAX_MESSAGE_SIZE as u64 + 1)..(1u64 << 32), tail in prop::collection::vec(any::<u8>(), 0..16)) {
            let mut input = Vec::new();
            let mut n = size;
            while n >= 0x80 {
                input.push((n as u8) | 0x80);
                n >>= 7;
            }
            input.push(n as u8);
            input.extend_from_slice(&tail);
            let mut s = Snappy::new();
            let refused = matches!(s.decompress(&input, MAX_MESSAGE_SIZE), Err(Error::MessageTooLarge { .. }) | Err(Error::Snappy(_)));
            prop_assert!(refused);
            prop_assert_eq!(s.out.capacity(), 0);
        }

        #[test]
        fn prop_random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = Snappy::new().decompress(&data, 1 << 16);
        }
    }
}
