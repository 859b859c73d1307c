//! Unix domain sockets: the connection to a server that listens on a path
//! rather than a port (a local daemon, a reverse proxy's upstream, a
//! container's control socket), as Node `ws` (`ws+unix:`), Python
//! `websockets` (`unix_connect`) and curl (`--unix-socket`) offer.
//!
//! Only the transport changes: the URL still gives the `Host` header, the
//! request path and whether TLS runs (`wss://`, over the socket, verified
//! against the URL's host as over TCP). See
//! [`ConnectOptions::unix_socket`](crate::ConnectOptions::unix_socket).

use std::path::Path;
use std::time::Duration;

use tokio::net::UnixStream;

use crate::error::{Error, Phase};

/// Connects to the Unix domain socket at `path`, within `timeout`.
///
/// # Errors
/// [`Error::ConnectUnix`] (no such file, nothing listening there, no
/// permission, not a socket), [`Error::Timeout`] in [`Phase::Unix`].
pub async fn connect(path: &Path, timeout: Duration) -> Result<UnixStream, Error> {
    crate::deadline::timeout(timeout, UnixStream::connect(path))
        .await
        .ok_or(Error::Timeout {
            phase: Phase::Unix,
            after: timeout,
        })?
        .map_err(|source| Error::ConnectUnix {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_path_with_no_listener_is_a_typed_error() {
        let dir = std::env::temp_dir().join(format!("wsclient-unix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("none.sock");
        let err = connect(&missing, Duration::from_secs(5)).await.unwrap_err();
        let Error::ConnectUnix { path, source } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(path, &missing);
        assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(err.phase(), Some(Phase::Unix));
        assert_eq!(err.code(), 3);

        // A socket file whose listener is gone: refused, not a hang.
        let stale = dir.join("stale.sock");
        let _ = std::fs::remove_file(&stale);
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        let err = connect(&stale, Duration::from_secs(5)).await.unwrap_err();
        assert!(
            matches!(&err, Error::ConnectUnix { source, .. }
                if source.kind() == std::io::ErrorKind::ConnectionRefused),
            "{err:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
