//! The operating-system interface: users, credentials, descriptors, rlimits.
//!
//! This is the only module with `unsafe` (with its child `os::socket`, the
//! submit socket's ends); every block says why it is sound.
//! Everything here is a thin, documented wrapper around one libc call so the
//! privileged `sendmail` path can be audited in one screen.

use std::ffi::{CStr, CString};
use std::io;

pub mod socket;

/// A passwd entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// The real user id of this process.
pub fn real_uid() -> u32 {
    // SAFETY: getuid(2) cannot fail and touches no memory.
    unsafe { libc::getuid() }
}

/// The effective user id of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// The real group id of this process.
pub fn real_gid() -> u32 {
    // SAFETY: getgid(2) cannot fail and touches no memory.
    unsafe { libc::getgid() }
}

/// The effective group id of this process: the service group when the
/// program is installed set-gid (the package installs it 6755).
pub fn effective_gid() -> u32 {
    // SAFETY: getegid(2) cannot fail and touches no memory.
    unsafe { libc::getegid() }
}

/// True when the kernel started this program set-ID (or with file
/// capabilities): `AT_SECURE` is the kernel's own answer, covering set-uid,
/// set-gid and capabilities alike, and it survives our later uid switch.
pub fn is_privileged() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector; AT_SECURE is a valid type.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

fn passwd_entry(by: Result<u32, &CStr>) -> Option<User> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: passwd is plain old data; a zeroed value is a valid out-parameter.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: all pointers are valid for the duration of the call, buf's
        // length is passed, and result is only read after a 0 return.
        let rc = unsafe {
            match by {
                Ok(uid) => libc::getpwuid_r(
                    uid,
                    &mut pwd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    &mut result,
                ),
                Err(name) => libc::getpwnam_r(
                    name.as_ptr(),
                    &mut pwd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    &mut result,
                ),
            }
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || result.is_null() {
            return None;
        }
        // SAFETY: on success pw_name points to a NUL-terminated string inside buf.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned();
        return Some(User {
            name,
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
        });
    }
}

/// Look a user up by uid (`getpwuid_r`).
pub fn user_by_uid(uid: u32) -> Option<User> {
    passwd_entry(Ok(uid))
}

/// Look a user up by name (`getpwnam_r`).
pub fn user_by_name(name: &str) -> Option<User> {
    let c = CString::new(name).ok()?;
    passwd_entry(Err(&c))
}

