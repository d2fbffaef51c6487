//! Python `requests`, the HTTP client most agent tooling uses, run for real.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::Engine;

use super::{run_with_timeout, scrub_env};

/// Reads the request spec as JSON from argv[1] and the body from stdin, so a
/// secret body never lands on the argv.
const SCRIPT: &str = r#"
import base64, json, sys
import requests
spec = json.loads(sys.argv[1])
body = sys.stdin.buffer.read() if spec.get("has_body") else None
s = requests.Session()
s.trust_env = False
proxies = {"http": spec["proxy"], "https": spec["proxy"]} if spec.get("proxy") else None
try:
    r = s.request(spec["method"], spec["url"], headers=spec.get("headers") or {}, data=body,
                  proxies=proxies, verify=spec.get("verify", True), timeout=spec["timeout"],
                  allow_redirects=False)
except Exception as e:
    print(json.dumps({"error": type(e).__name__ + ": " + str(e)}))
    sys.exit(3)
print(json.dumps({"status": r.status_code, "headers": dict(r.headers),
                  "body_b64": base64.b64encode(r.content).decode()}))
"#;

/// One `requests` call.
#[derive(Debug, Clone)]
pub struct PyRequest {
    pub method: String,
    pub url: String,
    /// Proxy URL for both http and https (`None`: direct).
    pub proxy: Option<String>,
    /// CA bundle for `verify=` (`None`: requests' default bundle).
    pub ca: Option<PathBuf>,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub timeout: Duration,
}

impl PyRequest {
    /// GET `url` with a 30 s timeout.
    pub fn get(url: impl Into<String>) -> Self {
        Self {
            method: "GET".into(),
            url: url.into(),
            proxy: None,
            ca: None,
            headers: Vec::new(),
            body: None,
            timeout: Duration::from_secs(30),
        }
    }

    /// POST `url` with `body`.
    pub fn post(url: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Self {
            method: "POST".into(),
            body: Some(body.into()),
            ..Self::get(url)
        }
    }

    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.proxy = Some(url.into());
        self
    }

    pub fn ca(mut self, path: impl AsRef<Path>) -> Self {
        self.ca = Some(path.as_ref().to_path_buf());
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Result of a `requests` call. `error` is set (and `status` 0) when
/// requests raised, e.g. `ProxyError` or `SSLError`.
#[derive(Debug, Clone)]
pub struct PyResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub error: Option<String>,
    pub stderr: String,
}

impl PyResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Runs the request with `python3 -c` and the `requests` library.
pub fn python_requests(req: &PyRequest) -> Result<PyResponse> {
    let verify = match &req.ca {
        Some(ca) => serde_json::Value::String(ca.to_string_lossy().into_owned()),
        None => serde_json::Value::Bool(true),
    };
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let spec = serde_json::json!({
        "method": req.method, "url": req.url, "proxy": req.proxy, "verify": verify,
        "headers": headers, "has_body": req.body.is_some(), "timeout": req.timeout.as_secs_f64(),
    });
    let mut cmd = Command::new("python3");
    scrub_env(&mut cmd);
    cmd.arg("-c").arg(SCRIPT).arg(spec.to_string());
    let out = run_with_timeout(cmd, req.body.clone(), req.timeout + Duration::from_secs(15))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let line = String::from_utf8_lossy(&out.stdout);
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line.trim()) else {
        bail!(
            "python requests produced no result (exit {:?}): {stderr}",
            out.status.code()
        );
    };
    if let Some(err) = v.get("error").and_then(|e| e.as_str()) {
        return Ok(PyResponse {
            status: 0,
            headers: Vec::new(),
            body: Vec::new(),
            error: Some(err.into()),
            stderr,
        });
    }
    let body = base64::engine::general_purpose::STANDARD
        .decode(v["body_b64"].as_str().unwrap_or_default())
        .context("decoding body")?;
    let headers = v["headers"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.to_ascii_lowercase(),
                        v.as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let status = v["status"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .unwrap_or(0);
    Ok(PyResponse {
        status,
        headers,
        body,
        error: None,
        stderr,
    })
}
