//! Stalls: a tenant can neither stop nor trace its own `sendmail`, not even from its
//! terminal, nor hand a degraded process to the node's delivery run.

use super::*;

/// Perl probe run as a tenant: start PROGRAM (as the tenant's child, so a Yama
/// `ptrace_scope` of 1 does not decide the outcome) reading a pipe the probe keeps open,
/// wait until it runs with all four uids = WANT_UID, then try `kill(SIGSTOP)` and
/// `PTRACE_ATTACH` and print their errno (0 = it worked). If both failed, feed the message
/// and print the program's exit status.
/// Arguments: SYS_ptrace PTRACE_ATTACH WANT_UID SUBJECT PROGRAM ARGS...
const PROBE: &str = r#"
use strict;
my ($sys_ptrace, $attach, $want, $subject, @cmd) = @ARGV;
pipe(my $r, my $w) or die "pipe: $!";
my $pid = fork() // die "fork: $!";
if ($pid == 0) {
    open(STDIN, '<&', $r) or die "dup: $!";
    close $w;
    exec { $cmd[0] } @cmd or die "exec: $!";
}
close $r;
my $ready = 0;
for (1 .. 1000) {
    my ($st, $cl) = ('', '');
    if (open(my $f, '<', "/proc/$pid/status")) { local $/; $st = <$f> }
    if (open(my $f, '<', "/proc/$pid/cmdline")) { local $/; $cl = <$f> }
    if ($st =~ /^Uid:\s+$want\s+$want\s+$want\s+$want\s*$/m && index($cl, "$cmd[0]\0") == 0) {
        $ready = 1;
        last;
    }
    select(undef, undef, undef, 0.01);
}
die "target never ran with uid $want\n" unless $ready;
my $kill = kill('STOP', $pid) ? 0 : $! + 0;
my $trace = syscall($sys_ptrace + 0, $attach + 0, $pid + 0, 0, 0) == -1 ? $! + 0 : 0;
print "kill=$kill ptrace=$trace\n";
if ($kill == 0 || $trace == 0) {
    kill('KILL', $pid);
    waitpid($pid, 0);
    exit 0;
}
print $w "To: rcpt\@example.com\nSubject: $subject\n\nprobe\n";
close $w;
waitpid($pid, 0);
print "exit=", $? >> 8, " signal=", $? & 127, "\n";
"#;

/// A tenant can neither stop (SIGSTOP) nor trace its own running sendmail: EPERM, because
/// after the switch no uid of the process is the tenant's. The same probe against one of
/// the tenant's ordinary processes succeeds (positive control).
#[test]
fn tenant_cannot_stop_or_trace_its_own_sendmail() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let inst = Install::new(closed_port());
    let a = inst.a().clone();
    let probe = |want: u32, subject: &str, cmd: &[&str]| -> String {
        let out = run_timed(
            inst.as_user(&a, PERL)
                .args(["-e", PROBE])
                .arg(libc::SYS_ptrace.to_string())
                .arg(libc::PTRACE_ATTACH.to_string())
                .arg(want.to_string())
                .arg(subject)
                .args(cmd),
            None,
            WAIT,
        );
        assert!(
            out.status.success(),
            "probe: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    };

    // Control: the tenant's own `cat` can be stopped and traced by the tenant.
    let control = probe(a.uid, "-", &["/bin/cat"]);
    assert!(
        control.contains("kill=0 ptrace=0"),
        "the probe must work on an unprotected process: {control}"
    );

    let eperm = libc::EPERM;
    let got = probe(
        inst.svc().uid,
        "probe-stop",
        &[inst.sendmail.to_str().expect("utf-8"), "-t", "-i"],
    );
    assert!(
        got.contains(&format!("kill={eperm} ptrace={eperm}")),
        "SIGSTOP and PTRACE_ATTACH must fail with EPERM: {got}"
    );
    // Untouched by the attempts, it finishes its job.
    assert!(got.contains("exit=0 signal=0"), "{got}");
    let rows = inst.messages("probe-stop");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, TENANT_A);
}

