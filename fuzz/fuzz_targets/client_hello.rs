//! Fuzz the ClientHello peek parser: it must never panic, and because the proxy re-parses a
//! growing buffer after every read, any decision other than `Incomplete` made on a prefix must
//! be the decision on the whole input. The first input byte picks the prefix length.
#![no_main]

use egress_proxy::bump::client_hello::{parse_client_hello, ParseError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&cut, data)) = input.split_first() else {
        return;
    };
    let whole = parse_client_hello(data);
    if let Ok(info) = &whole {
        assert!(info.record_len <= data.len());
    }
    let cut = usize::from(cut).min(data.len());
    match parse_client_hello(&data[..cut]) {
        Err(ParseError::Incomplete { .. }) => {}
        Ok(info) => {
            assert!(info.record_len <= cut);
            assert_eq!(whole, Ok(info));
        }
        decided => assert_eq!(whole, decided),
    }
});
