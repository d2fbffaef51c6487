//! Tests for the WebSocket relay: framing at every split offset, masking, fragmented messages,
//! and whole-relay behaviour on clean and secret-bearing messages.

use super::*;
use crate::config::{Config, Secrets};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn inspector() -> Arc<Inspector> {
    let cfg = Config::embedded_default().unwrap();
    Arc::new(Inspector::new(&cfg, &Secrets::default()).unwrap())
}

/// A synthetic Anthropic-shaped key (random alphabet, never a real one).
fn secret() -> String {
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let body: String = (0..93)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHA[(x % ALPHA.len() as u64) as usize] as char
        })
        .collect();
    format!("sk-ant-api03-{body}AA")
}

fn encode(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(m | n as u8),
        n if n <= 0xffff => {
            f.push(m | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(m | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mut p = payload.to_vec();
    if let Some(k) = mask {
        f.extend_from_slice(&k);
        unmask(&mut p, k);
    }
    f.extend_from_slice(&p);
    f
}

fn drain(r: &mut FrameReader) -> Vec<(Header, Bytes)> {
    let mut out = Vec::new();
    while let Some(f) = r.next(|_| Ok::<(), ()>(())).unwrap() {
        out.push(f);
    }
    out
}

fn payload_of((h, raw): &(Header, Bytes)) -> Vec<u8> {
    let mut p = raw[h.header_len..].to_vec();
    if let Some(k) = h.mask {
        unmask(&mut p, k);
    }
    p
}

#[test]
fn header_lengths_7_16_64_bit_and_incomplete_prefixes() {
    for (len, header_len) in [(5usize, 6usize), (125, 6), (126, 8), (300, 8), (70_000, 14)] {
        let f = encode(true, OP_BINARY, &vec![b'a'; len], Some(KEY));
        for cut in 0..header_len {
            assert_eq!(parse_header(&f[..cut]), None, "len {len} cut {cut}");
        }
        let h = parse_header(&f).unwrap();
        assert_eq!(
            (h.len, h.header_len, h.mask),
            (len as u64, header_len, Some(KEY))
        );
        assert!(h.fin && h.rsv == 0 && h.opcode == OP_BINARY);
    }
    let h = parse_header(&encode(false, OP_TEXT, b"x", None)).unwrap();
    assert!(!h.fin && h.mask.is_none() && h.header_len == 2);
}

#[test]
fn reader_yields_the_same_frames_at_every_split_offset() {
    let frames = [
        encode(false, OP_TEXT, b"hello ", Some(KEY)),
        encode(true, OP_CONTINUATION, &[7u8; 300], Some([1, 2, 3, 4])),
        encode(true, OP_PING, b"", Some(KEY)),
        encode(true, OP_BINARY, &[0u8; 126], Some([9, 9, 9, 9])),
        encode(true, OP_CLOSE, &1000u16.to_be_bytes(), Some(KEY)),
    ];
    let stream: Vec<u8> = frames.concat();
    let mut whole = FrameReader::default();
    whole.buf.extend_from_slice(&stream);
    let expected = drain(&mut whole);
    assert_eq!(expected.len(), frames.len());
    assert_eq!(payload_of(&expected[1]), vec![7u8; 300]);
    for split in 0..=stream.len() {
        for second in [split, (split + 1).min(stream.len())] {
            let mut r = FrameReader::default();
            let mut got = Vec::new();
            for part in [&stream[..split], &stream[split..second], &stream[second..]] {
                r.buf.extend_from_slice(part);
                got.extend(drain(&mut r));
            }
            assert_eq!(got, expected, "split at {split}/{second}");
        }
    }
}

#[test]
fn reader_handles_64_bit_lengths_split_anywhere_in_the_header() {
    let payload: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let f = encode(true, OP_BINARY, &payload, Some(KEY));
    for split in (0..=20).chain([f.len() / 2, f.len() - 1, f.len()]) {
        let mut r = FrameReader::default();
        r.buf.extend_from_slice(&f[..split]);
        let mut got = drain(&mut r);
        r.buf.extend_from_slice(&f[split..]);
        got.extend(drain(&mut r));
        assert_eq!(got.len(), 1, "split {split}");
        assert_eq!(payload_of(&got[0]), payload);
        assert_eq!(&got[0].1[..], &f[..]);
    }
}

#[test]
fn oversized_or_malformed_frames_are_refused_at_the_header() {
    let ins = Inbound::new(inspector());
    let big = MAX_MESSAGE_BYTES as usize + 1;
    let mut head = vec![0x82, 0x80 | 127];
    head.extend_from_slice(&(big as u64).to_be_bytes());
    head.extend_from_slice(&KEY);
    assert_eq!(ins.admit(&parse_header(&head).unwrap()), Err(Stop::TooBig));
    let mut huge = head.clone();
    huge[2] = 0x80; // 2^63: must not overflow
    assert_eq!(ins.admit(&parse_header(&huge).unwrap()), Err(Stop::TooBig));
    let mut flood = Inbound::new(inspector());
    push(&mut flood, &encode(false, OP_TEXT, b"a", Some(KEY))).unwrap();
    let empty = encode(false, OP_CONTINUATION, b"", Some(KEY));
    for _ in 1..MAX_HELD_FRAMES {
        assert_eq!(push(&mut flood, &empty), Ok(vec![]));
    }
    assert_eq!(push(&mut flood, &empty), Err(Stop::TooBig));
    let refused = |f: Vec<u8>| {
        matches!(
            ins.admit(&parse_header(&f).unwrap()),
            Err(Stop::Protocol(_))
        )
    };
    assert!(refused(encode(true, OP_TEXT, b"x", None)), "unmasked");
    let mut rsv1 = encode(true, OP_TEXT, b"x", Some(KEY));
    rsv1[0] |= 0x40;
    assert!(refused(rsv1), "permessage-deflate bit");
    assert!(
        refused(encode(false, OP_PING, b"x", Some(KEY))),
        "fragmented ping"
    );
    assert!(
        refused(encode(true, OP_PING, &[0; 126], Some(KEY))),
        "long ping"
    );
    assert!(
        refused(encode(true, 0x3, b"x", Some(KEY))),
        "reserved opcode"
    );
}

fn push(ins: &mut Inbound, frame: &[u8]) -> Result<Vec<Bytes>, Stop> {
    let h = parse_header(frame).unwrap();
    ins.admit(&h)?;
    ins.frame((h, Bytes::copy_from_slice(frame)))
}

#[test]
fn a_secret_split_across_continuation_frames_is_caught_at_every_offset() {
    let ins = inspector();
    let s = secret();
    for k in 1..s.len() {
        let mut inbound = Inbound::new(Arc::clone(&ins));
        let first = encode(
            false,
            OP_TEXT,
            format!("token: {}", &s[..k]).as_bytes(),
            Some(KEY),
        );
        let second = encode(
            true,
            OP_CONTINUATION,
            format!("{} end", &s[k..]).as_bytes(),
            Some(KEY),
        );
        assert_eq!(push(&mut inbound, &first), Ok(vec![]), "held at {k}");
        match push(&mut inbound, &second) {
            Err(Stop::Finding(f)) => assert_eq!(f.rule_id, "anthropic-api-key"),
            other => panic!("split at {k}: {other:?}"),
        }
        assert!(inbound.verdict.is_blocked());
    }
}

#[test]
fn clean_fragments_are_released_in_order_and_large_messages_stream() {
    let mut inbound = Inbound::new(inspector());
    let frames = [
        encode(false, OP_TEXT, b"one ", Some(KEY)),
        encode(false, OP_CONTINUATION, b"two ", Some(KEY)),
        encode(true, OP_PING, b"are you there", Some(KEY)),
        encode(true, OP_CONTINUATION, b"three", Some(KEY)),
    ];
    assert_eq!(push(&mut inbound, &frames[0]), Ok(vec![]));
    assert_eq!(push(&mut inbound, &frames[1]), Ok(vec![]));
    // A control frame passes at once, even mid-message.
    assert_eq!(push(&mut inbound, &frames[2]).unwrap().concat(), frames[2]);
    let released = push(&mut inbound, &frames[3]).unwrap().concat();
    assert_eq!(released, [&frames[0][..], &frames[1], &frames[3]].concat());

    // 4 MiB in 64 KiB frames: frames leave before the message ends.
    let chunk: Vec<u8> = b"lorem ipsum dolor sit amet "
        .iter()
        .copied()
        .cycle()
        .take(64 << 10)
        .collect();
    let mut early = 0;
    let mut all = Vec::new();
    let mut sent = Vec::new();
    for i in 0..64 {
        let op = if i == 0 { OP_BINARY } else { OP_CONTINUATION };
        let f = encode(i == 63, op, &chunk, Some(KEY));
        let out = push(&mut inbound, &f).unwrap();
        if i < 63 {
            early += out.len();
        }
        all.extend(out.concat());
        sent.extend(f);
    }
    assert!(early > 40, "only {early} frames released before the end");
    assert_eq!(all, sent);
}

#[test]
fn protocol_order_and_control_payloads_are_checked() {
    let mut inbound = Inbound::new(inspector());
    let cont = encode(true, OP_CONTINUATION, b"x", Some(KEY));
    assert!(matches!(push(&mut inbound, &cont), Err(Stop::Protocol(_))));
    let mut inbound = Inbound::new(inspector());
    push(&mut inbound, &encode(false, OP_TEXT, b"a", Some(KEY))).unwrap();
    let again = encode(true, OP_TEXT, b"b", Some(KEY));
    assert!(matches!(push(&mut inbound, &again), Err(Stop::Protocol(_))));
    let mut inbound = Inbound::new(inspector());
    let ping = encode(true, OP_PING, secret().as_bytes(), Some(KEY));
    assert!(matches!(push(&mut inbound, &ping), Err(Stop::Finding(_))));
}

#[test]
fn server_frame_boundaries_are_found_at_every_split_offset() {
    let frames = [
        encode(true, OP_TEXT, b"abc", None),
        encode(true, OP_BINARY, &[1u8; 200], None),
        encode(true, OP_PING, b"", None),
        encode(true, OP_BINARY, &[2u8; 70_000], None),
    ];
    let stream = frames.concat();
    let mut ends = vec![0];
    for f in &frames {
        ends.push(ends.last().unwrap() + f.len());
    }
    for split in (0..300).chain([stream.len() - 1, stream.len()]) {
        let mut b = Boundary::default();
        assert_eq!(b.advance(&stream[..split], false), split);
        let next = *ends.iter().find(|&&e| e >= split).unwrap();
        assert_eq!(
            split + b.advance(&stream[split..], true),
            next,
            "split {split}"
        );
        assert!(b.at_boundary());
    }
}

#[test]
fn close_frames_carry_the_code_and_are_masked_towards_the_server() {
    let f = close_frame(1008, "egress-proxy: DLP rule x", Some(KEY));
    let h = parse_header(&f).unwrap();
    assert_eq!((h.opcode, h.fin, h.mask), (OP_CLOSE, true, Some(KEY)));
    let p = payload_of(&(h, Bytes::from(f)));
    assert_eq!(&p[..2], &1008u16.to_be_bytes());
    assert_eq!(&p[2..], b"egress-proxy: DLP rule x");
    assert!(close_frame(1002, &"x".repeat(500), None).len() <= 127);
}

/// tungstenite as the client produces frames our reader parses and unmasks correctly.
#[tokio::test]
async fn real_client_frames_parse_and_unmask() {
    let (a, mut b) = tokio::io::duplex(1 << 20);
    let mut ws = WebSocketStream::from_raw_socket(a, Role::Client, None).await;
    let big: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 256) as u8).collect();
    ws.send(Message::Text("hello".into())).await.unwrap();
    ws.send(Message::Binary(big.clone())).await.unwrap();
    ws.send(Message::Frame(Frame::message(
        b"frag".to_vec(),
        OpCode::Data(Data::Text),
        false,
    )))
    .await
    .unwrap();
    ws.send(Message::Frame(Frame::message(
        b"ment".to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .await
    .unwrap();
    let mut r = FrameReader::default();
    let mut got = Vec::new();
    while got.len() < 4 {
        r.fill(&mut b).await.unwrap();
        got.extend(drain(&mut r));
    }
    assert!(got.iter().all(|(h, _)| h.mask.is_some()));
    let payloads: Vec<Vec<u8>> = got.iter().map(payload_of).collect();
    assert_eq!(
        payloads,
        vec![b"hello".to_vec(), big, b"frag".to_vec(), b"ment".to_vec()]
    );
    assert_eq!(got[2].0.opcode, OP_TEXT);
    assert_eq!(got[3].0.opcode, OP_CONTINUATION);
}

/// The whole relay between a tungstenite client and a tungstenite echo server.
#[tokio::test]
async fn relay_echoes_clean_messages_and_closes_1008_on_a_secret() {
    let (client_end, relay_client) = tokio::io::duplex(1 << 16);
    let (relay_upstream, server_end) = tokio::io::duplex(1 << 16);
    let relay = tokio::spawn(async move {
        let shutdown = CancellationToken::new();
        relay_inspected(relay_client, relay_upstream, inspector(), None, &shutdown).await
    });
    let server = tokio::spawn(async move {
        let mut ws = WebSocketStream::from_raw_socket(server_end, Role::Server, None).await;
        let mut seen = Vec::new();
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(t) = &msg {
                seen.push(t.clone());
                let _ = ws.send(msg).await;
            }
        }
        seen
    });
    let mut ws = WebSocketStream::from_raw_socket(client_end, Role::Client, None).await;
    ws.send(Message::Text("clean".into())).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Text("clean".into())
    );
    let s = secret();
    ws.send(Message::Text(format!("{{\"key\":\"{s}\"}}")))
        .await
        .unwrap();
    let close = ws.next().await.unwrap().unwrap();
    let Message::Close(Some(CloseFrame { code, reason })) = close else {
        panic!("expected a close frame, got {close:?}");
    };
    assert_eq!(u16::from(code), 1008);
    assert!(reason.contains("anthropic-api-key") && !reason.contains(&s[..20]));
    let r = relay.await.unwrap();
    assert!(matches!(r.stop, Stop::Finding(_)), "{:?}", r.stop);
    assert!(r.verdict.is_blocked());
    let seen = server.await.unwrap();
    assert_eq!(seen, vec!["clean".to_owned()]);
}

/// An upstream that hangs up the moment the relay decides to stop (the cut and the EOF arrive
/// together): the relay must still report a clean boundary so that the client gets its 1008
/// close frame. Seen as a flaky end-to-end failure (`ResetWithoutClosingHandshake`) before.
#[tokio::test]
async fn upstream_hanging_up_at_the_cut_still_leaves_the_close_to_the_client() {
    struct HangUpOnRead(CancellationToken);
    impl AsyncRead for HangUpOnRead {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            self.0.cancel();
            std::task::Poll::Ready(Ok(()))
        }
    }
    let cut = CancellationToken::new();
    let meter = Meter::new();
    let mut client = Vec::new();
    let down = down::pump_down(HangUpOnRead(cut.clone()), &mut client, &cut, &meter, None).await;
    assert!(cut.is_cancelled());
    assert!(down.at_boundary, "the caller would skip the close frame");
    assert!(client.is_empty());
}

/// A server that sends the proxy's token (a WebSocket echoing its handshake) is cut mid-stream:
/// the token never reaches the client, nor more than three of its bytes, and the relay says why.
#[tokio::test]
async fn a_server_sending_the_proxys_token_is_cut() {
    use crate::inspect::reflect::Reflection;
    use dlp_rules::{KnownSecret, SecretString};
    let token = "route-token-Uc6Gm1Qb8Jf3Wd9Ze";
    let reflection =
        Arc::new(Reflection::new(&[KnownSecret::new("ROUTE", SecretString::from(token))]).unwrap());
    let (client_end, relay_client) = tokio::io::duplex(1 << 16);
    let (relay_upstream, server_end) = tokio::io::duplex(1 << 16);
    let relay = tokio::spawn(async move {
        let shutdown = CancellationToken::new();
        relay_inspected(
            relay_client,
            relay_upstream,
            inspector(),
            Some(reflection),
            &shutdown,
        )
        .await
    });
    let server = tokio::spawn(async move {
        let mut ws = WebSocketStream::from_raw_socket(server_end, Role::Server, None).await;
        let _ = ws.send(Message::Text("hello".into())).await;
        // Sent once the client asks, so the two messages never share a read.
        let _ = ws.next().await;
        let echoed = format!("{{\"authorization\":\"Bearer {token}\"}}");
        let _ = ws.send(Message::Text(echoed)).await;
        ws
    });
    let mut client = WebSocketStream::from_raw_socket(client_end, Role::Client, None).await;
    let first = client.next().await;
    assert!(
        matches!(first, Some(Ok(Message::Text(ref t))) if t.as_str() == "hello"),
        "{first:?}"
    );
    client.send(Message::Text("go on".into())).await.unwrap();
    let second = client.next().await;
    assert!(!matches!(second, Some(Ok(Message::Text(_)))), "{second:?}");
    let relayed = relay.await.unwrap();
    assert_eq!(relayed.stop, Stop::Reflected("ROUTE".into()));
    assert!(relayed.moved.down < 64, "{:?}", relayed.moved);
    drop(server);
}
