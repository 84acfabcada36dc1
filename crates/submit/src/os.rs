//! The operating-system interface: users, credentials, descriptors, limits,
//! signals; the submit socket's ends are in `os::socket`.
//!
//! Calls go through `nix`'s safe wrappers wherever it has one. This module is
//! the one place in the workspace where `unsafe` is allowed
//! (`[workspace.lints]` in Cargo.toml denies it everywhere else), for what
//! nix does not wrap or cannot make safe: `getauxval`, `close_range`,
//! `clearenv`, `getrandom`, `ioprio_set`, `sched_getscheduler`, signal
//! dispositions, and descriptors known only by number (systemd's fd 3, the
//! relay's sockets found in /proc/self/fd). Every block says why it is sound.
//! Each function is a thin wrapper, so the privileged `sendmail` path can be
//! audited in one screen.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::signal::{SigHandler, Signal};
use nix::sys::socket::{SockaddrStorage, getpeername, setsockopt, sockopt};
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Pid, Uid};

pub mod socket;

/// A passwd entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl From<nix::unistd::User> for User {
    fn from(u: nix::unistd::User) -> Self {
        User {
            name: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        }
    }
}

/// The real user id of this process.
pub fn real_uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

/// The effective user id of this process.
pub fn effective_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// The real group id of this process.
pub fn real_gid() -> u32 {
    nix::unistd::getgid().as_raw()
}

/// The effective group id of this process: the service group when the
/// program is installed set-gid (the package installs it 6755).
pub fn effective_gid() -> u32 {
    nix::unistd::getegid().as_raw()
}

/// True when the kernel started this program set-ID (or with file
/// capabilities): `AT_SECURE` is the kernel's own answer, covering set-uid,
/// set-gid and capabilities alike, and it survives our later uid switch.
pub fn is_privileged() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector; AT_SECURE is a
    // valid type. (nix has no wrapper.)
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// Look a user up by uid (`getpwuid_r`).
pub fn user_by_uid(uid: u32) -> Option<User> {
    nix::unistd::User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(User::from)
}

/// Look a user up by name (`getpwnam_r`).
pub fn user_by_name(name: &str) -> Option<User> {
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .map(User::from)
}

/// Switch real, effective and saved gid and uid to `user`, in that order
/// (gid first: after the uid switch we could no longer change it), and check
/// that there is no way back.
pub fn become_user(user: &User) -> io::Result<()> {
    let (uid, gid) = (Uid::from_raw(user.uid), Gid::from_raw(user.gid));
    nix::unistd::setresgid(gid, gid, gid)?;
    // Dropping supplementary groups needs CAP_SETGID; try, and carry on
    // without when we are merely set-uid (they grant no signal or ptrace
    // rights, which are decided by uid).
    let _ = nix::unistd::setgroups(&[gid]);
    nix::unistd::setresuid(uid, uid, uid)?;
    // Read back: the kernel, not our bookkeeping, says whether all six moved.
    let ids = nix::unistd::getresuid()?;
    if ids.real != uid || ids.effective != uid || ids.saved != uid {
        return Err(io::Error::other("uid switch incomplete"));
    }
    let ids = nix::unistd::getresgid()?;
    if ids.real != gid || ids.effective != gid || ids.saved != gid {
        return Err(io::Error::other("gid switch incomplete"));
    }
    Ok(())
}

/// Set only the effective uid, leaving the real and saved ones as they are.
/// The set-uid `sendmail` uses it to connect to relayd's submit socket as
/// its caller (the kernel records the peer's credentials at connect(2)), and
/// to come back to the service user, which is still its saved uid.
pub fn set_effective_uid(uid: u32) -> io::Result<()> {
    // -1 (as uid_t) leaves an id unchanged.
    let keep = Uid::from_raw(libc::uid_t::MAX);
    let uid = Uid::from_raw(uid);
    nix::unistd::setresuid(keep, uid, keep)?;
    if nix::unistd::getresuid()?.effective != uid {
        return Err(io::Error::other("effective uid switch incomplete"));
    }
    Ok(())
}

