//! CRC-32 (the IEEE/ISO-HDLC polynomial, as `crc32fast` computes it) over a byte range: the
//! checksum of file headers, small files and format 1/2 batches. Kafka v2 batches (segment
//! format 3) use CRC-32C instead, computed in [`kafka::crc32c`](super::kafka::crc32c).

use crate::error::{corrupt, Result};

/// CRC-32 of `bytes`.
pub fn checksum(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Checks that `bytes` hash to `expected`; `position` is where the checksum field lives, for the
/// error message.
pub fn verify(bytes: &[u8], expected: u32, position: u64) -> Result<()> {
    let got = checksum(bytes);
    if got == expected {
        Ok(())
    } else {
        Err(corrupt(
            position,
            format!("CRC-32 0x{expected:08x} (stored)"),
            format!("CRC-32 0x{got:08x} over the {} covered bytes", bytes.len()),
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_vector() {
        // The check value of CRC-32/ISO-HDLC.
        assert_eq!(super::checksum(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn mismatch_is_reported() {
        assert!(super::verify(b"abc", 0, 5).is_err());
        assert!(super::verify(b"abc", super::checksum(b"abc"), 5).is_ok());
    }
}
