//! The pool against a real OpenSSH sshd on loopback: exec, stderr and exit codes, stdin,
//! progress, timeouts, SFTP upload, reconnect, connection reuse, hostile arguments.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::sshd::{Sshd, process_running};
use proxmox_manager::ssh::{
    Command, Error, ExecOptions, HostKeyPolicy, PoolOptions, SshAuth, SshPool, SshTarget,
};

fn pool(sshd: &Sshd) -> SshPool {
    let kh = sshd.write_known_hosts("known_hosts", &[sshd.known_hosts_line()]);
    let auth = SshAuth::KeyFile {
        path: sshd.client_key_path(),
        passphrase: None,
    };
    SshPool::new(PoolOptions::new(
        sshd.user(),
        auth,
        HostKeyPolicy::strict(kh),
    ))
}

fn target(sshd: &Sshd) -> SshTarget {
    SshTarget::new("127.0.0.1", sshd.port())
}

fn opts() -> ExecOptions {
    ExecOptions::with_timeout(Duration::from_secs(20))
}

#[tokio::test]
async fn exit_codes_and_separate_stderr() {
    let sshd = Sshd::start();
    let pool = pool(&sshd);
    let t = target(&sshd);
    let ok = pool
        .exec(&t, &Command::new("echo").arg("hello"), opts())
        .await
        .expect("exec");
    assert_eq!(ok.status, Some(0));
    assert!(ok.success());
    assert_eq!(ok.stdout, "hello\n");
    assert_eq!(ok.stderr, "");

    let script = "echo out; echo err >&2; exit 3";
    let failed = pool
        .exec(&t, &Command::new("sh").arg("-c").arg(script), opts())
        .await
        .expect("exec");
    assert_eq!(failed.status, Some(3));
    assert!(!failed.success());
    assert_eq!(failed.stdout, "out\n");
    assert_eq!(failed.stderr, "err\n");
    assert_eq!(failed.signal, None);

    let killed = pool
        .exec(
            &t,
            &Command::new("sh").arg("-c").arg("kill -KILL $$"),
            opts(),
        )
        .await
        .expect("exec");
    assert!(
        killed.status.is_some() || killed.signal.is_some(),
        "{killed:?}"
    );
    assert!(!killed.success());
}

#[tokio::test]
async fn stdin_is_delivered_and_progress_sees_each_line() {
    let sshd = Sshd::start();
    let pool = pool(&sshd);
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    let mut o = opts();
    o.stdin = Some(b"one\ntwo\nthree".to_vec());
    o.on_output = Some(Arc::new(move |l: &str| {
        sink.lock().expect("lock").push(l.to_owned())
    }));
    let out = pool
        .exec(&target(&sshd), &Command::new("cat"), o)
        .await
        .expect("exec");
    assert_eq!(out.stdout, "one\ntwo\nthree");
    assert_eq!(*lines.lock().expect("lock"), vec!["one", "two", "three"]);
}

