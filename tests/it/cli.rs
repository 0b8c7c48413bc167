//! The command line's bad input: one line saying what is wrong and what to do, a non-zero exit.

use crate::helpers;
use crate::helpers::{TestDb, junkquote, one_line_error};

#[test]
fn an_unknown_subcommand_or_flag_is_a_usage_error() {
    for args in [
        &["frobnicate"][..],
        &["migrate", "up", "--sideways"],
        &["db", "verify", "extra"],
    ] {
        let out = junkquote(args, Some("postgres://127.0.0.1:1/none"), None);
        let line = one_line_error(&out, 2);
        assert!(line.contains("run `junkquote --help`"), "{line}");
    }
    let out = junkquote(&["migrate", "down"], None, None);
    let line = one_line_error(&out, 2);
    assert!(line.contains("--to"), "names the missing option: {line}");
}

#[test]
fn an_unreachable_database_url_is_one_line_without_the_password() {
    let out = junkquote(
        &["migrate", "status"],
        Some("postgres://app:hunter2@127.0.0.1:1/junkquote"),
        None,
    );
    let line = one_line_error(&out, 1);
    assert!(
        line.contains("cannot connect to PostgreSQL at postgres://app:***@127.0.0.1:1/junkquote"),
        "{line}"
    );
    assert!(
        line.contains("unset DATABASE_URL to use the embedded PostgreSQL"),
        "{line}"
    );
    assert!(!line.contains("hunter2"));

    let out = junkquote(&["migrate", "status"], Some("mysql://nope"), None);
    let line = one_line_error(&out, 1);
    assert!(
        line.contains("DATABASE_URL is not a valid PostgreSQL URL"),
        "{line}"
    );
}

#[tokio::test]
async fn status_lists_applied_and_pending_migrations() {
    let db = TestDb::empty().await;
    assert!(
        junkquote(&["migrate", "up", "--to", "1"], Some(&db.url), None)
            .status
            .success()
    );
    let out = junkquote(&["migrate", "status"], Some(&db.url), None);
    assert!(out.status.success());
    let text = helpers::stdout(&out);
    assert!(
        text.starts_with(&format!(
            "database at migration 1 of {}\n",
            helpers::latest()
        )),
        "{text}"
    );
    assert!(text.contains("    1  legacy"), "{text}");
    assert!(text.contains("applied 20"), "{text}");
    assert!(
        text.contains("    3  batch1_online_indexes            pending"),
        "{text}"
    );
}

#[test]
fn an_out_of_range_lock_timeout_is_a_usage_error() {
    for value in ["1e30", "0", "-1", "soon"] {
        let out = junkquote(
            &["migrate", "up", &format!("--lock-timeout={value}")],
            Some("postgres://127.0.0.1:1/x"),
            None,
        );
        let line = one_line_error(&out, 2);
        assert!(line.contains("--lock-timeout"), "{line}");
    }
}
