//! Random certificate serial numbers.
//!
//! NSS and others reject two certificates from one issuer with the same serial, and a
//! predictable serial helps chosen-prefix attacks; so every certificate gets 126 fresh
//! random bits from the OS. The top bit is cleared (DER integers are signed: a set top bit
//! would make the serial negative or need a 17th byte) and the next one set, so the encoding
//! is always exactly 16 positive bytes, well under RFC 5280's 20-octet limit.

use rand::RngCore;

/// Length in bytes of every serial we issue.
pub const SERIAL_LEN: usize = 16;

/// 16 random bytes forming a positive, non-zero, fixed-length serial number.
pub(crate) fn random_serial() -> [u8; SERIAL_LEN] {
    let mut serial = [0u8; SERIAL_LEN];
    rand::rngs::OsRng.fill_bytes(&mut serial);
    serial[0] = (serial[0] & 0x7f) | 0x40;
    serial
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_positive_fixed_length_and_distinct() {
        let a = random_serial();
        let b = random_serial();
        assert_ne!(a, b);
        for s in [a, b] {
            assert_eq!(s[0] & 0x80, 0);
            assert_ne!(s[0], 0);
        }
    }
}