#[tokio::test]
async fn a_slow_command_times_out_quickly() {
    let sshd = Sshd::start();
    let pool = pool(&sshd);
    let t = target(&sshd);
    // Connect first so the measured time is the command's.
    pool.exec(&t, &Command::new("true"), opts())
        .await
        .expect("warm up");
    let started = Instant::now();
    let err = pool
        .exec(
            &t,
            &Command::new("sleep").arg("30"),
            ExecOptions::with_timeout(Duration::from_secs(1)),
        )
        .await
        .expect_err("timeout");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let Error::Timeout {
        command, seconds, ..
    } = &err
    else {
        panic!("expected Timeout, got {err}");
    };
    assert_eq!(command, "sleep");
    assert_eq!(*seconds, 1);
    // The remote `timeout` stopped the command: it is not left running on the node (the
    // node is this machine).
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_running(&["sleep", "30"]) {
        assert!(
            Instant::now() < deadline,
            "`sleep 30` still runs after the timeout"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The connection is still usable.
    let out = pool
        .exec(&t, &Command::new("true"), opts())
        .await
        .expect("after");
    assert!(out.success());
    assert_eq!(pool.connects(), 1);
}

#[tokio::test]
async fn upload_over_sftp_then_read_back() {
    let sshd = Sshd::start();
    let pool = pool(&sshd);
    let t = target(&sshd);
    let remote = sshd.dir().join("uploaded snippet;$(x).yaml");
    let remote = remote.to_str().expect("utf-8 path");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    pool.upload(&t, &data, remote, 0o640).await.expect("upload");
    let local = std::fs::read(remote).expect("file exists");
    assert_eq!(local, data);
    let out = pool
        .exec(
            &t,
            &Command::new("stat").arg("-c").arg("%a").arg(remote),
            opts(),
        )
        .await
        .expect("stat");
    assert_eq!(out.stdout.trim(), "640");

    let text_path = sshd.dir().join("cloudinit.yaml");
    std::fs::write(&text_path, "#cloud-config\nusers: []\n").expect("write");
    let remote2 = sshd.dir().join("copy.yaml");
    let remote2 = remote2.to_str().expect("utf-8 path");
    pool.upload_file(&t, &text_path, remote2, 0o644)
        .await
        .expect("upload file");
    let out = pool
        .exec(&t, &Command::new("cat").arg(remote2), opts())
        .await
        .expect("cat");
    assert_eq!(out.stdout, "#cloud-config\nusers: []\n");

    let err = pool
        .upload(&t, b"x", "/nonexistent-dir-zz/file", 0o644)
        .await
        .expect_err("missing dir");
    assert!(matches!(err, Error::Sftp { .. }), "{err}");
}

#[tokio::test]
async fn reconnects_after_the_server_restarts() {
    let mut sshd = Sshd::start();
    let pool = pool(&sshd);
    let t = target(&sshd);
    pool.exec(&t, &Command::new("true"), opts())
        .await
        .expect("first");
    assert_eq!(pool.connects(), 1);
    sshd.restart();
    let out = pool
        .exec(&t, &Command::new("echo").arg("back"), opts())
        .await
        .unwrap_or_else(|e| panic!("after restart: {e}\n{}", sshd.log()));
    assert_eq!(out.stdout, "back\n");
    assert_eq!(pool.connects(), 2);
}

#[tokio::test]
async fn concurrent_execs_share_one_connection() {
    let sshd = Sshd::start();
    let pool = Arc::new(pool(&sshd));
    let t = target(&sshd);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let pool = pool.clone();
        let t = t.clone();
        tasks.spawn(async move {
            let out = pool
                .exec(&t, &Command::new("echo").arg(i.to_string()), opts())
                .await
                .expect("exec");
            assert_eq!(out.stdout, format!("{i}\n"));
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task");
    }
    assert_eq!(pool.connects(), 1);
}

#[tokio::test]
async fn hostile_arguments_come_back_verbatim_and_never_run() {
    let sshd = Sshd::start();
    let pool = pool(&sshd);
    let marker = sshd.dir().join(format!("pwned-{}", std::process::id()));
    let m = marker.display();
    let hostile = vec![
        format!("vm;touch {m}"),
        format!("$(touch {m})"),
        format!("`touch {m}`"),
        format!("'; touch {m}; '"),
        format!("\"; touch {m}; \""),
        format!("name\ntouch {m}"),
        format!("https://example.com/img.qcow2?a=1&b=$(touch {m})#x"),
        format!("| touch {m}"),
        format!("> {m}"),
        "*".to_owned(),
        "".to_owned(),
        "ünïcødé ✓ $HOME".to_owned(),
    ];
    let cmd = Command::new("printf").arg("%s\\n").args(hostile.clone());
    let out = pool.exec(&target(&sshd), &cmd, opts()).await.expect("exec");
    let expected: String = hostile.iter().map(|h| format!("{h}\n")).collect();
    assert_eq!(out.stdout, expected);
    assert!(out.success(), "{out:?}");
    assert!(!marker.exists(), "hostile input was executed");

    // As a redirect target and as a program name too.
    let cmd = Command::new("echo")
        .arg("x")
        .stdout_to(format!("{}/out;touch {m}", sshd.dir().display()));
    pool.exec(&target(&sshd), &cmd, opts()).await.expect("exec");
    let cmd = Command::new(format!("true;touch {m}"));
    let out = pool.exec(&target(&sshd), &cmd, opts()).await.expect("exec");
    assert_eq!(out.status, Some(127), "{out:?}");
    assert!(!marker.exists(), "hostile input was executed");
}

#[tokio::test]
async fn a_connection_lost_mid_command_says_the_command_may_have_run() {
    let mut sshd = Sshd::start();
    let pool = Arc::new(pool(&sshd));
    let t = target(&sshd);
    let running = {
        let pool = pool.clone();
        let t = t.clone();
        tokio::spawn(async move { pool.exec(&t, &Command::new("sleep").arg("7"), opts()).await })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !process_running(&["sleep", "7"]) {
        assert!(Instant::now() < deadline, "`sleep 7` never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sshd.restart();
    let err = running.await.expect("task").expect_err("connection lost");
    let Error::Channel { may_have_run, .. } = &err else {
        panic!("expected Channel, got {err}");
    };
    assert!(may_have_run, "{err}");
    assert!(!err.is_retryable());
    // The next call reconnects.
    let out = pool
        .exec(&t, &Command::new("true"), opts())
        .await
        .expect("after");
    assert!(out.success());
    assert_eq!(pool.connects(), 2);
}
