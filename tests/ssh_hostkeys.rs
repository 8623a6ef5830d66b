//! Host key policy and authentication against a real OpenSSH sshd on loopback.

use crate::common;

use std::time::Duration;

use common::sshd::{PASSPHRASE, Sshd};
use proxmox_manager::ssh::{
    Command, Error, ExecOptions, HostKeyPolicy, PoolOptions, SshAuth, SshPool, SshTarget,
};
use secrecy::SecretString;

fn key_auth(sshd: &Sshd) -> SshAuth {
    SshAuth::KeyFile {
        path: sshd.client_key_path(),
        passphrase: None,
    }
}

fn pool(sshd: &Sshd, auth: SshAuth, host_keys: HostKeyPolicy) -> SshPool {
    let mut opts = PoolOptions::new(sshd.user(), auth, host_keys);
    opts.connect_timeout = Duration::from_secs(10);
    SshPool::new(opts)
}

fn target(sshd: &Sshd) -> SshTarget {
    SshTarget::new("127.0.0.1", sshd.port())
}

async fn whoami(pool: &SshPool, sshd: &Sshd) -> Result<String, Error> {
    let out = pool
        .exec(
            &target(sshd),
            &Command::new("id").arg("-un"),
            ExecOptions::with_timeout(Duration::from_secs(10)),
        )
        .await?;
    Ok(out.stdout.trim().to_owned())
}

#[tokio::test]
async fn known_key_and_key_file_auth_succeed() {
    let sshd = Sshd::start();
    let kh = sshd.write_known_hosts("known_hosts", &[sshd.known_hosts_line()]);
    let pool = pool(&sshd, key_auth(&sshd), HostKeyPolicy::strict(kh));
    assert_eq!(whoami(&pool, &sshd).await.expect("exec"), sshd.user());
}

#[tokio::test]
async fn hashed_known_hosts_entries_match() {
    let sshd = Sshd::start();
    let kh = sshd.write_known_hosts("known_hosts", &[sshd.known_hosts_line()]);
    let out = std::process::Command::new(crate::common::external::require("ssh-keygen"))
        .arg("-H")
        .arg("-f")
        .arg(&kh)
        .output()
        .expect("ssh-keygen -H");
    assert!(out.status.success());
    let text = std::fs::read_to_string(&kh).expect("read");
    assert!(text.starts_with("|1|"), "{text}");
    let pool = pool(&sshd, key_auth(&sshd), HostKeyPolicy::strict(kh));
    assert_eq!(whoami(&pool, &sshd).await.expect("exec"), sshd.user());
}

#[tokio::test]
async fn passphrase_protected_key_authenticates_and_wrong_passphrase_is_an_auth_error() {
    let sshd = Sshd::start();
    let kh = sshd.write_known_hosts("known_hosts", &[sshd.known_hosts_line()]);
    let good = SshAuth::KeyFile {
        path: sshd.passphrase_key_path(),
        passphrase: Some(SecretString::from(PASSPHRASE)),
    };
    let p = pool(&sshd, good, HostKeyPolicy::strict(&kh));
    assert_eq!(whoami(&p, &sshd).await.expect("exec"), sshd.user());

    let bad = SshAuth::KeyFile {
        path: sshd.passphrase_key_path(),
        passphrase: Some(SecretString::from("not-the-passphrase-zz9")),
    };
    let dbg = format!("{bad:?}");
    assert!(!dbg.contains("not-the-passphrase-zz9"), "{dbg}");
    let err = whoami(&pool(&sshd, bad, HostKeyPolicy::strict(&kh)), &sshd)
        .await
        .expect_err("wrong passphrase");
    let text = err.to_string();
    assert!(matches!(err, Error::Auth { .. }), "{text}");
    assert!(!text.contains("not-the-passphrase-zz9"), "{text}");
}

#[tokio::test]
async fn a_key_the_server_does_not_know_is_refused() {
    let sshd = Sshd::start();
    let kh = sshd.write_known_hosts("known_hosts", &[sshd.known_hosts_line()]);
    let auth = SshAuth::KeyFile {
        path: sshd.stranger_key_path(),
        passphrase: None,
    };
    let err = whoami(&pool(&sshd, auth, HostKeyPolicy::strict(kh)), &sshd)
        .await
        .expect_err("refused");
    assert!(matches!(err, Error::Auth { .. }), "{err}");
    assert!(err.to_string().contains("authorized_keys"), "{err}");
}

#[tokio::test]
async fn agent_auth_uses_the_agent_socket() {
    let sshd = Sshd::start();
    let agent = sshd.start_agent();
    let kh = sshd.write_known_hosts("known_hosts", &[sshd.known_hosts_line()]);
    let auth = SshAuth::Agent {
        socket: Some(agent.socket.clone()),
    };
    let p = pool(&sshd, auth, HostKeyPolicy::strict(kh));
    assert_eq!(whoami(&p, &sshd).await.expect("exec"), sshd.user());
}

