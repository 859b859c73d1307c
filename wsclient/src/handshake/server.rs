//! The server's side of the opening handshake, for the embedded demo server
//! and `wsc serve`: parse the upgrade request, answer 101 or refuse.

use http::header::{self, HeaderValue};

use super::{HandshakeError, accept_key, header_has_token};

/// The most headers a request may carry.
const MAX_HEADERS: usize = 64;

/// A parsed upgrade request.
#[derive(Debug, Clone)]
pub struct Request {
    /// The request (method, URI, headers).
    pub request: http::Request<()>,
    /// The client's `Sec-WebSocket-Key`.
    pub key: String,
    /// Subprotocols the client offered, in its order.
    pub protocols: Vec<String>,
}

/// Parses the request head at the start of `buf`: `Ok(None)` when more
/// bytes are needed, else the request and the head's length.
///
/// # Errors
/// [`HandshakeError::ResponseTooLarge`] past `max` bytes (the same limit
/// serves both directions), [`HandshakeError::Malformed`], and
/// [`HandshakeError::BadRequest`] for a request that is not a version 13
/// WebSocket upgrade.
pub fn parse_request(buf: &[u8], max: usize) -> Result<Option<(Request, usize)>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let parsed = req.parse(buf);
    let Some(len) = super::head_len(parsed, buf.len(), max)? else {
        return Ok(None);
    };
    if req.method != Some("GET") {
        return Err(HandshakeError::BadRequest("method is not GET"));
    }
    let mut builder = http::Request::builder()
        .method(http::Method::GET)
        .uri(req.path.unwrap_or("/"));
    if let Some(map) = builder.headers_mut() {
        super::copy_headers(req.headers, map)?;
    }
    let request = builder
        .body(())
        .map_err(|_| HandshakeError::BadRequest("invalid request target"))?;
    let h = request.headers();
    if !h
        .get(header::UPGRADE)
        .is_some_and(|v| header_has_token(v, "websocket"))
    {
        return Err(HandshakeError::MissingUpgrade { response: None });
    }
    if !h
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| header_has_token(v, "upgrade"))
    {
        return Err(HandshakeError::MissingConnection { response: None });
    }
    if h.get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(HandshakeError::BadRequest(
            "Sec-WebSocket-Version is not 13",
        ));
    }
    let key = h
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| k.len() == 24)
        .ok_or(HandshakeError::BadRequest(
            "missing or malformed Sec-WebSocket-Key",
        ))?
        .to_owned();
    let protocols = h
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    Ok(Some((
        Request {
            request,
            key,
            protocols,
        },
        len,
    )))
}

/// The `101 Switching Protocols` answer to `key`, selecting `protocol`.
#[must_use]
pub fn write_accept(key: &str, protocol: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept_key(key.as_bytes()).as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(p) = protocol {
        out.extend_from_slice(b"Sec-WebSocket-Protocol: ");
        out.extend_from_slice(p.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A refusal with `status` and a short text body.
#[must_use]
pub fn write_refusal(status: http::StatusCode, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
        body
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::super::client::{
        RequestOptions, Target, check_response, parse_response, write_request,
    };
    use super::*;

    #[test]
    fn client_and_server_agree() {
        let target = Target::from_url(&url::Url::parse("ws://h:9/x?y").unwrap()).unwrap();
        let opts = RequestOptions {
            protocols: vec!["a".into(), "b".into()],
            ..RequestOptions::default()
        };
        let key = super::super::generate_key();
        let req = write_request(&target, &key, &opts);
        let (parsed, len) = parse_request(&req, 8192).unwrap().unwrap();
        assert_eq!(len, req.len());
        assert_eq!(parsed.key, key);
        assert_eq!(parsed.protocols, ["a", "b"]);
        assert_eq!(parsed.request.uri(), "/x?y");
        let resp = write_accept(&parsed.key, Some("b"));
        let r = parse_response(&mut bytes::BytesMut::from(&resp[..]), 8192)
            .unwrap()
            .unwrap();
        assert_eq!(
            check_response(&r, &key, &opts).unwrap().protocol.as_deref(),
            Some("b")
        );
    }

    #[test]
    fn refuses_non_upgrade() {
        let req = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        assert!(matches!(
            parse_request(req, 8192),
            Err(HandshakeError::MissingUpgrade { response: None })
        ));
    }
}
