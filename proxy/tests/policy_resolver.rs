//! Guarded resolution: every address checked, exemptions honoured, exactly the checked
//! addresses returned. The hickory tests use a real DNS server on loopback (a few lines of UDP
//! below) configured through `[upstream] nameservers`, so rebinding is tested end to end
//! without network access.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use egress_proxy::config::Config;
use egress_proxy::policy::{DenyReason, Policy, Resolver};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

const ALLOW: &str = r#"
[egress]
allow = ["*.dns.test:*", "localhost:8080", "app.localhost", "127.0.0.1:9000", "10.9.0.0/16:5432"]
allow_private = ["10.20.0.5/32", "fd00:abcd::/32"]
[upstream.hosts]
"pinned.dns.test" = "127.0.0.1"
"#;

fn config(extra: &str) -> Config {
    Config::from_toml_str(&format!("{ALLOW}{extra}"), Path::new("/")).unwrap()
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn static_resolver(cfg: &Config) -> Resolver {
    let answers: HashMap<String, Vec<IpAddr>> = [
        (
            "public.dns.test",
            ips(&["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]),
        ),
        ("rebind.dns.test", ips(&["10.0.0.5"])),
        ("mixed.dns.test", ips(&["93.184.216.34", "127.0.0.1"])),
        ("meta.dns.test", ips(&["64:ff9b::a9fe:a9fe"])),
        ("mapped.dns.test", ips(&["::ffff:192.168.1.1"])),
        ("exempt.dns.test", ips(&["10.20.0.5"])),
        ("exempt6.dns.test", ips(&["fd00:abcd::7"])),
        ("nat64exempt.dns.test", ips(&["64:ff9b::a14:5"])),
        ("zero.dns.test", ips(&["0.0.0.0"])),
        ("empty.dns.test", vec![]),
        (
            "dup.dns.test",
            ips(&["93.184.216.34", "::ffff:93.184.216.34"]),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Resolver::with_static(cfg, answers)
}

async fn resolve(
    policy: &Policy,
    r: &Resolver,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, egress_proxy::policy::Denial> {
    let target = policy
        .check(host, port)
        .map_err(|d| panic!("{host}:{port} not allowed: {}", d.body()))
        .unwrap();
    r.resolve_checked(&target).await
}

#[tokio::test]
async fn every_address_is_checked_and_returned_exactly() {
    let cfg = config("");
    let (p, r) = (Policy::from_config(&cfg), static_resolver(&cfg));
    let got = resolve(&p, &r, "public.dns.test", 443).await.unwrap();
    assert_eq!(
        got,
        [
            "93.184.216.34:443".parse().unwrap(),
            "[2606:2800:220:1:248:1893:25c8:1946]:443".parse().unwrap()
        ]
    );
    assert_eq!(
        resolve(&p, &r, "dup.dns.test", 443).await.unwrap().len(),
        1,
        "mapped duplicate folded"
    );

    let d = resolve(&p, &r, "rebind.dns.test", 443).await.unwrap_err();
    assert_eq!(d.status(), 403);
    assert!(
        d.body().contains(
            "reason: rebind.dns.test resolves to 10.0.0.5, a private network (RFC 1918) address"
        ),
        "{}",
        d.body()
    );
    assert!(d.body().contains("allow_private = [\"10.0.0.5/32\"]"));

    let d = resolve(&p, &r, "mixed.dns.test", 443).await.unwrap_err();
    assert!(
        matches!(d.reason, DenyReason::PrivateAddress { addr, .. } if addr.to_string() == "127.0.0.1"),
        "{:?}",
        d.reason
    );

    let d = resolve(&p, &r, "meta.dns.test", 80).await.unwrap_err();
    assert!(
        d.body().contains("NAT64 form of 169.254.169.254"),
        "{}",
        d.body()
    );
    let d = resolve(&p, &r, "mapped.dns.test", 80).await.unwrap_err();
    assert!(
        matches!(d.reason, DenyReason::PrivateAddress { addr, .. } if addr.to_string() == "192.168.1.1")
    );
    let d = resolve(&p, &r, "zero.dns.test", 80).await.unwrap_err();
    assert!(matches!(d.reason, DenyReason::NeverDialable { .. }));
    assert_eq!(
        resolve(&p, &r, "empty.dns.test", 80)
            .await
            .unwrap_err()
            .status(),
        502
    );
    assert_eq!(
        resolve(&p, &r, "nxdomain.dns.test", 80)
            .await
            .unwrap_err()
            .status(),
        502
    );
}

#[tokio::test]
async fn exemptions() {
    let cfg = config("");
    let (p, r) = (Policy::from_config(&cfg), static_resolver(&cfg));
    assert_eq!(
        resolve(&p, &r, "exempt.dns.test", 443).await.unwrap(),
        ["10.20.0.5:443".parse().unwrap()]
    );
    assert!(resolve(&p, &r, "exempt6.dns.test", 443).await.is_ok());
    assert!(
        resolve(&p, &r, "nat64exempt.dns.test", 443).await.is_ok(),
        "embedded address exempt"
    );
    // Static override: trusted, not resolved, not guarded.
    assert_eq!(
        resolve(&p, &r, "Pinned.DNS.Test.", 8443).await.unwrap(),
        ["127.0.0.1:8443".parse().unwrap()]
    );
    // Explicit IP entry: exempt on its port.
    assert_eq!(
        resolve(&p, &r, "0x7f.1", 9000).await.unwrap(),
        ["127.0.0.1:9000".parse().unwrap()]
    );
    assert_eq!(
        resolve(&p, &r, "10.9.8.7", 5432).await.unwrap(),
        ["10.9.8.7:5432".parse().unwrap()]
    );
    // An IPv6 entry over a translation prefix allows the prefix, not the private IPv4 its
    // addresses embed: those still need `allow_private`.
    let cfg = Config::from_toml_str(
        "[egress]\nallow = [\"[64:ff9b::]/96:443\"]\nallow_private = [\"10.20.0.5/32\"]\n",
        Path::new("/"),
    )
    .unwrap();
    let (p, r) = (Policy::from_config(&cfg), static_resolver(&cfg));
    let d = resolve(&p, &r, "[64:ff9b::a9fe:a9fe]", 443)
        .await
        .unwrap_err();
    assert!(
        d.body().contains("NAT64 form of 169.254.169.254"),
        "{}",
        d.body()
    );
    assert!(
        resolve(&p, &r, "[64:ff9b::a14:5]", 443).await.is_ok(),
        "allow_private covers it"
    );
    assert!(
        resolve(&p, &r, "[64:ff9b::5db8:d822]", 443).await.is_ok(),
        "a public IPv4"
    );
}

#[tokio::test]
async fn localhost_names_are_never_resolved_unless_pinned() {
    let cfg = config("");
    let (p, r) = (Policy::from_config(&cfg), static_resolver(&cfg));
    for h in ["localhost", "app.localhost"] {
        let port = if h == "localhost" { 8080 } else { 443 };
        let d = resolve(&p, &r, h, port).await.unwrap_err();
        assert!(matches!(d.reason, DenyReason::LocalhostName), "{h}");
        assert!(d.body().contains("[upstream.hosts]"), "{}", d.body());
    }
    let cfg = config("\"localhost\" = \"127.0.0.1\"\n");
    let (p, r) = (Policy::from_config(&cfg), static_resolver(&cfg));
    assert_eq!(
        resolve(&p, &r, "localhost", 8080).await.unwrap(),
        ["127.0.0.1:8080".parse().unwrap()]
    );
    // The real hickory resolver refuses too, without touching the network.
    let real = Resolver::from_config(&config(""));
    let d = real
        .resolve_checked(&p.check("app.localhost", 443).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(d.reason, DenyReason::LocalhostName));
}

/// A minimal authoritative DNS server: A/AAAA answers from a table, NXDOMAIN otherwise,
/// silence for `slow.dns.test`.
async fn dns_server(table: HashMap<&'static str, Vec<IpAddr>>) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                return;
            };
            if let Some(reply) = answer(&buf[..n], &table) {
                let _ = sock.send_to(&reply, peer).await;
            }
        }
    });
    addr
}

fn answer(q: &[u8], table: &HashMap<&'static str, Vec<IpAddr>>) -> Option<Vec<u8>> {
    let mut i = 12;
    let mut labels = Vec::new();
    while q[i] != 0 {
        let len = q[i] as usize;
        labels.push(String::from_utf8_lossy(&q[i + 1..i + 1 + len]).to_ascii_lowercase());
        i += 1 + len;
    }
    let qtype = u16::from_be_bytes([q[i + 1], q[i + 2]]);
    let question_end = i + 5;
    let name = labels.join(".");
    if name == "slow.dns.test" {
        return None;
    }
    let records: Vec<Vec<u8>> = match table.get(name.as_str()) {
        None => vec![],
        Some(list) => list
            .iter()
            .filter_map(|ip| match (ip, qtype) {
                (IpAddr::V4(a), 1) => Some(a.octets().to_vec()),
                (IpAddr::V6(a), 28) => Some(a.octets().to_vec()),
                _ => None,
            })
            .collect(),
    };
    let rcode = if table.contains_key(name.as_str()) {
        0
    } else {
        3
    };
    let mut r = Vec::new();
    r.extend_from_slice(&q[0..2]);
    r.extend_from_slice(&[0x85, 0x80 | rcode]); // QR, AA, RD, RA
    r.extend_from_slice(&[0, 1]);
    r.extend_from_slice(&(records.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(&q[12..question_end]);
    for rdata in records {
        r.extend_from_slice(&[0xc0, 0x0c]);
        r.extend_from_slice(&qtype.to_be_bytes());
        r.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        r.extend_from_slice(&rdata);
    }
    Some(r)
}

#[tokio::test]
async fn hickory_against_a_loopback_dns_server() {
    let server = dns_server(HashMap::from([
        ("public.dns.test", ips(&["93.184.216.34"])),
        ("rebind.dns.test", ips(&["169.254.169.254"])),
        ("six.dns.test", ips(&["fe80::1"])),
        ("nodata.dns.test", vec![]),
    ]))
    .await;
    let cfg = config(&format!("[upstream]\nnameservers = [\"{server}\"]\n"));
    let p = Policy::from_config(&cfg);
    let r = Resolver::from_config(&cfg).with_timeout(Duration::from_secs(3));

    assert_eq!(
        resolve(&p, &r, "public.dns.test", 443).await.unwrap(),
        ["93.184.216.34:443".parse().unwrap()]
    );
    let d = resolve(&p, &r, "rebind.dns.test", 443).await.unwrap_err();
    assert!(
        d.body()
            .contains("resolves to 169.254.169.254, a link-local / cloud metadata"),
        "{}",
        d.body()
    );
    let d = resolve(&p, &r, "six.dns.test", 443).await.unwrap_err();
    assert!(
        matches!(d.reason, DenyReason::PrivateAddress { .. }),
        "{:?}",
        d.reason
    );
    let d = resolve(&p, &r, "missing.dns.test", 443).await.unwrap_err();
    assert_eq!(d.status(), 502, "{:?}", d.reason);
    let d = resolve(&p, &r, "nodata.dns.test", 443).await.unwrap_err();
    assert_eq!(d.status(), 502, "{:?}", d.reason);
}

#[tokio::test]
async fn hickory_timeout_is_bounded() {
    let server = dns_server(HashMap::new()).await;
    let cfg = config(&format!("[upstream]\nnameservers = [\"{server}\"]\n"));
    let p = Policy::from_config(&cfg);
    let r = Resolver::from_config(&cfg).with_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let d = resolve(&p, &r, "slow.dns.test", 443).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(d.status(), 502);
    assert!(
        matches!(d.reason, DenyReason::ResolveFailed(_)),
        "{:?}",
        d.reason
    );
}
