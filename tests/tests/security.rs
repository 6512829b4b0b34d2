//! A job over mutual TLS with a shared token, with real processes: the workers train over TLS
//! (coordinator and ring), clients without the right credentials are refused while the job
//! goes on unharmed, and no secret appears in any log.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly on broken setup

use std::path::Path;
use std::time::Duration;

use anygan_proto::security::{GeneratedCredentials, Security, TlsMaterial, Token};
use anygan_proto::v1;
use anygan_proto::v1::coordinator_client::CoordinatorClient;
use anygan_tests::{CoordinatorProcess, WorkerProcess, binary, tiny_job_args, wait_until};

const DEADLINE: Duration = Duration::from_secs(120);

/// The `--tls-* --token-file` flags naming files in `dir`.
fn security_flags(dir: &Path, token_file: &Path) -> Vec<String> {
    [
        ("--tls-ca", dir.join("ca.crt")),
        ("--tls-cert", dir.join("tls.crt")),
        ("--tls-key", dir.join("tls.key")),
        ("--token-file", token_file.to_path_buf()),
    ]
    .into_iter()
    .flat_map(|(flag, path)| [flag.to_string(), path.display().to_string()])
    .collect()
}

async fn status_with(security: &Security, address: &str) -> Result<v1::JobStatus, String> {
    let channel = security.connect(address).await?;
    CoordinatorClient::new(channel)
        .get_status(v1::StatusRequest {})
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| format!("{:?}: {}", status.code(), status.message()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_over_mutual_tls_refuses_strangers_and_leaks_no_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    anygan_tests::write_tiny_idx(dir.path(), 64).expect("data");
    // What a user runs to make the cluster's Secret: CA, certificate, key and token.
    let tls_dir = dir.path().join("tls");
    let made = std::process::Command::new(binary("coordinator"))
        .args(["credentials", "--out", tls_dir.to_str().expect("utf-8")])
        .output()
        .expect("credentials runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let token_file = tls_dir.join("token");
    let token = std::fs::read_to_string(&token_file).expect("token");
    let material = TlsMaterial::from_files(
        &tls_dir.join("ca.crt"),
        &tls_dir.join("tls.crt"),
        &tls_dir.join("tls.key"),
        "anygan",
    )
    .expect("material");
    let wrong_token_file = dir.path().join("wrong-token");
    let wrong_token = "wrong-secret-token-000000000";
    std::fs::write(&wrong_token_file, wrong_token).expect("wrong token file");

    let data = dir.path().to_str().expect("utf-8");
    let output = dir.path().join("out");
    let flags = security_flags(&tls_dir, &token_file);
    let mut args = tiny_job_args(data, output.to_str().expect("utf-8"), "40", "2");
    args.extend(flags.iter().map(String::as_str));
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs");
    let coordinator = CoordinatorProcess::start_logged(
        "start",
        &args,
        DEADLINE,
        Some(&logs.join("coordinator.log")),
    )
    .expect("coordinator");
    let address = coordinator.address.clone();
    let flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut workers: Vec<WorkerProcess> = ["w0", "w1"]
        .iter()
        .map(|id| {
            WorkerProcess::join_with(
                &address,
                id,
                &flag_refs,
                &[],
                Some(&logs.join(format!("{id}.log"))),
            )
            .expect("worker")
        })
        .collect();

    let cluster = Security::new(
        Some(material.clone()),
        Some(Token::new(&token).expect("token")),
    );
    wait_until(DEADLINE, || {
        let cluster = cluster.clone();
        let address = address.clone();
        async move {
            status_with(&cluster, &address)
                .await
                .is_ok_and(|s| s.phase == v1::JobPhase::Training as i32)
        }
    })
    .await
    .expect("training starts over TLS");

    // Strangers while the job trains.
    let plaintext = status_with(&Security::none(), &address).await;
    assert!(plaintext.is_err(), "plaintext was served: {plaintext:?}");
    let other_ca = GeneratedCredentials::generate("anygan").expect("other CA");
    let foreign = status_with(
        &Security::new(
            Some(other_ca.material("anygan")),
            Some(Token::new(&token).expect("token")),
        ),
        &address,
    )
    .await;
    assert!(foreign.is_err(), "a foreign certificate was served");
    let no_token = status_with(&Security::new(Some(material.clone()), None), &address)
        .await
        .expect_err("no token");
    assert!(no_token.starts_with("Unauthenticated"), "{no_token}");
    let wrong = status_with(
        &Security::new(
            Some(material.clone()),
            Some(Token::new(wrong_token).expect("token")),
        ),
        &address,
    )
    .await
    .expect_err("wrong token");
    assert!(wrong.starts_with("Unauthenticated"), "{wrong}");

    // A worker process with the wrong token is refused at registration and gives up.
    let mut wrong_flags = security_flags(&tls_dir, &wrong_token_file);
    wrong_flags.extend(["--connect-timeout-s".into(), "5".into()]);
    let wrong_refs: Vec<&str> = wrong_flags.iter().map(String::as_str).collect();
    let mut intruder = WorkerProcess::join_with(
        &address,
        "intruder",
        &wrong_refs,
        &[],
        Some(&logs.join("intruder.log")),
    )
    .expect("intruder");
    assert!(
        !intruder.wait(DEADLINE).expect("intruder exits"),
        "the intruder succeeded"
    );
    let intruder_log = std::fs::read_to_string(logs.join("intruder.log")).expect("log");
    assert!(
        intruder_log.contains("Unauthenticated") || intruder_log.contains("wrong token"),
        "{intruder_log}"
    );

    // `coordinator status` with the cluster's flags works over TLS.
    let mut status_command = std::process::Command::new(binary("coordinator"));
    status_command
        .args(["status", "--json", "--coordinator", &address])
        .args(&flags);
    let printed = tokio::task::spawn_blocking(move || status_command.output())
        .await
        .expect("join")
        .expect("status runs");
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&printed.stdout).expect("status JSON");
    assert_eq!(shown["job_id"].as_str().map(str::is_empty), Some(false));
    // The summary for people names the phase, the steps and every worker.
    let summary = std::process::Command::new(binary("coordinator"))
        .args(["status", "--coordinator", &address])
        .args(&flags)
        .output()
        .expect("status runs");
    let summary = String::from_utf8_lossy(&summary.stdout).to_string();
    for expected in ["job ", "steps ", "/40", "images/s", " w0 ", " w1 "] {
        assert!(
            summary.contains(expected),
            "{expected:?} missing:\n{summary}"
        );
    }

    // The job is unharmed.
    let (status, success) = tokio::task::spawn_blocking(move || coordinator.wait(DEADLINE))
        .await
        .expect("join")
        .expect("job ends");
    for worker in &mut workers {
        assert!(
            worker.wait(DEADLINE).expect("worker exits"),
            "a worker failed"
        );
    }
    assert!(success, "{status}");
    assert_eq!(status["phase"], "done", "{status}");
    assert_eq!(status["replicas_identical"], true, "{status}");
    assert_eq!(status["completed_steps"], 40);
    let mut member_ids: Vec<&str> = status["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| w["worker_id"].as_str().expect("id"))
        .collect();
    member_ids.sort_unstable();
    assert_eq!(member_ids, ["w0", "w1"]);

    // No secret in any log.
    let key = std::fs::read_to_string(tls_dir.join("tls.key")).expect("key");
    let key_body = key.lines().nth(1).expect("a PEM body line");
    for entry in std::fs::read_dir(&logs).expect("logs") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("log");
        assert!(!text.is_empty(), "{} is empty", path.display());
        for secret in [token.as_str(), wrong_token, key_body] {
            assert!(!text.contains(secret), "{} shows a secret", path.display());
        }
    }
}

#[test]
fn incomplete_or_bad_security_flags_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let output = std::process::Command::new(binary("worker"))
            .args([
                "join",
                "--coordinator",
                "127.0.0.1:9",
                "--connect-timeout-s",
                "1",
            ])
            .args(args)
            .output()
            .expect("worker runs");
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).to_string()
    };
    let only_ca = run(&["--tls-ca", "/nonexistent/ca.crt"]);
    assert!(
        only_ca.contains("--tls-cert") && only_ca.contains("--tls-key"),
        "{only_ca}"
    );
    let short = dir.path().join("short-token");
    std::fs::write(&short, "abc").expect("write");
    let weak = run(&["--token-file", short.to_str().expect("utf-8")]);
    assert!(
        weak.contains("short-token") && weak.contains("16 characters"),
        "{weak}"
    );
    let missing = run(&[
        "--tls-ca",
        "/nonexistent/ca.crt",
        "--tls-cert",
        "/nonexistent/tls.crt",
        "--tls-key",
        "/nonexistent/tls.key",
    ]);
    assert!(missing.contains("/nonexistent/ca.crt"), "{missing}");
}
