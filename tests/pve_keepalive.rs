//! Keep-alive: a connection the server closes while our request is on it (a GET is resent
//! transparently on a fresh connection, a POST never is: it may have been applied), how
//! many idle connections the pool keeps after a burst, and that releasing them closes them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::fake_pve;

const OK: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"data\":\"x\"}\n";

/// Reads one request head (and a body of `Content-Length`); `false` at EOF.
async fn read_request(s: &mut tokio::net::TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte).await {
            Ok(1) => buf.push(byte[0]),
            _ => return false,
        }
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    len == 0 || s.read_exact(&mut body).await.is_ok()
}

/// Each connection answers its first request and closes on reading the second, unanswered.
async fn server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&requests);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                if read_request(&mut s).await {
                    seen.fetch_add(1, Ordering::SeqCst);
                    let _ = s.write_all(OK).await;
                }
                if read_request(&mut s).await {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
                drop(s);
            });
        }
    });
    (format!("http://{addr}"), requests)
}

#[tokio::test]
async fn a_get_on_a_closed_keep_alive_connection_is_resent_a_post_is_not() {
    let (url, requests) = server().await;
    let mut opts = fake_pve::options(vec![url]).expect("options");
    opts.max_retries = 1;
    let client = proxmox_manager::pve::Client::new(opts).expect("client");
    let first: String = client.get("/version", &[]).await.expect("first get");
    assert_eq!(first, "x");
    let second: String = client
        .get("/version", &[])
        .await
        .expect("the second get is resent on a fresh connection");
    assert_eq!(second, "x");
    assert_eq!(
        requests.load(Ordering::SeqCst),
        3,
        "sent twice, answered once"
    );

    let before = requests.load(Ordering::SeqCst);
    let e = client
        .post::<String>("/nodes/pve01/qemu/100/status/start", &[])
        .await
        .err();
    assert!(
        matches!(e, Some(proxmox_manager::pve::Error::Transport { .. })),
        "the post on the closing connection fails and says it may have been processed: {e:?}"
    );
    assert_eq!(requests.load(Ordering::SeqCst), before + 1, "never resent");
}

/// Answers every request on a connection; the first `burst` requests only once all of them
/// have arrived (so a client sending them together needs as many connections). Counts the
/// connections accepted and those still open.
async fn burst_server(burst: usize) -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (accepted, open) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (a, o) = (Arc::clone(&accepted), Arc::clone(&open));
    let barrier = Arc::new(tokio::sync::Barrier::new(burst));
    let served = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            o.fetch_add(1, Ordering::SeqCst);
            let (o, barrier, served) = (Arc::clone(&o), Arc::clone(&barrier), Arc::clone(&served));
            tokio::spawn(async move {
                while read_request(&mut s).await {
                    if served.fetch_add(1, Ordering::SeqCst) < burst {
                        barrier.wait().await;
                    }
                    if s.write_all(OK).await.is_err() {
                        break;
                    }
                }
                o.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (format!("http://{addr}"), accepted, open)
}

#[tokio::test]
async fn a_burst_leaves_at_most_16_idle_connections_the_next_call_reuses_one_a_release_closes_them()
{
    const BURST: usize = 20;
    let (url, accepted, open) = burst_server(BURST).await;
    let client = proxmox_manager::pve::Client::new(fake_pve::options(vec![url]).expect("options"))
        .expect("client");
    let answers =
        futures::future::join_all((0..BURST).map(|_| client.get::<String>("/version", &[]))).await;
    assert!(
        answers.iter().all(|a| a.as_deref().ok() == Some("x")),
        "{answers:?}"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        BURST,
        "one connection per request in flight"
    );
    // The pool closes what it does not keep as the requests finish.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while open.load(Ordering::SeqCst) > 16 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {} connections open after the burst",
            open.load(Ordering::SeqCst)
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let again: String = client.get("/version", &[]).await.expect("a later get");
    assert_eq!(again, "x");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        BURST,
        "a kept connection served it"
    );
    assert!(open.load(Ordering::SeqCst) >= 1, "and some are kept");

    // Released (as the server does once idle a while): every kept connection is closed, and
    // the next call connects afresh.
    client.release_idle_connections();
    while open.load(Ordering::SeqCst) > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {} connections open after the release",
            open.load(Ordering::SeqCst)
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let after: String = client
        .get("/version", &[])
        .await
        .expect("a get after the release");
    assert_eq!(after, "x");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        BURST + 1,
        "on a new connection"
    );
}