/// Try to take an exclusive lock on byte `index` of `file` without waiting:
/// an open-file-description lock (`F_OFD_SETLK`), released when the last
/// descriptor of this open goes away — at the latest when the process exits.
/// `Ok(false)` when another open holds it.
pub fn try_lock_byte(file: &File, index: u64) -> io::Result<bool> {
    let lock = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: libc::off_t::try_from(index).map_err(io::Error::other)?,
        l_len: 1,
        // Must be 0 for an OFD lock.
        l_pid: 0,
    };
    match nix::fcntl::fcntl(file, nix::fcntl::FcntlArg::F_OFD_SETLK(&lock)) {
        Ok(_) => Ok(true),
        Err(Errno::EAGAIN | Errno::EACCES) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Wait until `fd` can be read without blocking (data, end of input, an
/// error or, for a listening socket, a connection), for at most `timeout`.
/// `Ok(false)` when the time ran out or a signal interrupted the wait.
pub fn readable_within(fd: impl AsFd, timeout: Duration) -> io::Result<bool> {
    // Round up, so a wait of a few microseconds is not a busy poll of 0 ms.
    let ms = timeout.as_nanos().div_ceil(1_000_000);
    let ms = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    match nix::poll::poll(&mut fds, ms) {
        Ok(n) => Ok(n > 0),
        Err(Errno::EINTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Close every descriptor above 2 (inherited pipes, sockets, the caller's
/// open files).
pub fn close_inherited_fds() {
    // SAFETY: close_range(2) only closes descriptors; nothing in this process
    // holds one above 2 yet when this runs (it is the first thing main does).
    // (nix has no wrapper.)
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if rc != 0 {
        for fd in 3..1024 {
            // SAFETY: as above: closing a descriptor number nothing here uses.
            unsafe { libc::close(fd) };
        }
    }
}

/// Make sure descriptors 0, 1 and 2 are open, so a later open() cannot land
/// on them (a caller that closed stdout would otherwise get the queue's
/// files written to by a stray print): open(2) takes the lowest free
/// number, so /dev/null is opened until the number it gets is above 2.
pub fn ensure_std_fds() {
    while let Ok(f) = OpenOptions::new().read(true).write(true).open("/dev/null") {
        if f.as_raw_fd() > 2 {
            break;
        }
        // Kept open for the life of the process, as descriptor 0, 1 or 2.
        let _ = f.into_raw_fd();
    }
}

/// Set the file-creation mask; returns the old one.
pub fn set_umask(mask: u32) -> u32 {
    let new = Mode::from_bits_truncate(mask as libc::mode_t);
    nix::sys::stat::umask(new).bits() as u32
}

/// Remove every environment variable. Called while single-threaded, at
/// start-up of the privileged program.
pub fn clear_env() {
    // SAFETY: the process is single-threaded at this point, so no other
    // thread reads the environment concurrently.
    unsafe { libc::clearenv() };
}

/// The resource limits a caller may lower to hurt us.
const LIMITS: [Resource; 6] = [
    Resource::RLIMIT_FSIZE,
    Resource::RLIMIT_NOFILE,
    Resource::RLIMIT_CPU,
    Resource::RLIMIT_AS,
    Resource::RLIMIT_DATA,
    Resource::RLIMIT_STACK,
];

/// Undo limits and signal dispositions a hostile caller may have set: a tiny
/// RLIMIT_FSIZE would kill us with SIGXFSZ mid-write, an ignored SIGPIPE is
/// what we want anyway, and no core file may leak queue contents. Soft limits
/// go back up to the hard ones (which only root could raise).
pub fn reset_limits() {
    for res in LIMITS {
        if let Ok((soft, hard)) = getrlimit(res)
            && soft < hard
        {
            let _ = setrlimit(res, hard, hard);
        }
    }
    let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
    // A process on the caller's terminal gets SIGTSTP (^Z), SIGTTIN and
    // SIGTTOU from the line discipline with no permission check at all: the
    // one way left to stop us after the uid switch, so the stop signals are
    // ignored (a read from a background terminal then fails with EIO).
    for sig in [
        Signal::SIGXFSZ,
        Signal::SIGPIPE,
        Signal::SIGTSTP,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
    ] {
        // SAFETY: SIG_IGN installs no handler code, so nothing can run in
        // signal context.
        let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::SigIgn) };
    }
    // The idle I/O class (`ionice -c3`, allowed to anyone) would let the
    // caller starve our commit's fsync while we hold the queue lock. Unlike
    // the CPU scheduling class, it can be reset without privilege: class
    // "none" follows the CPU nice value, as for any process.
    // SAFETY: ioprio_set(IOPRIO_WHO_PROCESS, self, IOPRIO_CLASS_NONE) takes
    // plain integers. (nix has no wrapper.)
    unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, 0) };
}

/// Why a process started from here would not be fit to relay the whole
/// node's queue, if it would not: a tenant can lower hard resource limits and
/// its scheduling class before it runs the set-uid `sendmail`, the service
/// user cannot undo either, and a child inherits both. A delivery run that
/// starves under `SCHED_IDLE`, or dies for want of memory, files or CPU time,
/// while holding the relay lock would delay every account's mail.
pub fn delivery_hazard() -> Option<String> {
    // SAFETY: sched_getscheduler(0) only reads this process's policy.
    // (nix has no wrapper.)
    if unsafe { libc::sched_getscheduler(0) } == libc::SCHED_IDLE {
        return Some("scheduling class SCHED_IDLE".into());
    }
    const GIB: u64 = 1 << 30;
    let floors = [
        // Any CPU-time or file-size limit can stop a long run at a random point.
        (Resource::RLIMIT_CPU, "RLIMIT_CPU", u64::MAX),
        (Resource::RLIMIT_FSIZE, "RLIMIT_FSIZE", u64::MAX),
        (Resource::RLIMIT_AS, "RLIMIT_AS", GIB),
        (Resource::RLIMIT_DATA, "RLIMIT_DATA", GIB),
        (Resource::RLIMIT_STACK, "RLIMIT_STACK", 8 << 20),
        (Resource::RLIMIT_NOFILE, "RLIMIT_NOFILE", 256u64),
    ];
    for (res, name, floor) in floors {
        let Ok((_, hard)) = getrlimit(res) else {
            continue;
        };
        if hard != libc::RLIM_INFINITY && hard < floor {
            return Some(format!("hard {name} {hard}"));
        }
    }
    None
}

/// The kernel host name.
pub fn hostname() -> Option<String> {
    let name = nix::unistd::gethostname().ok()?;
    let name = name.to_string_lossy().into_owned();
    (!name.is_empty()).then_some(name)
}

/// Fill `buf` with random bytes from the kernel (`getrandom(2)`).
pub fn random_bytes(buf: &mut [u8]) {
    let mut done = 0;
    while let Some(rest) = buf.get_mut(done..).filter(|r| !r.is_empty()) {
        // SAFETY: the pointer/length pair describes `rest`, the unfilled
        // tail of buf. (nix has no wrapper.)
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        match usize::try_from(n) {
            Ok(n) if n > 0 => done += n,
            _ => {
                // Practically unreachable on Linux ≥ 3.17; fall back to time.
                let t = crate::clock::now_ms() as u64 ^ u64::from(std::process::id()) << 32;
                for (i, b) in rest.iter_mut().enumerate() {
                    *b = (t >> ((i % 8) * 8)) as u8;
                }
                return;
            }
        }
    }
}

/// A random u64.
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    random_bytes(&mut b);
    u64::from_ne_bytes(b)
}

/// Turn on TCP_NODELAY for every TCP socket of this process connected to
/// `peer`. lettre does not expose its socket, and it writes the end-of-data
/// `\r\n.\r\n` as a separate small segment; with Nagle on, that segment waits
/// for the server's delayed ACK (~40 ms per message on loopback, the trap
/// msmtp and dma fall into).
pub fn set_nodelay_towards(peer: &std::net::SocketAddr) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if socket_peer(fd).as_ref() == Some(peer) {
            // SAFETY: fd was open a moment ago (getpeername answered) and is
            // borrowed for this one call only. Should another thread close
            // it in between, the call fails with EBADF or sets TCP_NODELAY
            // on whatever reused the number: harmless either way.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            let _ = setsockopt(&fd, sockopt::TcpNoDelay, &true);
        }
    }
}

