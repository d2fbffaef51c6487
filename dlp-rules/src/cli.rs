//! File scanning for `egress-proxy scan`: a file is treated as a request body, streamed.

use std::io::Read;
use std::sync::Arc;

use crate::engine::Engine;
use crate::error::DlpError;
use crate::finding::Finding;
use crate::stream::BodyContext;

const READ_CHUNK: usize = 256 << 10;

/// Scans everything `reader` yields; a `path_hint` ending in `.gz` is gunzipped first.
pub fn scan_reader(
    engine: &Arc<Engine>,
    mut reader: impl Read,
    path_hint: &str,
) -> Result<Vec<Finding>, DlpError> {
    let mut ctx = BodyContext::body();
    if path_hint.ends_with(".gz") {
        ctx = ctx.with_content_encoding("gzip");
    }
    let mut scanner = engine.body_scanner(ctx)?;
    let mut findings = Vec::new();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        findings.extend(scanner.feed(&buf[..n])?.findings);
    }
    findings.extend(scanner.finish()?.findings);
    Ok(findings)
}
