//! The TOML shape, as serde sees it. Values stay strings here; `validate` turns them into typed,
//! normalized values with errors that name the key.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    pub routes_listen: Option<String>,
    pub audit: Option<String>,
    pub ca: Option<RawCa>,
    #[serde(default)]
    pub clients: RawClients,
    #[serde(default)]
    pub egress: RawEgress,
    #[serde(default)]
    pub upstream: RawUpstream,
    #[serde(default)]
    pub dlp: RawDlp,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub inject: Vec<RawInject>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCa {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClients {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEgress {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub passthrough: Vec<String>,
    #[serde(default)]
    pub allow_private: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstream {
    #[serde(default)]
    pub extra_roots: Vec<String>,
    #[serde(default)]
    pub hosts: BTreeMap<String, String>,
    #[serde(default)]
    pub nameservers: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDlp {
    pub mode: Option<String>,
    #[serde(default)]
    pub disable_rules: Vec<String>,
    #[serde(default)]
    pub warn_rules: Vec<String>,
    #[serde(default)]
    pub exempt_hosts: Vec<String>,
    #[serde(default)]
    pub known_secret_env: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub path: String,
    pub upstream: String,
    pub auth_scheme: Option<String>,
    pub token_env: Option<String>,
    pub token_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInject {
    pub host: String,
    pub header: String,
    pub placeholder: String,
    pub token_env: Option<String>,
    pub token_file: Option<String>,
    #[serde(default)]
    pub require: bool,
}
