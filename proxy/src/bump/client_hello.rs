//! Peek parser for the first bytes of a bumped tunnel: is this a TLS ClientHello, which
//! name (SNI) and which ALPN protocols does it carry, or do we need more bytes?
//!
//! Pure (no I/O) so that it can be fuzzed and property-tested. The caller re-runs it on its
//! growing buffer after every read; every answer other than `Incomplete` depends only on the
//! bytes already seen, so appending bytes never changes a decision already made. Non-TLS
//! input (HTTP, SSH, an HTTP/2 preface, SSLv2) is refused from its first byte.
//!
//! A ClientHello split over several handshake records is reassembled (up to
//! [`MAX_HELLO_RECORDS`] records): TLS allows it, and tools that evade SNI filters use it, so
//! answering `NotTls` would close legitimate clients and `Incomplete` would stall them.
//! Anything RFC 8446/6066 forbids that could make us and the real TLS stack disagree about
//! the name (two SNI extensions, two host names, bytes after the hello) is `Malformed`.

/// TLS record header: type (1), version (2), length (2).
pub const RECORD_HEADER_LEN: usize = 5;
/// Largest plaintext record payload TLS allows (2^14); longer records are refused.
pub const MAX_RECORD_LEN: usize = 1 << 14;
/// Largest ClientHello body we accept. Real ones, post-quantum key shares included, are a
/// few KiB; the limit keeps the total under the proxy's 64 KiB peek buffer.
pub const MAX_HELLO_LEN: usize = 32 * 1024;
/// Most records a ClientHello may be split over.
pub const MAX_HELLO_RECORDS: usize = 64;
/// Most ALPN protocols accepted in one ClientHello (real clients send 1 to 3).
pub const MAX_ALPN_PROTOCOLS: usize = 32;
/// Longest SNI host name (a DNS name is at most 253 bytes, 254 with the root dot).
pub const MAX_SNI_LEN: usize = 255;

const CONTENT_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const HANDSHAKE_HEADER_LEN: usize = 4;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
/// `encrypted_client_hello` (RFC 9849 / draft-ietf-tls-esni): the real server name travels
/// encrypted inside it, so the outer SNI we check may be only the CDN's public name.
const EXT_ECH: u16 = 0xfe0d;
const SNI_HOST_NAME: u8 = 0;

/// What the proxy needs from a ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHelloInfo {
    /// The `host_name` from the server_name extension, exactly as sent (not lowercased).
    pub sni: Option<String>,
    /// ALPN protocol names in the client's order; empty if the extension is absent.
    pub alpn: Vec<Vec<u8>>,
    /// The hello carries an encrypted ClientHello (or a GREASE one: the two look alike).
    pub ech: bool,
    /// Bytes of `buf` taken by the record(s) holding the ClientHello; anything after
    /// belongs to the next record.
    pub record_len: usize,
}

/// Why `buf` is not (yet) a ClientHello.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A valid prefix; read more. `needed_hint` is the total `buf` length required before
    /// the parser can make progress, when known.
    #[error("incomplete ClientHello")]
    Incomplete {
        /// Minimum total buffer length for the next step, if known.
        needed_hint: Option<usize>,
    },
    /// The bytes are not a TLS handshake at all (another protocol).
    #[error("not a TLS handshake")]
    NotTls,
    /// TLS-looking but invalid, or outside our bounds.
    #[error("malformed ClientHello: {0}")]
    Malformed(&'static str),
}

fn incomplete(needed: usize) -> ParseError {
    ParseError::Incomplete {
        needed_hint: Some(needed),
    }
}

