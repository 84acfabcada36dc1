//! Unix sockets: the submit socket's client and server ends (docs/submission.md).
//! Part of the `os` module, through nix; its two `unsafe` blocks take
//! ownership of the descriptor systemd passed by number.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, UnixAddr, connect, getsockname, getsockopt, socket, sockopt,
};

/// Connect a stream socket to the Unix socket at `path` without ever
/// blocking: a listener whose backlog is full answers EAGAIN at once instead
/// of holding the caller (docs/submission.md, "Failure cases"). The returned
/// stream is blocking again.
pub fn connect_unix(path: &Path) -> io::Result<UnixStream> {
    if path.as_os_str().is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path empty or too long",
        ));
    }
    // Refuses a path too long for sun_path, or one with a NUL.
    let addr = UnixAddr::new(path).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, "socket path empty or too long")
    })?;
    let fd: OwnedFd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    connect(fd.as_raw_fd(), &addr)?;
    let stream = UnixStream::from(fd);
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// The uid of the process at the other end of a Unix stream socket, as the
/// kernel recorded it when that process called connect(2) (`SO_PEERCRED`).
pub fn peer_uid(stream: &UnixStream) -> io::Result<u32> {
    Ok(getsockopt(stream, sockopt::PeerCredentials)?.uid())
}

/// The listening socket systemd passed to this process (socket activation,
/// sd_listen_fds(3): `LISTEN_PID` is us and `LISTEN_FDS` ≥ 1 → descriptor 3),
/// if it is a listening Unix stream socket. It is marked close-on-exec.
pub fn activated_listener() -> Option<UnixListener> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let fds: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    if pid != std::process::id() || fds < 1 {
        return None;
    }
    const FD: i32 = 3;
    // Open, and a Unix socket (getsockname refuses another family)...
    getsockname::<UnixAddr>(FD).ok()?;
    // SAFETY: descriptor 3 is open (just checked) and nothing closes it
    // while this borrow, used for the checks below, lasts.
    let fd = unsafe { BorrowedFd::borrow_raw(FD) };
    // ... a stream, listening.
    if getsockopt(&fd, sockopt::SockType).ok()? != SockType::Stream
        || !getsockopt(&fd, sockopt::AcceptConn).ok()?
    {
        return None;
    }
    let _ = nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    // SAFETY: descriptor 3 is the listening socket systemd handed to this
    // process (checked above) and nothing else in it owns that descriptor.
    let owned = unsafe { OwnedFd::from_raw_fd(FD) };
    Some(UnixListener::from(owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connects_and_names_the_peer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let l = UnixListener::bind(&path).unwrap();
        let c = connect_unix(&path).unwrap();
        let (s, _) = l.accept().unwrap();
        assert_eq!(peer_uid(&s).unwrap(), crate::os::effective_uid());
        assert_eq!(peer_uid(&c).unwrap(), crate::os::effective_uid());
        assert!(
            connect_unix(&dir.path().join("none.sock")).is_err(),
            "no listener"
        );
        let long = dir.path().join("x".repeat(120));
        let e = connect_unix(&long).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(connect_unix(Path::new("")).is_err());
    }
}