/// The terminal is the one way to stop a process without permission: ^Z makes the line
/// discipline send SIGTSTP to the foreground job whatever its uid. A tenant's sendmail
/// running on the tenant's terminal, under a job-control shell, ignores it; the same ^Z
/// stops an ordinary program (positive control).
#[test]
fn tenant_cannot_stop_its_sendmail_from_its_terminal() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let inst = Install::new(closed_port());
    let a = inst.a().clone();
    // script(1) gives the shell a pty as controlling terminal; `set -m` runs the command as
    // a foreground job in its own process group, as an interactive shell would.
    let run_on_tty = |cmd: &str, wait_uid: u32| -> (Guard, std::process::ChildStdin) {
        let mut g = Guard(Some(
            inst.as_user(&a, "script")
                .args(["-q", "-e", "-c"])
                .arg(format!("bash -c 'set -m; {cmd}; echo status=$?'"))
                .arg("/dev/null")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn script"),
        ));
        let root = g.pid();
        let name = cmd.split_whitespace().next().expect("cmd");
        poll(&format!("{name} on the tty"), || {
            descendant(root, name).filter(|&p| {
                credentials(p).is_some_and(|(u, _)| u == [wait_uid; 4])
                    // The foreground process group of its terminal (pgrp == tpgid).
                    && stat(p).is_some_and(|(s, _, pgrp, _, _, tpgid)| {
                        pgrp == tpgid && s == 'S'
                    })
            })
        });
        let stdin = g.child().stdin.take().expect("stdin");
        (g, stdin)
    };

    // Control: ^Z stops `cat`; the shell reports it and goes on with status 148
    // (128 + SIGTSTP).
    let (g, mut tty) = run_on_tty("/bin/cat", a.uid);
    tty.write_all(b"\x1a").expect("^Z");
    let out = g.finish(WAIT);
    drop(tty);
    let screen = text(&out.stdout);
    assert!(
        screen.contains("Stopped") && screen.contains("status=148"),
        "^Z on the terminal must stop an ordinary program: {screen:?}"
    );

    let sendmail = inst.sendmail.to_str().expect("utf-8").to_string();
    let (g, mut tty) = run_on_tty(&format!("{sendmail} -t -i"), inst.svc().uid);
    tty.write_all(b"\x1a").expect("^Z");
    // Canonical mode: ^D at the start of a line is end of input.
    let mut msg = message("tty-stop");
    msg.extend_from_slice(b"\x04");
    tty.write_all(&msg).expect("message");
    let out = g.finish(WAIT);
    drop(tty);
    let screen = text(&out.stdout);
    assert!(
        screen.contains("status=0"),
        "sendmail must ignore ^Z and finish (status=148 means it was stopped): {screen:?}"
    );
    let rows = inst.messages("tty-stop");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, TENANT_A);
}

/// A tenant cannot hand its degraded process to the node's delivery: a one-shot delivery run
/// inherits the caller's scheduling class and hard limits, and would hold the relay lock for
/// everyone. From a `SCHED_IDLE` or resource-starved `sendmail` the mail is queued but no
/// delivery run is started (one log line says why); the next healthy submission relays it.
#[test]
fn a_degraded_caller_does_not_start_the_delivery_run() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let sink = Sink::start();
    let inst = Install::new(sink.port());
    let (a, b) = (inst.a().clone(), inst.b().clone());
    let sendmail = inst.sendmail.to_str().expect("utf-8").to_string();
    inst.log_lines();

    let cases: [(&str, &str, Vec<&str>); 2] = [
        (
            "degraded-idle",
            "SCHED_IDLE",
            vec!["chrt", "--idle", "0", &sendmail, "-t", "-i"],
        ),
        (
            "degraded-as",
            "RLIMIT_AS",
            vec!["prlimit", "--as=200000000", "--", &sendmail, "-t", "-i"],
        ),
    ];
    for (i, (tag, why, argv)) in cases.iter().enumerate() {
        let out = run_timed(
            inst.as_user(&a, argv[0]).args(&argv[1..]),
            Some(&message(tag)),
            WAIT,
        );
        assert_exit(&out, 0, tag);
        // Accepted (in the maildrop, fsynced) and not imported: no delivery run started.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(inst.maildrop().len(), i + 1, "{tag}: waits in the maildrop");
        let lines = inst.log_lines();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("not starting a delivery run") && l.contains(why)),
            "{tag}: no log line saying why: {lines:#?}"
        );
    }
    // A healthy submission starts a delivery run that imports and relays everything.
    assert_exit(
        &inst.submit_as(&b, &["-t", "-i"], &message("degraded-b")),
        0,
        "b",
    );
    for (tag, ..) in &cases {
        let rows = inst.messages(tag);
        assert_eq!(rows.len(), 1, "{tag}");
        assert_eq!(rows[0].0, TENANT_A);
    }
    let got = sink.wait_for(3, WAIT);
    for tag in ["degraded-idle", "degraded-as", "degraded-b"] {
        let subject = format!("Subject: {tag}");
        assert!(
            got.iter().any(|m| m.text().contains(&subject)),
            "{tag} not relayed"
        );
    }
}