/// Decide whether `buf` starts with a complete TLS ClientHello.
pub fn parse_client_hello(buf: &[u8]) -> Result<ClientHelloInfo, ParseError> {
    let mut pos = 0;
    let mut fragments: Vec<&[u8]> = Vec::new();
    let mut header = [0u8; HANDSHAKE_HEADER_LEN];
    let mut gathered = 0;
    loop {
        if fragments.len() >= MAX_HELLO_RECORDS {
            return Err(ParseError::Malformed(
                "ClientHello split over too many records",
            ));
        }
        let rest = buf.get(pos..).unwrap_or_default();
        let rec_len = record_header(rest, pos == 0).map_err(|e| match e {
            ParseError::Incomplete { .. } => incomplete(pos + RECORD_HEADER_LEN),
            other => other,
        })?;
        let body_start = pos + RECORD_HEADER_LEN;
        let body_end = body_start + rec_len;
        let avail = buf
            .get(body_start..body_end.min(buf.len()))
            .unwrap_or_default();

        // The handshake header may itself be split; check what we have of it already so a
        // non-ClientHello is refused without waiting for the whole record.
        for (slot, byte) in header.iter_mut().skip(gathered).zip(avail) {
            *slot = *byte;
        }
        let seen = gathered + avail.len();
        check_handshake_header(&header[..seen.min(HANDSHAKE_HEADER_LEN)])?;
        if avail.len() < rec_len {
            return Err(incomplete(body_end));
        }
        fragments.push(avail);
        gathered = seen;
        pos = body_end;

        if gathered < HANDSHAKE_HEADER_LEN {
            continue;
        }
        let msg_len = HANDSHAKE_HEADER_LEN + u24(&header[1..]);
        if gathered < msg_len {
            continue;
        }
        if gathered > msg_len {
            return Err(ParseError::Malformed(
                "data after the ClientHello in its record",
            ));
        }
        let (sni, alpn, ech) = if let [single] = fragments.as_slice() {
            parse_hello_body(single.get(HANDSHAKE_HEADER_LEN..).unwrap_or_default())?
        } else {
            let whole = fragments.concat();
            parse_hello_body(whole.get(HANDSHAKE_HEADER_LEN..).unwrap_or_default())?
        };
        return Ok(ClientHelloInfo {
            sni,
            alpn,
            ech,
            record_len: pos,
        });
    }
}

/// Validates as much of a record header as `rest` holds; returns the payload length.
fn record_header(rest: &[u8], first: bool) -> Result<usize, ParseError> {
    // Outside the first record the connection is already known to be TLS.
    let reject = if first {
        ParseError::NotTls
    } else {
        ParseError::Malformed("ClientHello interrupted by a non-handshake record")
    };
    match rest {
        [] => return Err(incomplete(RECORD_HEADER_LEN)),
        [t, ..] if *t != CONTENT_HANDSHAKE => return Err(reject),
        [_, major, ..] if *major != 3 => return Err(reject),
        // Record-layer minor 0 (SSL 3.0 framing) is allowed by RFC 5246 E.1 for compatibility.
        [_, _, minor, ..] if *minor > 4 => return Err(reject),
        _ => {}
    }
    let [_, _, _, hi, lo, ..] = rest else {
        return Err(incomplete(RECORD_HEADER_LEN));
    };
    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
    if len == 0 {
        return Err(ParseError::Malformed("empty handshake record"));
    }
    if len > MAX_RECORD_LEN {
        return Err(ParseError::Malformed("record longer than 2^14 bytes"));
    }
    Ok(len)
}

fn check_handshake_header(header: &[u8]) -> Result<(), ParseError> {
    if let Some(&kind) = header.first() {
        if kind != HANDSHAKE_CLIENT_HELLO {
            return Err(ParseError::Malformed(
                "first handshake message is not a ClientHello",
            ));
        }
    }
    if let Some(len) = header.get(1..HANDSHAKE_HEADER_LEN) {
        if u24(len) > MAX_HELLO_LEN {
            return Err(ParseError::Malformed(
                "ClientHello longer than MAX_HELLO_LEN",
            ));
        }
    }
    Ok(())
}

fn u24(b: &[u8]) -> usize {
    b.iter()
        .take(3)
        .fold(0, |acc, &x| (acc << 8) | usize::from(x))
}

/// SNI, ALPN, and whether an ECH extension is present.
type HelloFields = (Option<String>, Vec<Vec<u8>>, bool);