/// The TCP/IP peer of descriptor `fd`, if it is a connected socket.
fn socket_peer(fd: i32) -> Option<std::net::SocketAddr> {
    let addr: SockaddrStorage = getpeername(fd).ok()?;
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some((*v4).into());
    }
    addr.as_sockaddr_in6().map(|v6| (*v6).into())
}

/// Send `sig` to `pid` (0: only check that it could be sent); the tests
/// stop and kill the processes they start with it.
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    let sig = match sig {
        0 => None,
        n => Some(Signal::try_from(n)?),
    };
    nix::sys::signal::kill(Pid::from_raw(pid), sig)?;
    Ok(())
}

/// Wait until standard input can be read without blocking (data, end of
/// input or an error is pending), for at most `timeout`. `Ok(false)` when
/// the time ran out; an interrupted wait is `Ok(false)` too, so the caller
/// re-checks its own deadline.
pub fn stdin_readable_within(timeout: Duration) -> io::Result<bool> {
    readable_within(io::stdin(), timeout)
}

/// read(2) from standard input, with no buffering of our own: after
/// [`stdin_readable_within`] said so, this returns without blocking.
pub fn read_stdin(buf: &mut [u8]) -> io::Result<usize> {
    Ok(nix::unistd::read(io::stdin(), buf)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_root() {
        let root = user_by_uid(0).unwrap();
        assert_eq!(root.name, "root");
        assert_eq!(user_by_name("root").unwrap().uid, 0);
        assert!(user_by_name("no-such-user-xyz").is_none());
        assert!(user_by_name("nul\0name").is_none());
    }

    #[test]
    fn random_is_not_constant() {
        assert_ne!(random_u64(), random_u64());
        // An odd length that is not a multiple of 8 is filled to the end.
        let mut b = [0u8; 37];
        random_bytes(&mut b);
        assert!(b[29..].iter().any(|&x| x != 0));
    }

    #[test]
    fn not_privileged_in_tests() {
        assert!(!is_privileged());
    }

    #[test]
    fn a_byte_lock_excludes_other_opens_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locks");
        let a = File::create(&path).unwrap();
        let b = OpenOptions::new().write(true).open(&path).unwrap();
        assert!(try_lock_byte(&a, 3).unwrap());
        assert!(!try_lock_byte(&b, 3).unwrap(), "same byte, other open");
        assert!(try_lock_byte(&b, 4).unwrap(), "another byte is free");
        drop(a);
        assert!(try_lock_byte(&b, 3).unwrap(), "freed with its open");
    }

    #[test]
    fn readable_within_sees_data_and_times_out() {
        let (mut w, r) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(!readable_within(&r, Duration::from_millis(5)).unwrap());
        std::io::Write::write_all(&mut w, b"x").unwrap();
        assert!(readable_within(&r, Duration::from_millis(5)).unwrap());
    }

    #[test]
    fn the_peer_of_a_tcp_socket_is_found() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        assert_eq!(socket_peer(c.as_raw_fd()), Some(l.local_addr().unwrap()));
        set_nodelay_towards(&l.local_addr().unwrap());
        assert!(c.nodelay().unwrap());
        assert_eq!(socket_peer(l.as_raw_fd()), None, "a listener has no peer");
    }

    #[test]
    fn kill_with_signal_zero_checks_only() {
        assert!(kill(std::process::id() as i32, 0).is_ok());
        assert!(kill(std::process::id() as i32, 12345).is_err());
    }
}

