//! DNS rebinding end to end: the real proxy resolves through a real DNS server on loopback
//! (`[upstream] nameservers`), so an allowlisted name whose answer is private must be refused
//! before the CONNECT is answered, and a name whose answer is public must be dialed at exactly
//! that address. Nothing here leaves the machine: the only non-private addresses ever answered
//! for a dialable name are this machine's own interface addresses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use egress_proxy::policy::ssrf;
use testkit::{
    raw_connect, toml_str, Curl, ProxyCa, ProxyProcess, TestCa, Upstream, UpstreamOptions,
};

const T: Duration = Duration::from_secs(10);

/// A minimal authoritative DNS server on loopback: A/AAAA answers from a table, NXDOMAIN
/// otherwise. Stops when dropped.
struct Dns {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Dns {
    fn start(table: HashMap<String, Vec<IpAddr>>) -> Dns {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = answer(&buf[..n], &table) {
                    let _ = sock.send_to(&reply, peer);
                }
            }
        });
        Dns { addr, stop }
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn answer(q: &[u8], table: &HashMap<String, Vec<IpAddr>>) -> Option<Vec<u8>> {
    let mut i = 12;
    let mut labels = Vec::new();
    while *q.get(i)? != 0 {
        let len = q[i] as usize;
        labels.push(String::from_utf8_lossy(q.get(i + 1..i + 1 + len)?).to_ascii_lowercase());
        i += 1 + len;
    }
    let qtype = u16::from_be_bytes([*q.get(i + 1)?, *q.get(i + 2)?]);
    let question_end = i + 5;
    let name = labels.join(".");
    let records: Vec<Vec<u8>> = table
        .get(&name)
        .into_iter()
        .flatten()
        .filter_map(|ip| match (ip, qtype) {
            (IpAddr::V4(a), 1) => Some(a.octets().to_vec()),
            (IpAddr::V6(a), 28) => Some(a.octets().to_vec()),
            _ => None,
        })
        .collect();
    let rcode = if table.contains_key(&name) { 0 } else { 3 };
    let mut r = Vec::new();
    r.extend_from_slice(&q[0..2]);
    r.extend_from_slice(&[0x85, 0x80 | rcode]); // QR, AA, RD, RA
    r.extend_from_slice(&[0, 1]);
    r.extend_from_slice(&(records.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(q.get(12..question_end)?);
    for rdata in records {
        r.extend_from_slice(&[0xc0, 0x0c]);
        r.extend_from_slice(&qtype.to_be_bytes());
        r.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        r.extend_from_slice(&rdata);
    }
    Some(r)
}

/// An IPv4 address of this machine that the private-address guard does not block (so a dial
/// to it stays on this machine), if there is one. Read from the kernel's local routes.
fn local_public_v4() -> Option<Ipv4Addr> {
    let trie = std::fs::read_to_string("/proc/net/fib_trie").ok()?;
    let mut last: Option<Ipv4Addr> = None;
    for line in trie.lines() {
        let line = line.trim();
        if let Some(addr) = line.strip_prefix("|-- ") {
            last = addr.parse().ok();
        } else if line == "/32 host LOCAL" {
            if let Some(ip) = last.filter(|ip| ssrf::classify(IpAddr::V4(*ip)).is_none()) {
                if TcpListener::bind((ip, 0)).is_ok() {
                    return Some(ip);
                }
            }
        }
    }
    None
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The proxy (resolving through `dns`) and a test CA it trusts for upstreams.
struct Rig {
    _dns: Dns,
    proxy_ca: ProxyCa,
    test_ca: TestCa,
    proxy: ProxyProcess,
}

fn rig(table: &[(&str, Vec<IpAddr>)]) -> Rig {
    rig_with(table, "")
}

/// `egress`: more keys for the `[egress]` table (e.g. `allow_private`).
fn rig_with(table: &[(&str, Vec<IpAddr>)], egress: &str) -> Rig {
    let dns = Dns::start(
        table
            .iter()
            .map(|(n, ips)| ((*n).to_owned(), ips.clone()))
            .collect(),
    );
    let bin = common::bin();
    let proxy_ca = ProxyCa::init(&bin).unwrap();
    let test_ca = TestCa::new().unwrap();
    let config = format!(
        "listen = \"127.0.0.1:0\"\n{ca}\n[egress]\nallow = [\"*.rebind.example:*\"]\n{egress}\n\
         [upstream]\nnameservers = [\"{dns}\"]\nextra_roots = [{roots}]\n",
        ca = proxy_ca.config_section(),
        dns = dns.addr,
        roots = toml_str(&test_ca.ca_pem_path().to_string_lossy()),
    );
    let proxy = ProxyProcess::start(&bin, &config, &[]).unwrap();
    Rig {
        _dns: dns,
        proxy_ca,
        test_ca,
        proxy,
    }
}

impl Rig {
    fn curl(&self, url: &str) -> Curl {
        Curl::new(url)
            .proxy(self.proxy.proxy_url())
            .cacert(self.proxy_ca.cert_path())
            .max_time(Duration::from_secs(20))
    }
}

/// A loopback port with a listener that must never see a connection.
fn trap() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

fn assert_untouched(l: &TcpListener) {
    match l.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the proxy dialed the private address: {other:?}"),
    }
}

#[test]
fn allowlisted_name_with_a_private_answer_is_denied_before_the_connect_is_answered() {
    let r = rig(&[
        ("rebind.example", vec![ip("127.0.0.1")]),
        ("ten.rebind.example", vec![ip("10.1.2.3")]),
        ("meta.rebind.example", vec![ip("169.254.169.254")]),
        ("mapped.rebind.example", vec![ip("::ffff:127.0.0.1")]),
    ]);
    let (trap, port) = trap();
    for (host, addr, class) in [
        ("rebind.example", "127.0.0.1", "loopback"),
        (
            "ten.rebind.example",
            "10.1.2.3",
            "private network (RFC 1918)",
        ),
        (
            "meta.rebind.example",
            "169.254.169.254",
            "link-local / cloud metadata",
        ),
        ("mapped.rebind.example", "127.0.0.1", "loopback"),
    ] {
        let (resp, _) = raw_connect(r.proxy.listen_addr(), &format!("{host}:{port}"), T).unwrap();
        assert_eq!(resp.status, 403, "{host}: {}", resp.text());
        let body = resp.text();
        assert!(
            body.contains(&format!("{host} resolves to {addr}")),
            "{body}"
        );
        assert!(body.contains(class), "{body}");
        assert!(
            body.contains(&format!("allow_private = [\"{addr}/32\"]")),
            "{body}"
        );
    }
    // curl sees the refusal as the CONNECT reply itself, never a tunnel.
    let out = r
        .curl(&format!("https://rebind.example:{port}/"))
        .run()
        .unwrap();
    assert_eq!(out.connect_status, 403, "{}", out.stderr);
    assert_ne!(out.exit_code, 0);
    assert_untouched(&trap);
    let denies: Vec<_> = r
        .proxy
        .audit_lines()
        .into_iter()
        .filter(|e| e["decision"] == "deny" && e["kind"] == "connect")
        .collect();
    assert_eq!(denies.len(), 5, "{denies:?}");
}

#[test]
fn a_mix_of_public_and_private_answers_is_denied() {
    // Public first, so a guard that checked only the first answer would let it through. The
    // public address is this machine's own when it has one (a buggy dial stays local).
    let public = local_public_v4().map_or(ip("203.0.113.7"), IpAddr::V4);
    // The resolver asks AAAA only when there is no A record (hickory's `Ipv4thenIpv6`), and dials
    // only what it checked; so the IPv6 mix is AAAA-only, private first (nothing could leave).
    let r = rig(&[
        ("mixed.rebind.example", vec![public, ip("127.0.0.1")]),
        (
            "mixed6.rebind.example",
            vec![ip("fd00::7"), ip("2001:db8::7")],
        ),
    ]);
    let (trap, port) = trap();
    for (host, addr) in [
        ("mixed.rebind.example", "127.0.0.1"),
        ("mixed6.rebind.example", "fd00::7"),
    ] {
        let (resp, _) = raw_connect(r.proxy.listen_addr(), &format!("{host}:{port}"), T).unwrap();
        assert_eq!(resp.status, 403, "{host}: {}", resp.text());
        assert!(
            resp.text().contains(&format!("resolves to {addr}")),
            "{}",
            resp.text()
        );
    }
    assert_untouched(&trap);
}

#[test]
fn absolute_form_plain_http_is_guarded_the_same_way() {
    let public = local_public_v4();
    let mut table = vec![("rebind.example", vec![ip("127.0.0.1")])];
    if let Some(p) = public {
        table.push(("open.rebind.example", vec![IpAddr::V4(p)]));
    }
    let r = rig(&table);
    let (trap, port) = trap();
    let out = r
        .curl(&format!("http://rebind.example:{port}/"))
        .run()
        .unwrap();
    assert_eq!(out.status, 403, "{}", out.text());
    assert!(
        out.text().contains("rebind.example resolves to 127.0.0.1"),
        "{}",
        out.text()
    );
    assert!(out.text().contains("allow_private"), "{}", out.text());
    assert_untouched(&trap);

    let Some(public) = public else {
        eprintln!("skipped: no non-private local address to answer with (502 case)");
        return;
    };
    let closed = closed_port(public);
    let out = r
        .curl(&format!("http://open.rebind.example:{closed}/"))
        .run()
        .unwrap();
    assert_eq!(out.status, 502, "{}", out.text());
}

/// A port on `ip` that nothing listens on (bound, then released).
fn closed_port(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_public_answer_is_dialed_exactly_and_a_dead_one_is_a_502_not_a_403() {
    let Some(public) = local_public_v4() else {
        eprintln!(
            "skipped: this machine has no non-private address; a public answer would leave it"
        );
        return;
    };
    let r = rig(&[
        ("open.rebind.example", vec![IpAddr::V4(public)]),
        ("live.rebind.example", vec![IpAddr::V4(public)]),
    ]);
    // Nothing listens: the policy allows it (CONNECT 200), the dial fails (502).
    let closed = closed_port(public);
    let out = r
        .curl(&format!("https://open.rebind.example:{closed}/"))
        .run()
        .unwrap();
    assert_eq!(out.connect_status, 200, "{}", out.stderr);
    assert_eq!(out.status, 502, "{}", out.text());

    // A real upstream on that address: reached through exactly the answered address.
    let (cert, key) = r.test_ca.issue(&["live.rebind.example"]).unwrap();
    let upstream = Upstream::start(
        UpstreamOptions::tls(cert, key).listen(SocketAddr::new(IpAddr::V4(public), 0)),
    )
    .unwrap();
    let url = upstream.url("live.rebind.example", "/echo");
    let out = r.curl(&url).run().unwrap();
    assert_eq!(out.status, 200, "{} {}", out.stderr, out.text());
    assert_eq!(upstream.requests().len(), 1);
}

/// `allow_private` is the operator's exemption: a name that resolves into a listed range is
/// reached (a real TLS upstream on loopback), while an answer outside the range is still refused.
#[test]
fn allow_private_exempts_exactly_the_listed_range() {
    let r = rig_with(
        &[
            ("svc.rebind.example", vec![ip("127.0.0.1")]),
            ("ten.rebind.example", vec![ip("10.1.2.3")]),
        ],
        "allow_private = [\"127.0.0.1/32\"]",
    );
    let (cert, key) = r.test_ca.issue(&["svc.rebind.example"]).unwrap();
    let upstream = Upstream::start(UpstreamOptions::tls(cert, key)).unwrap();
    let url = upstream.url("svc.rebind.example", "/echo");
    let out = r.curl(&url).run().unwrap();
    assert_eq!(out.status, 200, "{} {}", out.text(), out.stderr);
    assert_eq!(upstream.requests().len(), 1);

    let (trap, port) = trap();
    let (resp, _) = raw_connect(
        r.proxy.listen_addr(),
        &format!("ten.rebind.example:{port}"),
        T,
    )
    .unwrap();
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert!(
        resp.text().contains("resolves to 10.1.2.3"),
        "{}",
        resp.text()
    );
    assert_untouched(&trap);
}
