//! Reading one token from a file (`token_file`), so a launcher can hand the proxy its tokens
//! without putting them in the container's environment (visible to `docker inspect` and in
//! `/proc/<pid>/environ` for the life of the process).
//!
//! Like ssh with a private key, a file that group or others may read is refused: the token would
//! already be exposed to other users. The value goes straight into a [`SecretString`]; every
//! intermediate buffer is zeroized, and errors name the path and key, never the contents.

use super::ConfigError;
use secrecy::SecretString;
use std::io::Read;
use std::path::Path;
use zeroize::Zeroizing;

/// Token files larger than this are refused (a token is at most a few KiB; this bounds the read).
pub const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;

/// Reads the token in `path` (named by config key `key`): the whole file minus one trailing
/// newline (`\n` or `\r\n`). Refuses non-regular files, group/world-accessible modes (unix),
/// files over [`MAX_TOKEN_FILE_BYTES`], non-UTF-8 and empty values.
pub(crate) fn read(path: &Path, key: &str) -> Result<SecretString, ConfigError> {
    let fail = |why: String| ConfigError::TokenFile {
        path: path.to_owned(),
        key: key.to_owned(),
        why,
    };
    // Stat before opening: opening a FIFO would block start-up.
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot be read: {e}")))?;
    if !meta.is_file() {
        return Err(fail("is not a regular file".to_owned()));
    }
    let mut file = std::fs::File::open(path).map_err(|e| fail(format!("cannot be read: {e}")))?;
    // Check the mode on the opened file, so a swap after the check cannot slip through.
    let meta = file
        .metadata()
        .map_err(|e| fail(format!("cannot be read: {e}")))?;
    check_mode(&meta).map_err(fail)?;
    let mut buf = Zeroizing::new(Vec::with_capacity(
        usize::try_from(meta.len().min(MAX_TOKEN_FILE_BYTES) + 1).unwrap_or(0),
    ));
    (&mut file)
        .take(MAX_TOKEN_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| fail(format!("cannot be read: {e}")))?;
    if buf.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(fail(format!("is larger than {MAX_TOKEN_FILE_BYTES} bytes")));
    }
    let mut value: &[u8] = &buf;
    if let Some(rest) = value.strip_suffix(b"\n") {
        value = rest.strip_suffix(b"\r").unwrap_or(rest);
    }
    if value.is_empty() {
        return Err(fail("is empty".to_owned()));
    }
    let text = std::str::from_utf8(value).map_err(|_| fail("is not UTF-8 text".to_owned()))?;
    Ok(SecretString::from(text))
}

/// Refuses a file group or others can read, write or execute (`chmod 600` or `400` it).
#[cfg(unix)]
fn check_mode(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        Ok(())
    } else {
        Err(format!(
            "has mode {mode:04o}, which lets group or others access it; \
             a token file must be private to its owner (chmod 600)"
        ))
    }
}

#[cfg(not(unix))]
fn check_mode(_: &std::fs::Metadata) -> Result<(), String> {
    Ok(())
}
