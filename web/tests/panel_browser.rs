//! The call panel in a real headless Chromium: runs `web/tests/browser/panel.test.mjs` (node and
//! playwright-core driving the system's `/usr/bin/chromium`, sipp playing the phones) against
//! this build's binary. `scripts/test.sh` installs chromium, sipp and the node packages
//! (`npm ci`); the screenshots of the run are left in `<target>/tmp/panel-screenshots`.

use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn the_panel_works_in_a_real_browser() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "the browser tests need their node packages: run `npm ci` in {} (scripts/test.sh does)",
        dir.display()
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "the browser tests need Chromium at {chromium} (apt-get install chromium; scripts/test.sh does)"
    );
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("panel-screenshots");
    let out = Command::new("node")
        .arg("panel.test.mjs")
        .current_dir(&dir)
        .env("LEDGERLINE_BIN", env!("CARGO_BIN_EXE_ledgerline"))
        .env("LEDGERLINE_SCREENSHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("node runs (apt-get install nodejs npm)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser tests failed:\n{stdout}");
    assert!(stdout.contains("checks passed"), "{stdout}");
}
