//! The embedded PostgreSQL: started on demand, kept across restarts, shared by concurrent
//! processes, stopped by the last one, and clear about what is wrong when it cannot start.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{junkquote, one_line_error, stdout};
use junkquote::store::embedded::{Cluster, ClusterConfig};

/// A data directory under the system's temporary directory, which the `postgres` user can reach.
fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("jq-embedded-")
        .tempdir()
        .expect("temp dir")
}

fn running(dir: &Path) -> bool {
    dir.join("pg/postmaster.pid").exists()
}

#[test]
fn the_cluster_is_shared_and_stops_with_its_last_user() {
    let dir = data_dir();
    let config = ClusterConfig::service(dir.path());
    let first = Cluster::start(&config).expect("start");
    assert!(first.launched_here());
    let second = Cluster::start(&config).expect("join");
    assert!(
        !second.launched_here(),
        "a second user joins the running cluster"
    );
    assert_eq!(first.postmaster_pid(), second.postmaster_pid());

    assert!(
        !first.release().expect("leave"),
        "still in use by the second"
    );
    assert!(running(dir.path()));
    assert!(second.release().expect("leave"), "the last user stops it");
    assert!(!running(dir.path()));

    // Run as root, the cluster belongs to the postgres user and is private to it.
    let meta = std::fs::metadata(dir.path().join("pg")).expect("pgdata");
    if nix::unistd::Uid::effective().is_root() {
        let postgres = nix::unistd::User::from_name("postgres")
            .expect("lookup")
            .expect("postgres user");
        assert_eq!(meta.uid(), postgres.uid.as_raw());
    }
    assert_eq!(meta.mode() & 0o777, 0o700);
}

#[test]
fn a_stale_pid_file_after_a_crash_does_not_block_the_next_start() {
    let dir = data_dir();
    let config = ClusterConfig::service(dir.path());
    let cluster = Cluster::start(&config).expect("start");
    let pid = cluster.postmaster_pid().expect("pid");
    // Crash: kill the server outright, then leave a pid file naming a process that is gone.
    let pid = nix::unistd::Pid::from_raw(pid);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill");
    // This process started it, so it is ours to reap.
    nix::sys::wait::waitpid(pid, None).expect("reap the killed server");
    cluster.detach();
    let pid_file = dir.path().join("pg/postmaster.pid");
    let text = std::fs::read_to_string(&pid_file).unwrap_or_default();
    let rest: Vec<&str> = text.lines().skip(1).collect();
    std::fs::write(&pid_file, format!("999999\n{}\n", rest.join("\n")))
        .expect("write stale pid file");

    let again = Cluster::start(&config).expect("start after a crash");
    assert!(again.launched_here());
    assert!(again.release().expect("stop"));
}

#[test]
fn a_long_data_dir_path_puts_the_socket_in_a_short_one() {
    let base = data_dir();
    let long = base.path().join(
        "a-directory-name-long-enough-to-push-a-unix-socket-path-past-its-limit-of-107-bytes",
    );
    let cluster = Cluster::start(&ClusterConfig::service(&long)).expect("start");
    let socket_dir = cluster.socket_dir().display().to_string();
    assert!(socket_dir.starts_with("/tmp/junkquote-"), "{socket_dir}");
    assert!(cluster.release().expect("stop"));
}

#[test]
fn the_cli_keeps_data_across_restarts_and_stops_the_cluster_on_exit() {
    let dir = data_dir();
    let out = junkquote(&["migrate", "up", "--to", "2"], None, Some(dir.path()));
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(!running(dir.path()), "stopped when the command exits");

    let out = junkquote(&["migrate", "status"], None, Some(dir.path()));
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(
        stdout(&out).contains("database at migration 2 of 3"),
        "{}",
        stdout(&out)
    );

    // `db url` keeps it running for a client; `db stop` lets it stop.
    let out = junkquote(&["db", "url"], None, Some(dir.path()));
    assert!(out.status.success());
    let url = stdout(&out).trim().to_owned();
    assert!(
        url.starts_with("postgres://postgres@localhost/junkquote?host="),
        "{url}"
    );
    assert!(running(dir.path()));
    let psql = std::process::Command::new("psql")
        .args([
            url.as_str(),
            "-tAc",
            "SELECT max(version) FROM junkquote.schema_migrations",
        ])
        .output()
        .expect("psql");
    assert_eq!(String::from_utf8_lossy(&psql.stdout).trim(), "2");
    assert!(
        junkquote(&["db", "stop"], None, Some(dir.path()))
            .status
            .success()
    );
    assert!(!running(dir.path()));
}

#[test]
fn a_data_dir_owned_by_someone_else_is_refused() {
    let dir = data_dir();
    let foreign = dir.path().join("theirs");
    std::fs::create_dir(&foreign).expect("mkdir");
    std::fs::write(foreign.join("their-file"), "x").expect("write");
    // As root, hand it to `nobody`; as anyone else, `/` is owned by somebody else already.
    let foreign = if nix::unistd::Uid::effective().is_root() {
        nix::unistd::chown(&foreign, Some(nix::unistd::Uid::from_raw(65534)), None).expect("chown");
        foreign
    } else {
        Path::new("/").to_owned()
    };
    let out = junkquote(&["migrate", "status"], None, Some(&foreign));
    let line = one_line_error(&out, 1);
    assert!(line.contains("is owned by"), "{line}");
    assert!(
        line.contains("use another --data-dir"),
        "says what to do: {line}"
    );
    assert!(foreign.join("their-file").exists() || foreign == Path::new("/"));
    assert!(!foreign.join("pg").exists(), "nothing was created in it");
}

#[test]
fn missing_postgresql_binaries_are_reported_with_how_to_install_them() {
    let dir = data_dir();
    let out = common::command(&["migrate", "status"], None, Some(dir.path()))
        .env("JUNKQUOTE_PG_BIN", dir.path())
        .output()
        .expect("run");
    let line = one_line_error(&out, 1);
    assert!(
        line.contains("initdb, pg_ctl and postgres are not all there"),
        "{line}"
    );
    assert!(line.contains("apt-get install postgresql"), "{line}");
}

#[test]
fn a_data_dir_postgres_cannot_reach_is_refused_with_the_blocking_directory() {
    // Only root hands the cluster to another user (`postgres`); as anyone else the runner is the
    // invoking user, who can reach wherever they can create a directory.
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let base = data_dir();
    let private = base.path().join("private");
    std::fs::create_dir(&private).expect("mkdir");
    std::fs::set_permissions(
        &private,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    let out = junkquote(&["migrate", "status"], None, Some(&private.join("data")));
    let line = one_line_error(&out, 1);
    assert!(
        line.contains(&format!(
            "PostgreSQL runs as postgres, which cannot enter {}",
            private.display()
        )),
        "{line}"
    );
    assert!(!private.join("data").exists(), "nothing was created");
}
