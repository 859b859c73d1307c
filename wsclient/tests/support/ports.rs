//! Ports for tests that need a connection refused.

/// A local port that refuses connections: bound and never listening. It is
/// held while the returned socket lives, so that no other test's listener
/// takes it meanwhile, and no outgoing connection gets it as its own end (a
/// connection to a free port in the ephemeral range can, rarely, connect to
/// itself).
pub fn refusing_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind");
    let port = socket.local_addr().expect("address").port();
    (socket, port)
}
