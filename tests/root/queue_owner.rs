//! What root leaves in a queue (SECURITY.md): `mailq-ctl` and relayd run
//! as root switch to the queue's owner, so they never create a file the
//! service user cannot write.

use crate::util::{Env, assert_ok, closed_port, refused, run_with_input, simple_message, stderr};

/// What this test needs root for (`crate::as_root`).
const NEEDS: &str = "root running mailq-ctl and relayd on a queue owned by nobody";

/// Item 4: run as root, `mailq-ctl` (and relayd) never create a queue
/// directory or file the service user cannot write: a missing directory is
/// refused with the command that makes it, and the files in an existing one
/// are created as its owner.
#[test]
fn root_never_leaves_queue_files_the_service_user_cannot_write() {
    if !crate::as_root(NEEDS) {
        return;
    }
    const NOBODY: u32 = 65534;
    let env = Env::new(closed_port());
    std::fs::remove_dir(&env.queue).unwrap();
    for args in [&["status"][..], &["sweep"], &["block", "root"]] {
        let line = refused(&env, args, 73);
        assert!(
            line.contains(&env.queue.display().to_string()) && line.contains("install -d"),
            "{line}"
        );
        assert!(!env.queue.exists(), "{args:?} created the queue directory");
    }
    let out = env
        .scriptmail()
        .args(["relayd", "--once"])
        .output()
        .expect("relayd");
    assert_eq!(out.status.code(), Some(73), "{}", stderr(&out));
    assert!(!env.queue.exists());

    // The directory as the package makes it, for the service user (here
    // `nobody`): root's first command creates queue.db as that user.
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(&env.queue).unwrap();
    std::os::unix::fs::chown(&env.queue, Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::set_permissions(&env.queue, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_ok(&env.ctl(&["status"]));
    for entry in std::fs::read_dir(&env.queue).unwrap() {
        let entry = entry.unwrap();
        assert_eq!(
            entry.metadata().unwrap().uid(),
            NOBODY,
            "{} is not the service user's",
            entry.path().display()
        );
    }
    // ... so the service user's sendmail can queue.
    let out = run_with_input(
        env.sendmail().uid(NOBODY).gid(NOBODY).args(["-t", "-i"]),
        &simple_message("a@example.com", "as the service user"),
    );
    assert_ok(&out);
    assert_eq!(env.count("state IN ('queued', 'deferred', 'sending')"), 1);

    // A queue file root left behind (an older scriptmail did) is named.
    std::os::unix::fs::chown(env.queue.join("queue.db"), Some(0), Some(0)).unwrap();
    let line = refused(&env, &["status"], 73);
    assert!(
        line.contains("queue.db") && line.contains("chown"),
        "{line}"
    );
}
