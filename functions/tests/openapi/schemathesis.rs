//! schemathesis, pinned, in a virtual environment under the build directory (installed once,
//! reused while it has the pinned version), and one run of it with `schemathesis.toml`.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

/// The pinned version.
pub const VERSION: &str = "4.32.5";

/// The longest a run may take before it is stopped and the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// `<target dir>/schemathesis-venv/bin/schemathesis`, installed with pip if it is missing or
/// another version.
///
/// # Panics
/// When python3 or pip fail.
pub fn install() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("CARGO_TARGET_TMPDIR has a parent");
    let venv = target.join("schemathesis-venv");
    let program = venv.join("bin").join("schemathesis");
    let installed = Command::new(&program).arg("--version").output().ok().filter(|o| o.status.success());
    if installed.is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim().ends_with(&format!("version {VERSION}"))) {
        return program;
    }
    run_ok(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    run_ok(
        Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("schemathesis=={VERSION}")),
    );
    program
}

fn run_ok(command: &mut Command) {
    let output = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs schemathesis against the document at `spec_url` with every check, configured by
/// `schemathesis.toml` beside this file (auth step, phases, bounds, seed; `SCHEMATHESIS_SEED`
/// overrides the seed).
pub async fn run(program: &Path, spec_url: &str) -> Output {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi/schemathesis.toml");
    let mut command = tokio::process::Command::new(program);
    command
        .arg("--config-file")
        .arg(&config)
        .arg("--no-color")
        .args(["run", spec_url, "--checks", "all"])
        .env("NO_COLOR", "1")
        // Its cache and reports stay under the build output, out of the clone.
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .kill_on_drop(true);
    // Another seed than the file's, to look for more than the fixed run finds.
    if let Ok(seed) = std::env::var("SCHEMATHESIS_SEED") {
        command.args(["--seed", &seed]);
    }
    tokio::time::timeout(RUN_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis took longer than {RUN_TIMEOUT:?}"))
        .expect("cannot run schemathesis")
}
