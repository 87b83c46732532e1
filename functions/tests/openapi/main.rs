//! The OpenAPI document against the server (issue 14): schemathesis sends requests generated
//! from `/api/openapi.json` to a real `orderflow` process (its own database and queue names)
//! with every check on, the stateful phase included and a login as its auth step, and the test
//! fails on any finding: a server error, a request the document allows that the server refuses,
//! one it forbids that the server accepts, or a response the document does not describe.
//!
//! Ignored in the plain test run (it installs schemathesis from PyPI with pip); `.ci/run` runs it
//! with `cargo test --locked -p orderflow --test openapi -- --ignored`.

#[path = "../security/child.rs"]
#[allow(dead_code, reason = "this binary does not measure the process's memory")]
mod child;
#[path = "../api/helpers.rs"]
#[allow(dead_code, reason = "this binary uses only part of the API tests' helpers")]
mod helpers;
mod schemathesis;

use std::time::Instant;

use child::ChildApp;

#[tokio::test]
#[ignore = "installs schemathesis with pip; run by .ci/run with --ignored"]
async fn schemathesis_finds_nothing_the_document_and_the_server_disagree_on() {
    // Arrange: schemathesis, and an orderflow whose login throttles do not lock out the auth
    // step while schemathesis tries wrong passwords, and whose tokens outlast the run.
    let schemathesis = tokio::task::spawn_blocking(schemathesis::install).await.unwrap();
    let app = ChildApp::start(&[
        ("LOGIN_FAILURES_PER_ACCOUNT", "1000000"),
        ("LOGIN_FAILURES_PER_ADDRESS", "1000000"),
        ("JWT_TTL_SECS", "86400"),
    ])
    .await;

    // Act
    let started = Instant::now();
    let run = schemathesis::run(&schemathesis, &app.url("/api/openapi.json")).await;

    // Assert
    let (stdout, stderr) = (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    // Its summary lands in the CI log either way: what ran, and how much.
    eprintln!("schemathesis took {:?}:\n{stdout}", started.elapsed());
    assert!(
        run.status.success(),
        "schemathesis reported findings ({}; orderflow's log: {}); its report is above\n{stderr}",
        run.status,
        app.log.display(),
    );
    assert!(stdout.contains("Stateful"), "the stateful phase did not run:\n{stdout}");
}
