//! Regenerates `src/etcd/pb/{etcdserverpb,mvccpb}.rs` from the `.proto` files
//! in `proto/`, in pure Rust: `protox` parses them (no `protoc` needed) and
//! `tonic-prost-build` emits the messages and client-only gRPC stubs.
//!
//! Usage, from anywhere:
//!   cargo run --manifest-path proto/gen/Cargo.toml            # rewrite
//!   cargo run --manifest-path proto/gen/Cargo.toml -- --check # fail on a diff

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Proto files, relative to `proto/`.
const PROTOS: &[&str] = &["etcdserverpb/rpc.proto", "mvccpb/kv.proto"];
/// Generated files, relative to the output directory.
const OUTPUTS: &[&str] = &["etcdserverpb.rs", "mvccpb.rs"];

fn main() -> ExitCode {
    let check = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--check") => true,
        Some(other) => {
            eprintln!("usage: conch-proto-gen [--check] (unknown argument {other:?})");
            return ExitCode::from(2);
        }
    };
    match run(check) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("conch-proto-gen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(check: bool) -> Result<bool, Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize()?;
    let proto_dir = root.join("proto");
    let out_dir = root.join("src/etcd/pb");

    let fds = protox::compile(PROTOS, [&proto_dir])?;

    // Generate into a scratch directory first, so that a failure leaves the
    // checked-in files untouched and `--check` can compare.
    let tmp = scratch_dir()?;
    let result = generate_into(&root, &tmp, fds).and_then(|()| {
        let mut same = true;
        for name in OUTPUTS {
            let new = fs::read(tmp.join(name))?;
            let target = out_dir.join(name);
            let old = fs::read(&target).ok();
            if old.as_deref() == Some(new.as_slice()) {
                continue;
            }
            same = false;
            if check {
                eprintln!("out of date: {}", target.display());
            } else {
                fs::create_dir_all(&out_dir)?;
                fs::write(&target, &new)?;
                println!("wrote {}", target.display());
            }
        }
        if check && same {
            println!("{} is up to date", out_dir.display());
        }
        Ok(!check || same)
    });
    let _ = fs::remove_dir_all(&tmp);
    result
}

fn generate_into(
    root: &Path,
    dir: &Path,
    fds: tonic_prost_build::FileDescriptorSet,
) -> Result<(), Box<dyn std::error::Error>> {
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .build_transport(false)
        .emit_rerun_if_changed(false)
        .out_dir(dir)
        .compile_fds(fds)?;

    let mut found: Vec<String> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    found.sort();
    if found != OUTPUTS {
        return Err(format!("expected to generate {OUTPUTS:?}, got {found:?}").into());
    }

    // prettyplease's layout is not rustfmt's: format like `cargo fmt` does,
    // with the repository's rustfmt.toml if it has one.
    let mut cmd = Command::new("rustfmt");
    cmd.current_dir(root).args(["--edition", "2021"]);
    for cfg in ["rustfmt.toml", ".rustfmt.toml"] {
        if root.join(cfg).is_file() {
            cmd.arg("--config-path").arg(root.join(cfg));
            break;
        }
    }
    cmd.args(OUTPUTS.iter().map(|name| dir.join(name)));
    let status = cmd.status().map_err(|e| format!("running rustfmt: {e}"))?;
    if !status.success() {
        return Err(format!("rustfmt failed: {status}").into());
    }
    Ok(())
}

fn scratch_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("conch-proto-gen-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    Ok(dir)
}