#[tokio::test]
async fn unknown_host_key_is_refused_with_fingerprint_and_fix() {
    let sshd = Sshd::start();
    let kh = sshd.dir().join("empty_known_hosts");
    let p = pool(&sshd, key_auth(&sshd), HostKeyPolicy::strict(&kh));
    let err = whoami(&p, &sshd).await.expect_err("unknown key");
    let Error::UnknownHostKey {
        fingerprint, fix, ..
    } = &err
    else {
        panic!("expected UnknownHostKey, got {err}");
    };
    assert_eq!(*fingerprint, sshd.host_fingerprint());
    assert!(
        fix.contains(&format!("ssh-keyscan -p {} 127.0.0.1", sshd.port())),
        "{fix}"
    );
    assert!(err.to_string().contains(&sshd.host_fingerprint()), "{err}");
    assert!(!kh.exists(), "strict mode must not write known_hosts");
}

#[tokio::test]
async fn changed_host_key_is_refused_even_with_tofu() {
    let sshd = Sshd::start();
    let kh = sshd.write_known_hosts("known_hosts", &[sshd.wrong_known_hosts_line()]);
    let policy = HostKeyPolicy {
        known_hosts: kh.clone(),
        trust_on_first_use: true,
        pinned: Vec::new(),
    };
    let err = whoami(&pool(&sshd, key_auth(&sshd), policy), &sshd)
        .await
        .expect_err("changed key");
    let Error::HostKeyChanged {
        line, fingerprint, ..
    } = &err
    else {
        panic!("expected HostKeyChanged, got {err}");
    };
    assert_eq!(*line, 1);
    assert_eq!(*fingerprint, sshd.host_fingerprint());
    let text = std::fs::read_to_string(&kh).expect("read");
    assert_eq!(text.lines().count(), 1, "nothing learned: {text}");
}

#[tokio::test]
async fn tofu_learns_then_succeeds_then_detects_a_change() {
    let sshd = Sshd::start();
    let kh = sshd.dir().join("tofu_known_hosts");
    let policy = HostKeyPolicy {
        known_hosts: kh.clone(),
        trust_on_first_use: true,
        pinned: Vec::new(),
    };
    let p = pool(&sshd, key_auth(&sshd), policy.clone());
    assert_eq!(whoami(&p, &sshd).await.expect("first use"), sshd.user());
    let text = std::fs::read_to_string(&kh).expect("learned");
    assert!(text.contains(&sshd.known_hosts_line()), "{text}");

    // A fresh strict pool now accepts the learned key.
    let strict = pool(&sshd, key_auth(&sshd), HostKeyPolicy::strict(&kh));
    assert_eq!(
        whoami(&strict, &sshd).await.expect("known now"),
        sshd.user()
    );

    // Replace the learned key by another one for the same host:port: a change.
    std::fs::write(&kh, format!("{}\n", sshd.wrong_known_hosts_line())).expect("rewrite");
    let p = pool(&sshd, key_auth(&sshd), policy);
    let err = whoami(&p, &sshd).await.expect_err("changed");
    assert!(matches!(err, Error::HostKeyChanged { .. }), "{err}");
}

#[tokio::test]
async fn pinned_keys_accept_exactly_the_pinned_key_and_refuse_other_hosts() {
    let sshd = Sshd::start();
    let right = HostKeyPolicy::pinned(&sshd.known_hosts_line()).expect("parses");
    let p = pool(&sshd, key_auth(&sshd), right);
    assert_eq!(whoami(&p, &sshd).await.expect("exec"), sshd.user());

    let wrong = HostKeyPolicy::pinned(&sshd.wrong_known_hosts_line()).expect("parses");
    let err = whoami(&pool(&sshd, key_auth(&sshd), wrong), &sshd)
        .await
        .expect_err("a different pinned key");
    assert!(matches!(err, Error::PinnedKeyMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&sshd.host_fingerprint()), "{err}");

    let elsewhere = sshd
        .known_hosts_line()
        .replacen("127.0.0.1", "192.0.2.1", 1);
    let none = HostKeyPolicy::pinned(&elsewhere).expect("parses");
    let err = whoami(&pool(&sshd, key_auth(&sshd), none), &sshd)
        .await
        .expect_err("this host is not pinned");
    assert!(matches!(err, Error::UnknownHostKey { .. }), "{err}");
    assert!(HostKeyPolicy::pinned("[127.0.0.1]:x ssh-ed25519 AAAA").is_err());
}
