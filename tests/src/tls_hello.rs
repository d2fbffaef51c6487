//! Hand-made TLS ClientHello records, for what real clients never send: ambiguous server names,
//! an encrypted-ClientHello extension, exact extension blocks. Used by the ClientHello parser's
//! unit tests and by end-to-end tunnel tests.

/// A TLS 1.3-style ClientHello record whose extensions block is `exts` (one suite, null
/// compression, a fixed random).
pub fn client_hello_record(exts: &[u8]) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
    body.extend_from_slice(&u16_len(exts.len()));
    body.extend_from_slice(exts);
    let mut msg = vec![1, 0];
    msg.extend_from_slice(&u16_len(body.len()));
    msg.extend_from_slice(&body);
    let mut rec = vec![22, 3, 1];
    rec.extend_from_slice(&u16_len(msg.len()));
    rec.extend_from_slice(&msg);
    rec
}

/// A server_name extension listing `(name type, name)` entries.
pub fn sni_extension(names: &[(u8, &[u8])]) -> Vec<u8> {
    let mut list = Vec::new();
    for (kind, name) in names {
        list.push(*kind);
        list.extend_from_slice(&u16_len(name.len()));
        list.extend_from_slice(name);
    }
    let mut ext = vec![0, 0];
    ext.extend_from_slice(&u16_len(list.len() + 2));
    ext.extend_from_slice(&u16_len(list.len()));
    ext.extend_from_slice(&list);
    ext
}

/// A big-endian u16 length (test inputs are small; larger is a test bug).
fn u16_len(n: usize) -> [u8; 2] {
    u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes()
}