fn parse_hello_body(body: &[u8]) -> Result<HelloFields, ParseError> {
    let mut r = Reader(body);
    let version = r.u16("legacy_version")?;
    if !(0x0301..=0x0304).contains(&version) {
        return Err(ParseError::Malformed("unsupported ClientHello version"));
    }
    r.take(32, "random")?;
    if r.vec_u8("session_id")?.len() > 32 {
        return Err(ParseError::Malformed("session_id longer than 32 bytes"));
    }
    let suites = r.vec_u16("cipher_suites")?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err(ParseError::Malformed("bad cipher_suites length"));
    }
    if r.vec_u8("compression_methods")?.is_empty() {
        return Err(ParseError::Malformed("no compression methods"));
    }
    if r.is_empty() {
        return Ok((None, Vec::new(), false)); // TLS 1.2 without extensions
    }
    let mut exts = Reader(r.vec_u16("extensions")?);
    if !r.is_empty() {
        return Err(ParseError::Malformed("bytes after the extensions"));
    }

    let mut types = Vec::new();
    let (mut sni, mut alpn) = (None, Vec::new());
    while !exts.is_empty() {
        let kind = exts.u16("extension type")?;
        let data = exts.vec_u16("extension data")?;
        types.push(kind);
        match kind {
            EXT_SERVER_NAME => sni = parse_sni(data)?,
            EXT_ALPN => alpn = parse_alpn(data)?,
            _ => {}
        }
    }
    // A second server_name or ALPN extension could make us and the TLS stack read different
    // values; RFC 8446 forbids duplicates of any type.
    types.sort_unstable();
    if types.windows(2).any(|w| w[0] == w[1]) {
        return Err(ParseError::Malformed("duplicate extension"));
    }
    let ech = types.binary_search(&EXT_ECH).is_ok();
    Ok((sni, alpn, ech))
}

fn parse_sni(data: &[u8]) -> Result<Option<String>, ParseError> {
    let mut outer = Reader(data);
    let mut list = Reader(outer.vec_u16("server_name_list")?);
    if !outer.is_empty() || list.is_empty() {
        return Err(ParseError::Malformed("bad server_name extension"));
    }
    let mut host = None;
    while !list.is_empty() {
        let kind = list.u8("server name type")?;
        let name = list.vec_u16("server name")?;
        if kind != SNI_HOST_NAME {
            continue;
        }
        if host.is_some() {
            return Err(ParseError::Malformed("more than one host_name in SNI"));
        }
        let valid = !name.is_empty()
            && name.len() <= MAX_SNI_LEN
            && name
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if !valid {
            return Err(ParseError::Malformed("SNI is not a DNS host name"));
        }
        // Only ASCII bytes passed the check above, so this conversion cannot fail.
        host = Some(String::from_utf8_lossy(name).into_owned());
    }
    Ok(host)
}

fn parse_alpn(data: &[u8]) -> Result<Vec<Vec<u8>>, ParseError> {
    let mut outer = Reader(data);
    let mut list = Reader(outer.vec_u16("ALPN list")?);
    if !outer.is_empty() || list.is_empty() {
        return Err(ParseError::Malformed("bad ALPN extension"));
    }
    let mut protocols = Vec::new();
    while !list.is_empty() {
        let name = list.vec_u8("ALPN protocol")?;
        if name.is_empty() {
            return Err(ParseError::Malformed("empty ALPN protocol name"));
        }
        if protocols.len() == MAX_ALPN_PROTOCOLS {
            return Err(ParseError::Malformed("too many ALPN protocols"));
        }
        protocols.push(name.to_vec());
    }
    Ok(protocols)
}

/// Cursor over a complete handshake message: running out of bytes here means the message
/// lied about its lengths, so it is `Malformed`, never `Incomplete`.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ParseError> {
        if self.0.len() < n {
            return Err(ParseError::Malformed(what));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, ParseError> {
        match *self.take(1, what)? {
            [b] => Ok(b),
            _ => Err(ParseError::Malformed(what)),
        }
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, ParseError> {
        match *self.take(2, what)? {
            [hi, lo] => Ok(u16::from_be_bytes([hi, lo])),
            _ => Err(ParseError::Malformed(what)),
        }
    }

    fn vec_u8(&mut self, what: &'static str) -> Result<&'a [u8], ParseError> {
        let n = usize::from(self.u8(what)?);
        self.take(n, what)
    }

    fn vec_u16(&mut self, what: &'static str) -> Result<&'a [u8], ParseError> {
        let n = usize::from(self.u16(what)?);
        self.take(n, what)
    }
}

#[cfg(test)]
mod tests;
