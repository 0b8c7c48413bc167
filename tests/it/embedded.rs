//! The embedded PostgreSQL: started on demand, kept across restarts, shared by concurrent
//! processes, stopped by the last one, and clear about what is wrong when it cannot start.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::helpers;
use crate::helpers::{junkquote, one_line_error, stdout};
use junkquote::db::embedded::{Cluster, ClusterConfig};

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
    assert!(out.status.success(), "{}", helpers::stderr(&out));
    assert!(!running(dir.path()), "stopped when the command exits");

    let out = junkquote(&["migrate", "status"], None, Some(dir.path()));
    assert!(out.status.success(), "{}", helpers::stderr(&out));
    assert!(
        stdout(&out).contains(&format!("database at migration 2 of {}", helpers::latest())),
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
    let out = helpers::command(&["migrate", "status"], None, Some(dir.path()))
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

#[test]
fn a_server_that_cannot_start_is_one_line_and_does_not_hang() {
    let dir = data_dir();
    let config = ClusterConfig::service(dir.path());
    assert!(
        Cluster::start(&config)
            .expect("first start")
            .release()
            .expect("stop")
    );
    let conf = dir.path().join("pg/postgresql.conf");
    let original = std::fs::read_to_string(&conf).expect("read conf");
    std::fs::write(&conf, format!("{original}\nthis is not a setting\n")).expect("break conf");

    let started = std::time::Instant::now();
    let out = junkquote(&["migrate", "status"], None, Some(dir.path()));
    let line = one_line_error(&out, 1);
    assert!(line.contains("PostgreSQL could not start"), "{line}");
    assert!(line.contains("postgres.log"), "points at the log: {line}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));

    // Mended, it starts again: the failed attempt left no lock behind.
    std::fs::write(&conf, original).expect("mend conf");
    let out = junkquote(&["migrate", "status"], None, Some(dir.path()));
    assert!(out.status.success(), "{}", helpers::stderr(&out));
}

#[test]
fn an_existing_directory_with_other_files_is_not_taken_over() {
    let dir = data_dir();
    std::fs::write(dir.path().join("notes.txt"), "mine").expect("write");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let out = junkquote(&["migrate", "status"], None, Some(dir.path()));
    let line = one_line_error(&out, 1);
    assert!(
        line.contains("already holds files that are not JunkQuote's (such as notes.txt)"),
        "{line}"
    );
    let meta = std::fs::metadata(dir.path()).expect("stat");
    assert_eq!(meta.mode() & 0o777, 0o755, "its mode is untouched");
    assert!(!dir.path().join("pg").exists());
}

#[test]
fn a_planted_socket_directory_is_refused() {
    let base = data_dir();
    let long = base
        .path()
        .join("another-directory-name-long-enough-that-the-socket-has-to-move-under-tmp-instead");
    let socket_dir = junkquote::db::embedded::socket_dir_for(&long);
    let victim = data_dir();
    let _ = std::fs::remove_file(&socket_dir);
    std::os::unix::fs::symlink(victim.path(), &socket_dir).expect("plant a symlink");
    let result = Cluster::start(&ClusterConfig::service(&long));
    let _ = std::fs::remove_file(&socket_dir);
    let err = result.expect_err("refused");
    assert!(
        err.to_string().contains("exists but is not a directory of"),
        "{err}"
    );
    let meta = std::fs::metadata(victim.path()).expect("stat");
    assert_eq!(
        meta.uid(),
        nix::unistd::Uid::effective().as_raw(),
        "the link's target was not given away"
    );
}

#[tokio::test]
async fn sigterm_while_waiting_leaves_nothing_running() {
    use sqlx::Connection;
    let dir = data_dir();
    // A cluster nobody holds, with the migrators' lock taken by this test.
    let cluster = Cluster::start(&ClusterConfig::service(dir.path())).expect("start");
    let url = cluster.url("postgres");
    cluster.detach();
    let mut admin = sqlx::PgConnection::connect(&url).await.expect("connect");
    sqlx::query("CREATE DATABASE junkquote")
        .execute(&mut admin)
        .await
        .expect("create");
    let mut holder = sqlx::PgConnection::connect(&url.replacen("/postgres?", "/junkquote?", 1))
        .await
        .expect("connect");
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(junkquote::db::migrate::LOCK_KEY)
        .execute(&mut holder)
        .await
        .expect("lock");

    let child = helpers::command(&["migrate", "up"], None, Some(dir.path()))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    drop(holder);
    drop(admin);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1), "{}", helpers::stderr(&out));
    assert!(
        helpers::stderr(&out).contains("interrupted"),
        "{}",
        helpers::stderr(&out)
    );
    assert!(
        !running(dir.path()),
        "its last user stopped the cluster on the way out"
    );
}