/// Switch real, effective and saved gid and uid to `user`, in that order
/// (gid first: after the uid switch we could no longer change it), and check
/// that there is no way back.
pub fn become_user(user: &User) -> io::Result<()> {
    // SAFETY: setresgid/setresuid take plain integers.
    if unsafe { libc::setresgid(user.gid, user.gid, user.gid) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // Dropping supplementary groups needs CAP_SETGID; try, and carry on
    // without when we are merely set-uid (they grant no signal or ptrace
    // rights, which are decided by uid).
    // SAFETY: one gid from a valid pointer.
    unsafe { libc::setgroups(1, &user.gid) };
    // SAFETY: as above.
    if unsafe { libc::setresuid(user.uid, user.uid, user.uid) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: three valid out-pointers.
    unsafe { libc::getresuid(&mut r, &mut e, &mut s) };
    if r != user.uid || e != user.uid || s != user.uid {
        return Err(io::Error::other("uid switch incomplete"));
    }
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: three valid out-pointers.
    unsafe { libc::getresgid(&mut r, &mut e, &mut s) };
    if r != user.gid || e != user.gid || s != user.gid {
        return Err(io::Error::other("gid switch incomplete"));
    }
    Ok(())
}

/// Set only the effective uid, leaving the real and saved ones as they are.
/// The set-uid `sendmail` uses it to connect to relayd's submit socket as
/// its caller (the kernel records the peer's credentials at connect(2)), and
/// to come back to the service user, which is still its saved uid.
pub fn set_effective_uid(uid: u32) -> io::Result<()> {
    // SAFETY: setresuid takes plain integers; -1 (as uid_t) leaves an id unchanged.
    if unsafe { libc::setresuid(libc::uid_t::MAX, uid, libc::uid_t::MAX) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Try to take an exclusive lock on byte `index` of `file` without waiting:
/// an open-file-description lock (`F_OFD_SETLK`), released when the last
/// descriptor of this open goes away — at the latest when the process exits.
/// `Ok(false)` when another open holds it.
pub fn try_lock_byte(file: &std::fs::File, index: u64) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock is plain data; all-zero is a valid value (l_pid must be 0
    // for OFD locks).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = libc::off_t::try_from(index).map_err(io::Error::other)?;
    fl.l_len = 1;
    // SAFETY: a valid descriptor and a valid flock pointer.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) } == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        _ => Err(e),
    }
}

/// Wait until `fd` can be read without blocking (data, end of input, an
/// error or, for a listening socket, a connection), for at most `timeout`.
/// `Ok(false)` when the time ran out or a signal interrupted the wait.
pub fn readable_within(fd: std::os::fd::RawFd, timeout: std::time::Duration) -> io::Result<bool> {
    // Round up, so a wait of a few microseconds is not a busy poll of 0 ms.
    let ms = timeout.as_nanos().div_ceil(1_000_000);
    let ms = libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX);
    let mut fds = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, and its count is 1.
    let rc = unsafe { libc::poll(&mut fds, 1, ms) };
    match rc {
        0 => Ok(false),
        n if n > 0 => Ok(true),
        _ => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

/// Close every descriptor above 2 (inherited pipes, sockets, the caller's
/// open files).
pub fn close_inherited_fds() {
    // SAFETY: close_range(2) only closes descriptors; nothing in this process
    // holds one above 2 yet when this runs (it is the first thing main does).
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if rc != 0 {
        for fd in 3..1024 {
            // SAFETY: closing a descriptor number we do not use.
            unsafe { libc::close(fd) };
        }
    }
}

/// Make sure descriptors 0, 1 and 2 are open, so a later open() cannot land
/// on them (a caller that closed stdout would otherwise get the database
/// written to by a stray print).
pub fn ensure_std_fds() {
    for fd in 0..3 {
        // SAFETY: F_GETFD on any integer is harmless.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            // SAFETY: opening /dev/null with a static NUL-terminated path.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}

/// Set the file-creation mask; returns the old one.
pub fn set_umask(mask: u32) -> u32 {
    // SAFETY: umask(2) cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// Remove every environment variable. Called while single-threaded, at
/// start-up of the privileged program.
pub fn clear_env() {
    // SAFETY: the process is single-threaded at this point, so no other
    // thread reads the environment concurrently.
    unsafe { libc::clearenv() };
}

/// Undo limits and signal dispositions a hostile caller may have set: a tiny
/// RLIMIT_FSIZE would kill us with SIGXFSZ mid-write, an ignored SIGPIPE is
/// what we want anyway, and no core file may leak queue contents. Soft limits
/// go back up to the hard ones (which only root could raise).
pub fn reset_limits() {
    for res in [
        libc::RLIMIT_FSIZE,
        libc::RLIMIT_NOFILE,
        libc::RLIMIT_CPU,
        libc::RLIMIT_AS,
        libc::RLIMIT_DATA,
        libc::RLIMIT_STACK,
    ] {
        // SAFETY: rlimit is plain data; get/setrlimit read/write it only.
        unsafe {
            let mut rl: libc::rlimit = std::mem::zeroed();
            if libc::getrlimit(res, &mut rl) == 0 && rl.rlim_cur < rl.rlim_max {
                rl.rlim_cur = rl.rlim_max;
                libc::setrlimit(res, &rl);
            }
        }
    }
    let core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid rlimit pointer.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &core) };
    // A process on the caller's terminal gets SIGTSTP (^Z), SIGTTIN and
    // SIGTTOU from the line discipline with no permission check at all: the
    // one way left to stop us after the uid switch, so the stop signals are
    // ignored (a read from a background terminal then fails with EIO).
    // SAFETY: setting dispositions to SIG_IGN installs no handler code.
    unsafe {
        for sig in [
            libc::SIGXFSZ,
            libc::SIGPIPE,
            libc::SIGTSTP,
            libc::SIGTTIN,
            libc::SIGTTOU,
        ] {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
    // The idle I/O class (`ionice -c3`, allowed to anyone) would let the
    // caller starve our commit's fsync while we hold the queue lock. Unlike
    // the CPU scheduling class, it can be reset without privilege: class
    // "none" follows the CPU nice value, as for any process.
    // SAFETY: ioprio_set(IOPRIO_WHO_PROCESS, self, IOPRIO_CLASS_NONE) takes
    // plain integers.
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
    if unsafe { libc::sched_getscheduler(0) } == libc::SCHED_IDLE {
        return Some("scheduling class SCHED_IDLE".into());
    }
    const GIB: u64 = 1 << 30;
    let floors = [
        // Any CPU-time or file-size limit can stop a long run at a random point.
        (libc::RLIMIT_CPU, "RLIMIT_CPU", u64::MAX),
        (libc::RLIMIT_FSIZE, "RLIMIT_FSIZE", u64::MAX),
        (libc::RLIMIT_AS, "RLIMIT_AS", GIB),
        (libc::RLIMIT_DATA, "RLIMIT_DATA", GIB),
        (libc::RLIMIT_STACK, "RLIMIT_STACK", 8 << 20),
        (libc::RLIMIT_NOFILE, "RLIMIT_NOFILE", 256u64),
    ];
    for (res, name, floor) in floors {
        // SAFETY: rlimit is plain data; getrlimit writes it only.
        let mut rl: libc::rlimit = unsafe { std::mem::zeroed() };
        // SAFETY: a valid resource and a valid out-pointer.
        if unsafe { libc::getrlimit(res, &mut rl) } != 0 {
            continue;
        }
        if rl.rlim_max != libc::RLIM_INFINITY && rl.rlim_max < floor {
            return Some(format!("hard {name} {}", rl.rlim_max));
        }
    }
    None
}

/// The kernel host name.
pub fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its length.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let s = String::from_utf8_lossy(&buf[..end]).into_owned();
    (!s.is_empty()).then_some(s)
}

/// Fill `buf` with random bytes from the kernel (`getrandom(2)`).
pub fn random_bytes(buf: &mut [u8]) {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the pointer/length pair describes the unfilled tail of buf.
        let n = unsafe { libc::getrandom(buf[done..].as_mut_ptr().cast(), buf.len() - done, 0) };
        if n <= 0 {
            // Practically unreachable on Linux ≥ 3.17; fall back to time.
            let t = crate::clock::now_ms() as u64 ^ u64::from(std::process::id()) << 32;
            for (i, b) in buf[done..].iter_mut().enumerate() {
                *b = (t >> ((i % 8) * 8)) as u8;
            }
            return;
        }
        done += n as usize;
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
            let one: libc::c_int = 1;
            // SAFETY: setsockopt on a socket descriptor with a valid int option.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_NODELAY,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
        }
    }
}

fn socket_peer(fd: i32) -> Option<std::net::SocketAddr> {
    // SAFETY: sockaddr_storage is plain data; getpeername writes at most len bytes.
    unsafe {
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getpeername(
            fd,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        ) != 0
        {
            return None;
        }
        match ss.ss_family as i32 {
            libc::AF_INET => {
                let sin = &*(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Some(std::net::SocketAddr::from((ip, u16::from_be(sin.sin_port))))
            }
            libc::AF_INET6 => {
                let sin6 = &*(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
                let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(std::net::SocketAddr::from((
                    ip,
                    u16::from_be(sin6.sin6_port),
                )))
            }
            _ => None,
        }
    }
}

/// Send `sig` to `pid`; used by tests and by `mailq-ctl` to nudge the daemon.
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill(2) with integer arguments.
    if unsafe { libc::kill(pid, sig) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// True if stdin is a terminal (purge asks for confirmation only then).
pub fn is_tty(fd: i32) -> bool {
    // SAFETY: isatty on any integer is harmless.
    unsafe { libc::isatty(fd) == 1 }
}

/// Wait until standard input can be read without blocking (data, end of
/// input or an error is pending), for at most `timeout`. `Ok(false)` when
/// the time ran out; an interrupted wait is `Ok(false)` too, so the caller
/// re-checks its own deadline.
pub fn stdin_readable_within(timeout: std::time::Duration) -> io::Result<bool> {
    readable_within(0, timeout)
}

/// read(2) from standard input, with no buffering of our own: after
/// [`stdin_readable_within`] said so, this returns without blocking.
pub fn read_stdin(buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe `buf`, which outlives the call.
    let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
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
    }

    #[test]
    fn random_is_not_constant() {
        assert_ne!(random_u64(), random_u64());
    }

    #[test]
    fn not_privileged_in_tests() {
        assert!(!is_privileged());
    }
}

/// Flags set by signal handlers: SIGTERM/SIGINT ask to stop, SIGHUP to reload.
pub mod signals {
    use std::sync::atomic::{AtomicBool, Ordering};

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
        // SAFETY: the handlers only store to atomics, which is
        // async-signal-safe; sigaction is given valid, zero-initialised data.
        unsafe {
            for (sig, handler) in [
                (libc::SIGTERM, on_stop as extern "C" fn(libc::c_int)),
                (libc::SIGINT, on_stop),
                (libc::SIGHUP, on_reload),
            ] {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = handler as usize;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
    }

    pub fn stop_requested() -> bool {
        STOP.load(Ordering::SeqCst)
    }

    /// True once per SIGHUP.
    pub fn take_reload() -> bool {
        RELOAD.swap(false, Ordering::SeqCst)
    }
}