/// Flags set by signal handlers: SIGTERM/SIGINT ask to stop, SIGHUP to reload.
pub mod signals {
    use std::sync::atomic::{AtomicBool, Ordering};

    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

    pub static STOP: AtomicBool = AtomicBool::new(false);
    pub static RELOAD: AtomicBool = AtomicBool::new(false);

    extern "C" fn on_stop(_: libc::c_int) {
        STOP.store(true, Ordering::SeqCst);
    }

    extern "C" fn on_reload(_: libc::c_int) {
        RELOAD.store(true, Ordering::SeqCst);
    }

    /// Install the handlers (only atomic stores: async-signal-safe).
    pub fn install() {
        for (sig, handler) in [
            (Signal::SIGTERM, on_stop as extern "C" fn(libc::c_int)),
            (Signal::SIGINT, on_stop),
            (Signal::SIGHUP, on_reload),
        ] {
            let action = SigAction::new(
                SigHandler::Handler(handler),
                SaFlags::empty(),
                SigSet::empty(),
            );
            // SAFETY: the handlers only store to atomics, which is
            // async-signal-safe.
            let _ = unsafe { sigaction(sig, &action) };
        }
        // SAFETY: SIG_IGN installs no handler code.
        let _ = unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigIgn) };
    }

    pub fn stop_requested() -> bool {
        STOP.load(Ordering::SeqCst)
    }

    /// True once per SIGHUP.
    pub fn take_reload() -> bool {
        RELOAD.swap(false, Ordering::SeqCst)
    }
}
