//! permessage-deflate (RFC 7692): negotiation and the per-connection
//! compressor and decompressor.
//!
//! Owns the extension's rules: building a client's offer (one or several,
//! in preference order), checking a server's answer against the offers
//! ([`negotiate_client`]), answering an offer on the server side
//! ([`negotiate_server`]), and the DEFLATE state of one connection
//! ([`PerMessageDeflate`]): compression with the `00 00 ff ff` tail
//! stripped, decompression with it appended, context takeover or not, the
//! negotiated window sizes. The [`Engine`](super::Engine) decides which
//! frames are compressed (RSV1 on the first frame of a data message, never
//! on control frames) and applies `max_message_size` to the inflated size.
//!
//! # Window bits
//!
//! zlib (and so every backend of `flate2`) cannot produce raw DEFLATE with
//! an LZ77 window of 2^8 bytes: when `*_max_window_bits=8` is negotiated
//! for the direction we compress, we compress with 9 bits, as Python's
//! `websockets`, Node's `ws` and zlib itself (which silently turns 8 into 9)
//! do. Decompressing with 9 bits accepts everything a peer sends with 8.
//!
//! # Memory
//!
//! Per connection, at most one compressor (zlib: about
//! `2^(window_bits + 2)` + 128 KiB, 256 KiB for 15 bits) and one
//! decompressor (`2^window_bits` + ~7 KiB), each allocated on first use.
//! An inflating message grows in steps of at most 1 MiB and never past
//! `max_message_size + 1` bytes.

use bytes::BytesMut;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::engine::Role;
use super::error::ProtocolError;

/// The extension's name in `Sec-WebSocket-Extensions`.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// What a sender strips from the end of a compressed message and a
/// receiver appends (RFC 7692 section 7.2.1/7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The smallest window RFC 7692 allows.
const MIN_WINDOW_BITS: u8 = 8;
/// The largest (and default) window.
const MAX_WINDOW_BITS: u8 = 15;
/// The smallest window zlib can use for raw DEFLATE.
const ZLIB_MIN_WINDOW_BITS: u8 = 9;
/// The first output step while inflating (at least; more for larger
/// input). Each step that fills up doubles the next, up to
/// [`INFLATE_CHUNK_MAX`]; the steps are zero-filled, so they stay close to
/// what the input can produce.
const INFLATE_CHUNK_MIN: usize = 4 << 10;
/// The largest output step: a bomb is caught within one step of the limit.
const INFLATE_CHUNK_MAX: usize = 1 << 20;

// ---------------------------------------------------------------------------
// Configuration and negotiated parameters
// ---------------------------------------------------------------------------

/// How this endpoint wants permessage-deflate: what a client offers (or a
/// server accepts), plus local settings (compression level, minimum size).
///
/// The window and context-takeover fields describe the connection the same
/// way from both sides:
///
/// | field | as a client | as a server |
/// | --- | --- | --- |
/// | `client_max_window_bits` | offered as `client_max_window_bits` (15: without value, so the server may pick any) | asks the client for at most this window, when its offer allows |
/// | `server_max_window_bits` | below 15: asks the server for at most this window | the window the server compresses with, at most |
/// | `client_no_context_takeover` | offered: we reset our compressor after each message | asks the client to reset its compressor after each message |
/// | `server_no_context_takeover` | asks the server to reset its compressor after each message | the server resets its compressor after each message |
///
/// The default offer is `permessage-deflate; client_max_window_bits`: the
/// server may limit our window and ask for no context takeover, and every
/// server that speaks permessage-deflate accepts it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// zlib compression level, 0 (store) to 9 (best); default 6.
    pub level: u32,
    /// Messages shorter than this are sent uncompressed (default 0: every
    /// message is compressed). Fragmented sends are always compressed.
    pub min_size: usize,
    /// The client's LZ77 window, 8-15 (default 15).
    pub client_max_window_bits: u8,
    /// The server's LZ77 window, 8-15 (default 15).
    pub server_max_window_bits: u8,
    /// The client resets its compressor after each message (default off).
    pub client_no_context_takeover: bool,
    /// The server resets its compressor after each message (default off).
    pub server_no_context_takeover: bool,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            level: 6,
            min_size: 0,
            client_max_window_bits: MAX_WINDOW_BITS,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_no_context_takeover: false,
            server_no_context_takeover: false,
        }
    }
}

impl DeflateConfig {
    /// Sets [`DeflateConfig::level`] (clamped to 0-9).
    #[must_use]
    pub fn level(mut self, level: u32) -> Self {
        self.level = level.min(9);
        self
    }

    /// Sets [`DeflateConfig::min_size`].
    #[must_use]
    pub fn min_size(mut self, n: usize) -> Self {
        self.min_size = n;
        self
    }

    /// Sets [`DeflateConfig::client_max_window_bits`] (clamped to 8-15).
    #[must_use]
    pub fn client_max_window_bits(mut self, bits: u8) -> Self {
        self.client_max_window_bits = clamp_bits(bits);
        self
    }

    /// Sets [`DeflateConfig::server_max_window_bits`] (clamped to 8-15).
    #[must_use]
    pub fn server_max_window_bits(mut self, bits: u8) -> Self {
        self.server_max_window_bits = clamp_bits(bits);
        self
    }

    /// Sets [`DeflateConfig::client_no_context_takeover`].
    #[must_use]
    pub fn client_no_context_takeover(mut self, yes: bool) -> Self {
        self.client_no_context_takeover = yes;
        self
    }

    /// Sets [`DeflateConfig::server_no_context_takeover`].
    #[must_use]
    pub fn server_no_context_takeover(mut self, yes: bool) -> Self {
        self.server_no_context_takeover = yes;
        self
    }

    /// This configuration as one client offer, e.g.
    /// `permessage-deflate; client_max_window_bits`.
    #[must_use]
    pub fn offer(&self) -> String {
        let mut s = String::from(EXTENSION_NAME);
        let client_bits = clamp_bits(self.client_max_window_bits);
        if client_bits == MAX_WINDOW_BITS {
            s.push_str("; client_max_window_bits");
        } else {
            s.push_str(&format!("; client_max_window_bits={client_bits}"));
        }
        let server_bits = clamp_bits(self.server_max_window_bits);
        if server_bits < MAX_WINDOW_BITS {
            s.push_str(&format!("; server_max_window_bits={server_bits}"));
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        s
    }
}

/// Several configurations as one `Sec-WebSocket-Extensions` value: the
/// offers in preference order, comma-separated.
#[must_use]
pub fn offer(configs: &[DeflateConfig]) -> String {
    configs
        .iter()
        .map(DeflateConfig::offer)
        .collect::<Vec<_>>()
        .join(", ")
}

fn clamp_bits(bits: u8) -> u8 {
    bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS)
}

/// The parameters both ends agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The client's LZ77 window (8-15).
    pub client_max_window_bits: u8,
    /// The server's LZ77 window (8-15).
    pub server_max_window_bits: u8,
    /// The client resets its compressor after each message.
    pub client_no_context_takeover: bool,
    /// The server resets its compressor after each message.
    pub server_no_context_takeover: bool,
}

impl Default for DeflateParams {
    fn default() -> Self {
        DeflateParams {
            client_max_window_bits: MAX_WINDOW_BITS,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_no_context_takeover: false,
            server_no_context_takeover: false,
        }
    }
}

/// The outcome of a client's negotiation: the agreed parameters and the
/// offer (configuration) the server's answer matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The agreed parameters.
    pub params: DeflateParams,
    /// The configuration whose offer was accepted (its level and minimum
    /// size apply).
    pub config: DeflateConfig,
}

/// Why a `Sec-WebSocket-Extensions` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiationError {
    /// The header does not follow RFC 6455 section 9.1's grammar.
    #[error("malformed Sec-WebSocket-Extensions value")]
    Syntax,
    /// An extension other than permessage-deflate.
    #[error("extension {0:?} was not offered")]
    UnknownExtension(String),
    /// More than one extension accepted (only permessage-deflate, once, can
    /// be).
    #[error("more than one extension in the response")]
    Multiple,
    /// A parameter permessage-deflate does not define.
    #[error("unknown permessage-deflate parameter {0:?}")]
    UnknownParameter(String),
    /// A parameter given twice.
    #[error("duplicate permessage-deflate parameter {0:?}")]
    DuplicateParameter(String),
    /// A parameter with a missing, extra or out-of-range value.
    #[error("invalid value for permessage-deflate parameter {0:?}")]
    InvalidValue(String),
    /// A well-formed response that matches none of the offers (for instance
    /// without `server_max_window_bits` that an offer required).
    #[error("the response matches none of the offers")]
    NoMatchingOffer,
}

// ---------------------------------------------------------------------------
// Header parsing (RFC 6455 section 9.1)
// ---------------------------------------------------------------------------

/// One element of a `Sec-WebSocket-Extensions` list: a name and its
/// parameters in order (values unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// The extension token.
    pub name: String,
    /// `(name, value)`; `None` for a parameter without a value.
    pub params: Vec<(String, Option<String>)>,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn token(&mut self) -> Result<String, NegotiationError> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        if self.i == start {
            return Err(NegotiationError::Syntax);
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    /// A quoted-string whose content, unescaped, must be a token (RFC 6455
    /// section 9.1).
    fn quoted(&mut self) -> Result<String, NegotiationError> {
        self.i += 1; // the opening quote
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(NegotiationError::Syntax),
                Some(b'"') => {
                    self.i += 1;
                    break;
                }
                Some(b'\\') => {
                    let c = self
                        .s
                        .get(self.i + 1)
                        .copied()
                        .ok_or(NegotiationError::Syntax)?;
                    out.push(c);
                    self.i += 2;
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
        if out.is_empty() || !out.iter().copied().all(is_tchar) {
            return Err(NegotiationError::Syntax);
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// Parses a `Sec-WebSocket-Extensions` value into its elements. Empty list
/// elements (`a, , b`) are skipped, as HTTP's list rule allows.
///
/// # Errors
/// [`NegotiationError::Syntax`].
pub fn parse_extensions(value: &str) -> Result<Vec<Extension>, NegotiationError> {
    let mut p = Parser {
        s: value.as_bytes(),
        i: 0,
    };
    let mut out = Vec::new();
    loop {
        p.skip_ws();
        match p.peek() {
            None => break,
            Some(b',') => {
                p.i += 1;
                continue;
            }
            Some(_) => {}
        }
        let name = p.token()?;
        let mut params = Vec::new();
        loop {
            p.skip_ws();
            match p.peek() {
                None => break,
                Some(b',') => {
                    p.i += 1;
                    break;
                }
                Some(b';') => {
                    p.i += 1;
                    p.skip_ws();
                    let key = p.token()?;
                    p.skip_ws();
                    let value = if p.peek() == Some(b'=') {
                        p.i += 1;
                        p.skip_ws();
                        Some(if p.peek() == Some(b'"') {
                            p.quoted()?
                        } else {
                            p.token()?
                        })
                    } else {
                        None
                    };
                    params.push((key, value));
                }
                Some(_) => return Err(NegotiationError::Syntax),
            }
        }
        out.push(Extension { name, params });
    }
    Ok(out)
}

/// permessage-deflate parameters as written, before they are judged
/// against an offer or a configuration. `Some(None)`: present without a
/// value.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct RawParams {
    client_max_window_bits: Option<Option<u8>>,
    server_max_window_bits: Option<Option<u8>>,
    client_no_context_takeover: bool,
    server_no_context_takeover: bool,
}

/// A window-bits value: a decimal integer 8-15 without leading zeroes.
fn parse_bits(name: &str, value: &str) -> Result<u8, NegotiationError> {
    let invalid = || NegotiationError::InvalidValue(name.to_owned());
    if value.is_empty() || value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let bits: u8 = value.parse().map_err(|_| invalid())?;
    if (MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&bits) {
        Ok(bits)
    } else {
        Err(invalid())
    }
}

fn parse_params(params: &[(String, Option<String>)]) -> Result<RawParams, NegotiationError> {
    let mut raw = RawParams::default();
    let mut seen = [false; 4];
    for (name, value) in params {
        let key = name.to_ascii_lowercase();
        let slot = match key.as_str() {
            "client_max_window_bits" => 0,
            "server_max_window_bits" => 1,
            "client_no_context_takeover" => 2,
            "server_no_context_takeover" => 3,
            _ => return Err(NegotiationError::UnknownParameter(name.clone())),
        };
        if std::mem::replace(&mut seen[slot], true) {
            return Err(NegotiationError::DuplicateParameter(name.clone()));
        }
        match slot {
            0 | 1 => {
                let bits = value.as_deref().map(|v| parse_bits(name, v)).transpose()?;
                if slot == 0 {
                    raw.client_max_window_bits = Some(bits);
                } else {
                    raw.server_max_window_bits = Some(bits);
                }
            }
            _ => {
                if value.is_some() {
                    return Err(NegotiationError::InvalidValue(name.clone()));
                }
                if slot == 2 {
                    raw.client_no_context_takeover = true;
                } else {
                    raw.server_no_context_takeover = true;
                }
            }
        }
    }
    Ok(raw)
}

// ---------------------------------------------------------------------------
// Negotiation
// ---------------------------------------------------------------------------

/// Checks a server's `Sec-WebSocket-Extensions` answer against the offers a
/// client made (in preference order) and returns the agreed parameters with
/// the first offer the answer is valid for.
///
/// The answer must be exactly one `permessage-deflate` element, with known,
/// non-duplicated, well-formed parameters (`client_max_window_bits` and
/// `server_max_window_bits` with a value 8-15), that accepts an offer: an
/// offered `server_max_window_bits=N` must come back with a value of at
/// most N, an offered `server_no_context_takeover` must come back.
///
/// # Errors
/// A [`NegotiationError`]; the handshake then fails.
pub fn negotiate_client(
    offers: &[DeflateConfig],
    response: &str,
) -> Result<Negotiated, NegotiationError> {
    let elements = parse_extensions(response)?;
    let element = match elements.as_slice() {
        [] => return Err(NegotiationError::Syntax),
        [one] => one,
        many => {
            return Err(match many.iter().find(|e| !is_deflate(&e.name)) {
                Some(other) => NegotiationError::UnknownExtension(other.name.clone()),
                None => NegotiationError::Multiple,
            });
        }
    };
    if !is_deflate(&element.name) {
        return Err(NegotiationError::UnknownExtension(element.name.clone()));
    }
    let raw = parse_params(&element.params)?;
    // In a response, both window parameters carry a value.
    if raw.client_max_window_bits == Some(None) {
        return Err(NegotiationError::InvalidValue(
            "client_max_window_bits".into(),
        ));
    }
    if raw.server_max_window_bits == Some(None) {
        return Err(NegotiationError::InvalidValue(
            "server_max_window_bits".into(),
        ));
    }
    let server_bits = raw.server_max_window_bits.flatten();
    let client_bits = raw.client_max_window_bits.flatten();
    for config in offers {
        let asked_server_bits = clamp_bits(config.server_max_window_bits);
        if asked_server_bits < MAX_WINDOW_BITS && server_bits.is_none_or(|b| b > asked_server_bits)
        {
            continue;
        }
        if config.server_no_context_takeover && !raw.server_no_context_takeover {
            continue;
        }
        // Every offer carries `client_max_window_bits`, so the server may
        // always answer with it; a value in the offer is our own limit.
        let params = DeflateParams {
            client_max_window_bits: client_bits
                .unwrap_or(MAX_WINDOW_BITS)
                .min(clamp_bits(config.client_max_window_bits)),
            server_max_window_bits: server_bits.unwrap_or(MAX_WINDOW_BITS),
            client_no_context_takeover: raw.client_no_context_takeover
                || config.client_no_context_takeover,
            server_no_context_takeover: raw.server_no_context_takeover,
        };
        return Ok(Negotiated {
            params,
            config: config.clone(),
        });
    }
    Err(NegotiationError::NoMatchingOffer)
}

fn is_deflate(name: &str) -> bool {
    name.eq_ignore_ascii_case(EXTENSION_NAME)
}

/// The server's side: looks through the client's `Sec-WebSocket-Extensions`
/// values (every header line) for the first `permessage-deflate` offer it
/// can accept with `config`, and returns the agreed parameters with the
/// response value. Offers that are malformed or carry unknown parameters are
/// declined (the connection then goes on without compression).
#[must_use]
pub fn negotiate_server<'a>(
    config: &DeflateConfig,
    offers: impl IntoIterator<Item = &'a str>,
) -> Option<(DeflateParams, String)> {
    for value in offers {
        let Ok(elements) = parse_extensions(value) else {
            continue;
        };
        for e in elements.iter().filter(|e| is_deflate(&e.name)) {
            let Ok(raw) = parse_params(&e.params) else {
                continue;
            };
            // server_max_window_bits needs a value in an offer too.
            if raw.server_max_window_bits == Some(None) {
                continue;
            }
            return Some(accept_offer(config, raw));
        }
    }
    None
}

fn accept_offer(config: &DeflateConfig, raw: RawParams) -> (DeflateParams, String) {
    let mut response = String::from(EXTENSION_NAME);
    let server_nct = config.server_no_context_takeover || raw.server_no_context_takeover;
    if server_nct {
        response.push_str("; server_no_context_takeover");
    }
    let client_nct = config.client_no_context_takeover || raw.client_no_context_takeover;
    if config.client_no_context_takeover {
        response.push_str("; client_no_context_takeover");
    }
    let offered_server = raw.server_max_window_bits.flatten();
    let server_bits =
        clamp_bits(config.server_max_window_bits).min(offered_server.unwrap_or(MAX_WINDOW_BITS));
    if offered_server.is_some() || server_bits < MAX_WINDOW_BITS {
        response.push_str(&format!("; server_max_window_bits={server_bits}"));
    }
    let client_bits = match raw.client_max_window_bits {
        // The client did not say it can limit its window.
        None => MAX_WINDOW_BITS,
        Some(hint) => {
            let bits =
                clamp_bits(config.client_max_window_bits).min(hint.unwrap_or(MAX_WINDOW_BITS));
            if bits < hint.unwrap_or(MAX_WINDOW_BITS) {
                response.push_str(&format!("; client_max_window_bits={bits}"));
            }
            bits
        }
    };
    let params = DeflateParams {
        client_max_window_bits: client_bits,
        server_max_window_bits: server_bits,
        client_no_context_takeover: client_nct,
        server_no_context_takeover: server_nct,
    };
    (params, response)
}

// ---------------------------------------------------------------------------
// The codec
// ---------------------------------------------------------------------------

/// The DEFLATE state of one connection: compresses outgoing messages and
/// inflates incoming ones according to the negotiated [`DeflateParams`] and
/// the endpoint's [`Role`].
pub struct PerMessageDeflate {
    params: DeflateParams,
    level: Compression,
    min_size: usize,
    compress_bits: u8,
    decompress_bits: u8,
    /// Our own "no context takeover": reset the compressor after a message.
    compress_reset: bool,
    /// The peer's: our decompressor may be reset after a message.
    decompress_reset: bool,
    compressor: Option<Compress>,
    decompressor: Option<Decompress>,
    /// The peer ended the DEFLATE stream (BFINAL) inside the current
    /// message: the tail is not appended and the decompressor was reset.
    stream_ended: bool,
    /// Compressed bytes received of the current message.
    message_bytes: usize,
    /// A reused buffer for compressed payloads on their way out (here, not
    /// in the engine: connections without compression do not carry it).
    scratch: Vec<u8>,
}

impl std::fmt::Debug for PerMessageDeflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerMessageDeflate")
            .field("params", &self.params)
            .field("level", &self.level.level())
            .field("min_size", &self.min_size)
            .finish_non_exhaustive()
    }
}

impl PerMessageDeflate {
    /// The codec for an endpoint playing `role` with the agreed `params`;
    /// `config` gives the level and the minimum size.
    #[must_use]
    pub fn new(role: Role, params: DeflateParams, config: &DeflateConfig) -> Self {
        let (own_bits, peer_bits, own_nct, peer_nct) = match role {
            Role::Client => (
                params.client_max_window_bits,
                params.server_max_window_bits,
                params.client_no_context_takeover,
                params.server_no_context_takeover,
            ),
            Role::Server => (
                params.server_max_window_bits,
                params.client_max_window_bits,
                params.server_no_context_takeover,
                params.client_no_context_takeover,
            ),
        };
        PerMessageDeflate {
            params,
            level: Compression::new(config.level.min(9)),
            min_size: config.min_size,
            compress_bits: clamp_bits(own_bits).max(ZLIB_MIN_WINDOW_BITS),
            decompress_bits: clamp_bits(peer_bits).max(ZLIB_MIN_WINDOW_BITS),
            compress_reset: own_nct,
            decompress_reset: peer_nct,
            compressor: None,
            decompressor: None,
            stream_ended: false,
            message_bytes: 0,
            scratch: Vec::new(),
        }
    }

    /// The reusable output buffer, empty; hand it back with
    /// [`PerMessageDeflate::keep_scratch`].
    pub(crate) fn take_scratch(&mut self) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf
    }

    /// Keeps a small output buffer for the next message; a large one is
    /// given back.
    pub(crate) fn keep_scratch(&mut self, buf: Vec<u8>) {
        if buf.capacity() <= 64 << 10 {
            self.scratch = buf;
        }
    }

    /// The agreed parameters.
    #[must_use]
    pub fn params(&self) -> &DeflateParams {
        &self.params
    }

    /// Messages shorter than this are sent uncompressed.
    #[must_use]
    pub fn min_size(&self) -> usize {
        self.min_size
    }

    /// Compresses `data` (a whole message, or one fragment of it) and
    /// appends the result to `out`. With `fin` (the message's end) the
    /// trailing `00 00 ff ff` is stripped and, without context takeover,
    /// the compressor is reset.
    pub fn compress(&mut self, mut data: &[u8], fin: bool, out: &mut Vec<u8>) {
        let (level, bits) = (self.level, self.compress_bits);
        let c = self
            .compressor
            .get_or_insert_with(|| Compress::new_with_window_bits(level, false, bits));
        let start = out.len();
        // Room for incompressible data plus the block framing and flush.
        out.reserve(data.len() + data.len() / 128 + 64);
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(64));
            }
            let before = c.total_in();
            // With output room and a valid stream, zlib's deflate returns
            // Z_OK or Z_BUF_ERROR; a stream error would be a bug here.
            c.compress_vec(data, out, FlushCompress::Sync)
                .expect("deflate on a valid stream with output room does not fail");
            let consumed = usize::try_from(c.total_in() - before).unwrap_or(data.len());
            data = &data[consumed.min(data.len())..];
            // A sync flush is complete once all input is in and zlib left
            // output room unused.
            if data.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        if fin {
            if out[start..].ends_with(&TAIL) {
                out.truncate(out.len() - TAIL.len());
            } else if out.len() == start {
                // zlib writes nothing for a sync flush without new input
                // after a sync flush; the receiver appends the tail to
                // whatever we send, so send the first byte of an empty
                // stored block (RFC 7692 section 7.2.3.6).
                out.push(0x00);
            }
            if self.compress_reset {
                c.reset();
            }
        }
    }

    /// Inflates `data` (the payload of one frame of a compressed message)
    /// onto `out`. With `fin` (the message's last frame) the `00 00 ff ff`
    /// tail is appended first. `out` never grows past `max + 1` bytes: once
    /// it holds more than `max`, inflating stops with
    /// [`ProtocolError::MessageTooLarge`].
    ///
    /// # Errors
    /// [`ProtocolError::Decompression`] for data that does not inflate,
    /// [`ProtocolError::MessageTooLarge`].
    pub fn decompress(
        &mut self,
        data: &[u8],
        fin: bool,
        out: &mut BytesMut,
        max: usize,
    ) -> Result<(), ProtocolError> {
        self.message_bytes = self.message_bytes.saturating_add(data.len());
        let result = self.decompress_inner(data, fin, out, max);
        if fin || result.is_err() {
            self.stream_ended = false;
            self.message_bytes = 0;
        }
        result
    }

    fn decompress_inner(
        &mut self,
        data: &[u8],
        fin: bool,
        out: &mut BytesMut,
        max: usize,
    ) -> Result<(), ProtocolError> {
        self.inflate(data, out, max)?;
        if fin {
            // An empty payload is not DEFLATE data; some senders produce
            // one for an empty message (a sync flush with nothing new
            // writes nothing). Appending the tail to it would leave the
            // decompressor inside a stored block, so it is an empty message.
            if !self.stream_ended && self.message_bytes > 0 {
                self.inflate(&TAIL, out, max)?;
            }
            if self.decompress_reset {
                if let Some(d) = self.decompressor.as_mut() {
                    d.reset(false);
                }
            }
        }
        Ok(())
    }

    fn inflate(
        &mut self,
        mut input: &[u8],
        out: &mut BytesMut,
        max: usize,
    ) -> Result<(), ProtocolError> {
        if input.is_empty() {
            return Ok(());
        }
        if self.stream_ended {
            // Data after a final block.
            return Err(ProtocolError::Decompression);
        }
        let bits = self.decompress_bits;
        let d = self
            .decompressor
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, bits));
        let limit = max.saturating_add(1);
        let mut step = input
            .len()
            .saturating_mul(4)
            .clamp(INFLATE_CHUNK_MIN, INFLATE_CHUNK_MAX);
        loop {
            let start = out.len();
            if start > max {
                return Err(ProtocolError::MessageTooLarge { max });
            }
            let room = (limit - start).min(step);
            step = (step * 2).min(INFLATE_CHUNK_MAX);
            out.resize(start + room, 0);
            let (before_in, before_out) = (d.total_in(), d.total_out());
            let status = d.decompress(input, &mut out[start..], FlushDecompress::Sync);
            let consumed = usize::try_from(d.total_in() - before_in).unwrap_or(usize::MAX);
            let produced = usize::try_from(d.total_out() - before_out).unwrap_or(usize::MAX);
            out.truncate(start + produced.min(room));
            let status = status.map_err(|_| ProtocolError::Decompression)?;
            input = &input[consumed.min(input.len())..];
            if out.len() > max {
                return Err(ProtocolError::MessageTooLarge { max });
            }
            if status == Status::StreamEnd {
                // BFINAL: the stream is over; a new message starts a new
                // one (the sender had to reset too).
                d.reset(false);
                self.stream_ended = true;
                if !input.is_empty() {
                    return Err(ProtocolError::Decompression);
                }
                return Ok(());
            }
            if input.is_empty() && produced < room {
                return Ok(());
            }
            if consumed == 0 && produced == 0 {
                // No progress with input and output room: cannot happen
                // with a sane stream.
                return Err(ProtocolError::Decompression);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(params: DeflateParams) -> (PerMessageDeflate, PerMessageDeflate) {
        let cfg = DeflateConfig::default();
        (
            PerMessageDeflate::new(Role::Client, params, &cfg),
            PerMessageDeflate::new(Role::Server, params, &cfg),
        )
    }

    fn compress(d: &mut PerMessageDeflate, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        d.compress(data, true, &mut out);
        out
    }

    fn inflate(
        d: &mut PerMessageDeflate,
        data: &[u8],
        max: usize,
    ) -> Result<Vec<u8>, ProtocolError> {
        let mut out = BytesMut::new();
        d.decompress(data, true, &mut out, max)?;
        Ok(out.to_vec())
    }

    // ----- parsing ----------------------------------------------------------

    #[test]
    fn parse_lists_params_and_quotes() {
        let e = parse_extensions(
            "permessage-deflate; client_max_window_bits, permessage-deflate ;server_max_window_bits=\"10\" ; client_no_context_takeover,,  x-foo",
        )
        .unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].name, "permessage-deflate");
        assert_eq!(
            e[0].params,
            vec![("client_max_window_bits".to_owned(), None)]
        );
        assert_eq!(
            e[1].params,
            vec![
                ("server_max_window_bits".to_owned(), Some("10".to_owned())),
                ("client_no_context_takeover".to_owned(), None)
            ]
        );
        assert_eq!(e[2].name, "x-foo");
        assert!(parse_extensions("").unwrap().is_empty());
    }

    #[test]
    fn parse_malformed() {
        for bad in [
            "permessage-deflate;",
            "permessage-deflate; =1",
            "permessage-deflate; a=",
            "permessage-deflate; a=\"1",
            "permessage-deflate; a=\"\"",
            "permessage-deflate; a=\"1 2\"",
            "permessage-deflate x",
            "permessage deflate",
            ";a",
            "permessage-deflate; a=1=2",
            "pmd; a=b\"",
        ] {
            assert_eq!(
                parse_extensions(bad),
                Err(NegotiationError::Syntax),
                "{bad}"
            );
        }
    }

    #[test]
    fn offers() {
        assert_eq!(
            DeflateConfig::default().offer(),
            "permessage-deflate; client_max_window_bits"
        );
        let c = DeflateConfig::default()
            .client_max_window_bits(10)
            .server_max_window_bits(9)
            .client_no_context_takeover(true)
            .server_no_context_takeover(true);
        assert_eq!(
            c.offer(),
            "permessage-deflate; client_max_window_bits=10; server_max_window_bits=9; client_no_context_takeover; server_no_context_takeover"
        );
        assert_eq!(
            DeflateConfig::default()
                .client_max_window_bits(3)
                .client_max_window_bits,
            8
        );
        let two = offer(&[c.clone(), DeflateConfig::default()]);
        assert_eq!(parse_extensions(&two).unwrap().len(), 2);
    }

    #[test]
    fn client_accepts_matching_responses() {
        let def = [DeflateConfig::default()];
        let n = negotiate_client(&def, "permessage-deflate").unwrap();
        assert_eq!(n.params, DeflateParams::default());
        let n = negotiate_client(
            &def,
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=9; client_no_context_takeover; server_no_context_takeover",
        )
        .unwrap();
        assert_eq!(
            n.params,
            DeflateParams {
                client_max_window_bits: 9,
                server_max_window_bits: 12,
                client_no_context_takeover: true,
                server_no_context_takeover: true,
            }
        );
        // Case-insensitive names, quoted values.
        let n =
            negotiate_client(&def, "PerMessage-Deflate; Client_Max_Window_Bits=\"11\"").unwrap();
        assert_eq!(n.params.client_max_window_bits, 11);
        // Our offered limit stays a limit if the server answers more.
        let small = [DeflateConfig::default().client_max_window_bits(10)];
        let n = negotiate_client(&small, "permessage-deflate; client_max_window_bits=12").unwrap();
        assert_eq!(n.params.client_max_window_bits, 10);
        // An offered client_no_context_takeover is kept as our promise.
        let nct = [DeflateConfig::default().client_no_context_takeover(true)];
        assert!(
            negotiate_client(&nct, "permessage-deflate")
                .unwrap()
                .params
                .client_no_context_takeover
        );
    }

    #[test]
    fn client_picks_the_offer_the_response_matches() {
        let offers = [
            DeflateConfig::default().server_max_window_bits(10).level(1),
            DeflateConfig::default()
                .server_no_context_takeover(true)
                .level(2),
            DeflateConfig::default().level(3),
        ];
        let n = negotiate_client(&offers, "permessage-deflate; server_max_window_bits=9").unwrap();
        assert_eq!(n.config.level, 1);
        let n =
            negotiate_client(&offers, "permessage-deflate; server_no_context_takeover").unwrap();
        assert_eq!(n.config.level, 2);
        let n = negotiate_client(&offers, "permessage-deflate; server_max_window_bits=12").unwrap();
        assert_eq!(n.config.level, 3);
        let strict = &offers[..2];
        assert_eq!(
            negotiate_client(strict, "permessage-deflate; server_max_window_bits=12"),
            Err(NegotiationError::NoMatchingOffer)
        );
        assert_eq!(
            negotiate_client(strict, "permessage-deflate"),
            Err(NegotiationError::NoMatchingOffer)
        );
    }

    #[test]
    fn client_refuses_bad_responses() {
        use NegotiationError as E;
        let def = [DeflateConfig::default()];
        let cases: &[(&str, NegotiationError)] = &[
            (
                "x-webkit-deflate-frame",
                E::UnknownExtension("x-webkit-deflate-frame".into()),
            ),
            ("permessage-deflate, permessage-deflate", E::Multiple),
            ("permessage-deflate, foo", E::UnknownExtension("foo".into())),
            ("permessage-deflate; foo", E::UnknownParameter("foo".into())),
            (
                "permessage-deflate; foo=1",
                E::UnknownParameter("foo".into()),
            ),
            (
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                E::DuplicateParameter("server_no_context_takeover".into()),
            ),
            (
                "permessage-deflate; client_max_window_bits=10; client_max_window_bits=11",
                E::DuplicateParameter("client_max_window_bits".into()),
            ),
            (
                "permessage-deflate; client_max_window_bits",
                E::InvalidValue("client_max_window_bits".into()),
            ),
            (
                "permessage-deflate; server_max_window_bits",
                E::InvalidValue("server_max_window_bits".into()),
            ),
            (
                "permessage-deflate; server_max_window_bits=7",
                E::InvalidValue("server_max_window_bits".into()),
            ),
            (
                "permessage-deflate; server_max_window_bits=16",
                E::InvalidValue("server_max_window_bits".into()),
            ),
            (
                "permessage-deflate; server_max_window_bits=09",
                E::InvalidValue("server_max_window_bits".into()),
            ),
            (
                "permessage-deflate; server_max_window_bits=1x",
                E::InvalidValue("server_max_window_bits".into()),
            ),
            (
                "permessage-deflate; server_max_window_bits=300",
                E::InvalidValue("server_max_window_bits".into()),
            ),
            (
                "permessage-deflate; client_no_context_takeover=1",
                E::InvalidValue("client_no_context_takeover".into()),
            ),
            ("permessage-deflate;;", E::Syntax),
            (",", E::Syntax),
        ];
        for (resp, want) in cases {
            assert_eq!(
                negotiate_client(&def, resp).as_ref().err(),
                Some(want),
                "{resp}"
            );
        }
    }

    #[test]
    fn server_answers_offers() {
        let cfg = DeflateConfig::default();
        let (p, r) =
            negotiate_server(&cfg, ["permessage-deflate; client_max_window_bits"]).unwrap();
        assert_eq!(r, "permessage-deflate");
        assert_eq!(p, DeflateParams::default());
        // First acceptable offer wins; broken ones and other extensions are skipped.
        let (p, r) = negotiate_server(
            &cfg,
            [
                "foo, permessage-deflate; bogus",
                "permessage-deflate; server_max_window_bits=10; server_no_context_takeover, permessage-deflate",
            ],
        )
        .unwrap();
        assert_eq!(
            r,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"
        );
        assert_eq!(p.server_max_window_bits, 10);
        assert!(p.server_no_context_takeover);
        assert!(
            negotiate_server(&cfg, ["foo", "permessage-deflate; server_max_window_bits"]).is_none()
        );
        // The server's own limits.
        let strict = DeflateConfig::default()
            .server_max_window_bits(11)
            .client_max_window_bits(9)
            .client_no_context_takeover(true);
        let (p, r) =
            negotiate_server(&strict, ["permessage-deflate; client_max_window_bits"]).unwrap();
        assert_eq!(
            r,
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=9"
        );
        assert_eq!(
            (p.client_max_window_bits, p.server_max_window_bits),
            (9, 11)
        );
        // Without client_max_window_bits in the offer, the client's window can't be limited.
        let (p, r) = negotiate_server(&strict, ["permessage-deflate"]).unwrap();
        assert!(!r.contains("client_max_window_bits"));
        assert_eq!(p.client_max_window_bits, 15);
        // What the server answers, the client accepts.
        for offer_cfg in [
            DeflateConfig::default(),
            DeflateConfig::default().server_max_window_bits(9),
        ] {
            let o = offer_cfg.offer();
            let (sp, r) = negotiate_server(&strict, [o.as_str()]).unwrap();
            let n = negotiate_client(&[offer_cfg], &r).unwrap();
            assert_eq!(n.params, sp, "{o} -> {r}");
        }
    }

    // ----- codec ------------------------------------------------------------

    #[test]
    fn rfc7692_hello_examples() {
        // Section 7.2.3.1: "Hello" in one compressed frame.
        let (mut c, mut s) = pair(DeflateParams::default());
        let z = compress(&mut c, b"Hello");
        assert_eq!(z, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        assert_eq!(inflate(&mut s, &z, 100).unwrap(), b"Hello");
        // Section 7.2.3.2: the second "Hello" with context takeover refers
        // back to the first.
        let z2 = compress(&mut c, b"Hello");
        assert_eq!(z2, [0xf2, 0x00, 0x11, 0x00, 0x00]);
        assert_eq!(inflate(&mut s, &z2, 100).unwrap(), b"Hello");
        // Section 7.2.3.1's fragmented form: "f2 48 cd" then "c9 c9 07 00".
        let mut fresh = pair(DeflateParams::default()).1;
        let mut out = BytesMut::new();
        fresh
            .decompress(&[0xf2, 0x48, 0xcd], false, &mut out, 100)
            .unwrap();
        fresh
            .decompress(&[0xc9, 0xc9, 0x07, 0x00], true, &mut out, 100)
            .unwrap();
        assert_eq!(&out[..], b"Hello");
        // Section 7.2.3.3: "Hello" in a stored (uncompressed) block.
        let mut fresh = pair(DeflateParams::default()).1;
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(inflate(&mut fresh, &stored, 100).unwrap(), b"Hello");
        // Section 7.2.3.4: BFINAL set; the next message starts a new stream.
        let mut fresh = pair(DeflateParams::default()).1;
        let fin = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(inflate(&mut fresh, &fin, 100).unwrap(), b"Hello");
        assert_eq!(inflate(&mut fresh, &fin, 100).unwrap(), b"Hello");
        // Section 7.2.3.6: an empty message.
        let (mut c, mut s) = pair(DeflateParams::default());
        let z = compress(&mut c, b"");
        assert_eq!(z, [0x00]);
        assert_eq!(inflate(&mut s, &z, 100).unwrap(), b"");
    }

    #[test]
    fn empty_messages_mid_stream() {
        let (mut c, mut s) = pair(DeflateParams::default());
        for msg in [&b"Hello"[..], b"", b"", b"Hello", b""] {
            let z = compress(&mut c, msg);
            assert!(!z.is_empty());
            assert_eq!(inflate(&mut s, &z, 100).unwrap(), msg);
        }
        // An empty compressed payload from a peer is an empty message and
        // leaves the stream intact.
        let mut c2 = pair(DeflateParams::default()).0;
        let a = compress(&mut c2, b"Hello");
        let b = compress(&mut c2, b"Hello");
        let mut s = pair(DeflateParams::default()).1;
        assert_eq!(inflate(&mut s, &a, 100).unwrap(), b"Hello");
        assert_eq!(inflate(&mut s, &[], 100).unwrap(), b"");
        let mut out = BytesMut::new();
        s.decompress(&[], false, &mut out, 100).unwrap();
        s.decompress(&[], true, &mut out, 100).unwrap();
        assert!(out.is_empty());
        assert_eq!(inflate(&mut s, &b, 100).unwrap(), b"Hello");
    }

    fn text(i: usize) -> Vec<u8> {
        format!(
            "message {i}: the quick brown fox jumps over the lazy dog {}",
            i * 7919
        )
        .into_bytes()
    }

    fn round_trip(params: DeflateParams, from: Role) {
        let (mut c, mut s) = pair(params);
        let (tx, rx) = match from {
            Role::Client => (&mut c, &mut s),
            Role::Server => (&mut s, &mut c),
        };
        let mut total = 0;
        for i in 0..100 {
            let msg = text(i);
            let z = compress(tx, &msg);
            total += z.len();
            assert_eq!(inflate(rx, &z, 1 << 20).unwrap(), msg, "message {i}");
        }
        // Large, mixed compressibility.
        let big: Vec<u8> = (0..70_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ (i % 7) as u8)
            .collect();
        let z = compress(tx, &big);
        assert_eq!(inflate(rx, &z, 1 << 20).unwrap(), big);
        assert!(total > 0);
    }

    #[test]
    fn round_trips_all_parameter_combinations() {
        for from in [Role::Client, Role::Server] {
            for bits in [8, 9, 12, 15] {
                for (cnct, snct) in [(false, false), (true, false), (false, true), (true, true)] {
                    round_trip(
                        DeflateParams {
                            client_max_window_bits: bits,
                            server_max_window_bits: 23 - bits,
                            client_no_context_takeover: cnct,
                            server_no_context_takeover: snct,
                        },
                        from,
                    );
                }
            }
        }
    }

    #[test]
    fn context_takeover_shrinks_repeats_and_no_takeover_does_not_refer_back() {
        let msg = b"a fairly long message that repeats itself, a fairly long message".to_vec();
        let (mut c, _) = pair(DeflateParams::default());
        let first = compress(&mut c, &msg);
        let second = compress(&mut c, &msg);
        assert!(
            second.len() < first.len() / 2,
            "{} vs {}",
            second.len(),
            first.len()
        );
        let nct = DeflateParams {
            client_no_context_takeover: true,
            ..DeflateParams::default()
        };
        let (mut c, _) = pair(nct);
        let first = compress(&mut c, &msg);
        let second = compress(&mut c, &msg);
        assert_eq!(first, second);
        // A fresh decompressor inflates each message on its own.
        for z in [first, second] {
            let mut fresh = pair(nct).1;
            assert_eq!(inflate(&mut fresh, &z, 1000).unwrap(), msg);
        }
    }

    #[test]
    fn fragments_compress_as_one_stream() {
        let (mut c, mut s) = pair(DeflateParams::default());
        let msg: Vec<u8> = (0..10_000)
            .flat_map(|i: u32| i.to_string().into_bytes())
            .collect();
        for _ in 0..3 {
            let mut out = BytesMut::new();
            for (k, part) in msg.chunks(999).enumerate() {
                let last = (k + 1) * 999 >= msg.len();
                let mut z = Vec::new();
                c.compress(part, last, &mut z);
                // The receiver gets it cut differently.
                for (j, piece) in z.chunks(7).enumerate() {
                    let fin = last && (j + 1) * 7 >= z.len();
                    s.decompress(piece, fin, &mut out, 1 << 20).unwrap();
                }
            }
            assert_eq!(&out[..], &msg[..]);
        }
    }

    /// A DEFLATE bomb: one fixed-Huffman block of a zero byte followed by
    /// `copies` matches (length 258, distance 1), without the final tail.
    /// 13 bits per 258 bytes: 1 GiB from 6.5 MiB.
    pub(crate) fn bomb(copies: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(copies * 13 / 8 + 8);
        let (mut acc, mut n) = (0u64, 0u32);
        let mut put = |out: &mut Vec<u8>, bits: u64, len: u32| {
            acc |= bits << n;
            n += len;
            while n >= 8 {
                out.push(acc as u8);
                acc >>= 8;
                n -= 8;
            }
        };
        // Huffman codes go most significant bit first.
        let rev = |code: u64, len: u32| code.reverse_bits() >> (64 - len);
        put(&mut out, 0b010, 3); // BFINAL=0, BTYPE=01 (fixed)
        put(&mut out, rev(0b0011_0000, 8), 8); // literal 0
        for _ in 0..copies {
            put(&mut out, rev(0b1100_0101, 8), 8); // length 258 (code 285)
            put(&mut out, 0, 5); // distance 1 (code 0)
        }
        put(&mut out, 0, 7); // end of block (256)
        put(&mut out, 0, 7); // pad to a byte
        out
    }

    #[test]
    fn bomb_stops_at_the_limit() {
        let z = bomb((1 << 30) / 258);
        assert!(z.len() < 7 << 20, "{}", z.len());
        let max = 1 << 20;
        let mut s = pair(DeflateParams::default()).1;
        let mut out = BytesMut::new();
        let err = s.decompress(&z, true, &mut out, max).unwrap_err();
        assert_eq!(err, ProtocolError::MessageTooLarge { max });
        assert!(out.len() <= max + 1);
        assert!(
            out.capacity() <= 2 * (max + 1) + INFLATE_CHUNK_MAX,
            "{}",
            out.capacity()
        );
        // The same in small frames: the limit counts across frames.
        let mut s = pair(DeflateParams::default()).1;
        let mut out = BytesMut::new();
        let mut err = None;
        for piece in z.chunks(1000) {
            if let Err(e) = s.decompress(piece, false, &mut out, max) {
                err = Some(e);
                break;
            }
        }
        assert_eq!(err, Some(ProtocolError::MessageTooLarge { max }));
        // A small bomb inflates: it is valid DEFLATE.
        let mut s = pair(DeflateParams::default()).1;
        assert_eq!(inflate(&mut s, &bomb(10), 10_000).unwrap(), vec![0u8; 2581]);
        // Exactly at the limit is fine, one more byte is not.
        let (mut c, mut s) = pair(DeflateParams::default());
        let z = compress(&mut c, &vec![0u8; 100_000]);
        assert_eq!(inflate(&mut s, &z, 100_000).unwrap().len(), 100_000);
        let z = compress(&mut c, &vec![0u8; 100_001]);
        assert_eq!(
            inflate(&mut s, &z, 100_000),
            Err(ProtocolError::MessageTooLarge { max: 100_000 })
        );
    }

    #[test]
    fn garbage_does_not_inflate() {
        let mut s = pair(DeflateParams::default()).1;
        assert_eq!(
            inflate(&mut s, &[0xff; 16], 1000),
            Err(ProtocolError::Decompression)
        );
        // Data after a final block.
        let mut s = pair(DeflateParams::default()).1;
        let fin_then_more = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xf2, 0x48];
        assert_eq!(
            inflate(&mut s, &fin_then_more, 1000),
            Err(ProtocolError::Decompression)
        );
        // (A distance beyond the negotiated window is not refused: zlib
        // only checks distances against the data it has, and the window
        // size bounds memory, not correctness.)
    }

    #[test]
    fn level_zero_stores() {
        let cfg = DeflateConfig::default().level(0);
        let mut c = PerMessageDeflate::new(Role::Client, DeflateParams::default(), &cfg);
        let mut s = PerMessageDeflate::new(Role::Server, DeflateParams::default(), &cfg);
        let msg = vec![b'a'; 1000];
        let z = compress(&mut c, &msg);
        assert!(z.len() > 1000);
        assert_eq!(inflate(&mut s, &z, 1000).unwrap(), msg);
    }

    // ----- through the engine ----------------------------------------------

    mod engine {
        use bytes::Bytes;

        use super::super::super::engine::{Config, Engine, State};
        use super::super::super::frame::{FrameHeader, OpCode};
        use super::super::super::mask::apply_mask;
        use super::*;
        use crate::message::Message;

        /// An unmasked (server) frame with the given RSV1.
        fn frame(fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
            let mut out = vec![(u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode];
            match payload.len() {
                n if n < 126 => out.push(n as u8),
                n if n <= 0xFFFF => {
                    out.push(126);
                    out.extend_from_slice(&(n as u16).to_be_bytes());
                }
                n => {
                    out.push(127);
                    out.extend_from_slice(&(n as u64).to_be_bytes());
                }
            }
            out.extend_from_slice(payload);
            out
        }

        fn client_with(params: DeflateParams, cfg: &DeflateConfig, config: Config) -> Engine {
            Engine::new(Role::Client, config).with_deflate(PerMessageDeflate::new(
                Role::Client,
                params,
                cfg,
            ))
        }

        fn client() -> Engine {
            client_with(
                DeflateParams::default(),
                &DeflateConfig::default(),
                Config::default(),
            )
        }

        fn feed(
            e: &mut Engine,
            bytes: &[u8],
            chunk: usize,
        ) -> (Vec<Message>, Option<ProtocolError>) {
            let mut buf = BytesMut::new();
            let mut msgs = Vec::new();
            for piece in bytes.chunks(chunk.max(1)) {
                buf.extend_from_slice(piece);
                loop {
                    match e.receive(&mut buf) {
                        Ok(Some(m)) => msgs.push(m),
                        Ok(None) => break,
                        Err(err) => return (msgs, Some(err)),
                    }
                }
            }
            (msgs, None)
        }

        /// (fin, rsv1, opcode, unmasked payload) of the frames in `out`.
        fn frames(out: &[u8]) -> Vec<(bool, bool, u8, Vec<u8>)> {
            let mut v = Vec::new();
            let mut at = 0;
            while at < out.len() {
                let (h, n) = FrameHeader::decode(&out[at..]).unwrap().unwrap();
                let len = h.payload_len as usize;
                let mut p = out[at + n..at + n + len].to_vec();
                if let Some(k) = h.mask {
                    apply_mask(&mut p, k, 0);
                }
                v.push((h.fin, h.rsv1, h.opcode.as_u8(), p));
                at += n + len;
            }
            v
        }

        fn close_code_sent(e: &Engine) -> u16 {
            let f = frames(e.output());
            let last = f.last().expect("a close frame");
            assert_eq!(last.2, 0x8);
            u16::from_be_bytes([last.3[0], last.3[1]])
        }

        #[test]
        fn receives_compressed_messages_in_any_chunking() {
            // Section 7.2.3.1/7.2.3.2: "Hello" twice with context takeover,
            // a fragmented compressed "Hello" (new context: a new engine
            // would be needed, so it comes first), and a plain message.
            let mut bytes = frame(false, true, 1, &[0xf2, 0x48, 0xcd]);
            bytes.extend(frame(true, false, 9, b"ping"));
            bytes.extend(frame(true, false, 0, &[0xc9, 0xc9, 0x07, 0x00]));
            bytes.extend(frame(true, true, 1, &[0xf2, 0x00, 0x11, 0x00, 0x00]));
            bytes.extend(frame(true, false, 2, b"plain"));
            for chunk in [1, 2, 5, 1000] {
                let mut e = client();
                let (msgs, err) = feed(&mut e, &bytes, chunk);
                assert_eq!(err, None, "chunk {chunk}");
                assert_eq!(
                    msgs,
                    vec![
                        Message::Ping(Bytes::from_static(b"ping")),
                        Message::text("Hello"),
                        Message::text("Hello"),
                        Message::binary(&b"plain"[..]),
                    ],
                    "chunk {chunk}"
                );
            }
        }

        #[test]
        fn rsv1_rules() {
            let cases: &[(Vec<u8>, &str)] = &[
                (frame(true, true, 9, b""), "ping"),
                (frame(true, true, 8, b"\x03\xe8"), "close"),
                (
                    [
                        frame(false, true, 1, &[0xf2, 0x48]),
                        frame(true, true, 0, &[0xcd]),
                    ]
                    .concat(),
                    "continuation",
                ),
            ];
            for (bytes, what) in cases {
                let mut e = client();
                let (_, err) = feed(&mut e, bytes, 100);
                assert_eq!(err, Some(ProtocolError::ReservedBits), "{what}");
                assert_eq!(close_code_sent(&e), 1002);
            }
            // RSV2/RSV3 stay reserved.
            let mut e = client();
            let mut b = frame(true, false, 1, b"x");
            b[0] |= 0x20;
            assert_eq!(feed(&mut e, &b, 10).1, Some(ProtocolError::ReservedBits));
            // Without the extension RSV1 is refused.
            let mut e = Engine::new(Role::Client, Config::default());
            let b = frame(true, true, 1, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
            assert_eq!(feed(&mut e, &b, 10).1, Some(ProtocolError::ReservedBits));
        }

        #[test]
        fn inflated_size_is_limited_while_inflating() {
            let z = bomb((64 << 20) / 258);
            let config = Config::default()
                .max_message_size(1 << 20)
                .max_frame_size(1 << 20);
            // One frame, and the same bytes as many small fragments.
            let one = frame(true, true, 2, &z);
            let mut many = Vec::new();
            let pieces: Vec<&[u8]> = z.chunks(4096).collect();
            for (i, p) in pieces.iter().enumerate() {
                let fin = i + 1 == pieces.len();
                many.extend(frame(fin, i == 0, if i == 0 { 2 } else { 0 }, p));
            }
            for bytes in [one, many] {
                let mut e = client_with(
                    DeflateParams::default(),
                    &DeflateConfig::default(),
                    config.clone(),
                );
                let (msgs, err) = feed(&mut e, &bytes, 64 << 10);
                assert!(msgs.is_empty());
                assert_eq!(err, Some(ProtocolError::MessageTooLarge { max: 1 << 20 }));
                assert_eq!(close_code_sent(&e), 1009);
                assert_eq!(e.state(), State::Closed);
            }
            // The frame limit applies to the compressed frame, the message
            // limit to the inflated message: 2 MiB of zeros in a frame of a
            // few KiB pass a 16 KiB frame limit and a 2 MiB message limit.
            let config = Config::default()
                .max_message_size(2 << 20)
                .max_frame_size(16 << 10);
            let mut e = client_with(DeflateParams::default(), &DeflateConfig::default(), config);
            let mut c = PerMessageDeflate::new(
                Role::Server,
                DeflateParams::default(),
                &DeflateConfig::default(),
            );
            let z = compress(&mut c, &vec![0u8; 2 << 20]);
            let (msgs, err) = feed(&mut e, &frame(true, true, 2, &z), 1 << 20);
            assert_eq!(err, None);
            assert_eq!(msgs[0].len(), 2 << 20);
        }

        #[test]
        fn bad_compressed_data_fails_with_1007() {
            let mut e = client();
            let (_, err) = feed(&mut e, &frame(true, true, 2, &[0xff; 8]), 100);
            assert_eq!(err, Some(ProtocolError::Decompression));
            assert_eq!(close_code_sent(&e), 1007);
            // Invalid UTF-8 once inflated.
            let mut c = PerMessageDeflate::new(
                Role::Server,
                DeflateParams::default(),
                &DeflateConfig::default(),
            );
            let z = compress(&mut c, b"ok \xff\xfe not utf-8");
            let mut e = client();
            let (_, err) = feed(&mut e, &frame(true, true, 1, &z), 100);
            assert_eq!(err, Some(ProtocolError::InvalidUtf8));
            assert_eq!(close_code_sent(&e), 1007);
        }

        #[test]
        fn sends_compressed_with_rsv1_on_first_frames_only() {
            let cfg = DeflateConfig::default().min_size(4);
            let mut e = client_with(DeflateParams::default(), &cfg, Config::default());
            e.send(&Message::text("Hello")).unwrap();
            e.send(&Message::text("Hi!")).unwrap(); // under min_size
            e.send(&Message::Ping(Bytes::from_static(b"Hello")))
                .unwrap();
            e.send_fragment(OpCode::Binary, b"Hel", false).unwrap();
            e.send(&Message::Pong(Bytes::from_static(b"between")))
                .unwrap();
            e.send_fragment(OpCode::Continuation, b"lo", true).unwrap();
            e.close(None).unwrap();
            let f = frames(e.output());
            assert_eq!(
                f[0],
                (
                    true,
                    true,
                    1,
                    vec![0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
                )
            );
            assert_eq!(f[1], (true, false, 1, b"Hi!".to_vec()));
            assert_eq!(f[2], (true, false, 9, b"Hello".to_vec()));
            assert!(f[3].1 && !f[3].0 && f[3].2 == 2);
            assert_eq!(f[4], (true, false, 0xA, b"between".to_vec()));
            assert!(!f[5].1 && f[5].0 && f[5].2 == 0);
            assert_eq!(f[6], (true, false, 8, vec![]));
            // The peer inflates them with the same (context-taking) stream.
            let mut s = PerMessageDeflate::new(Role::Server, DeflateParams::default(), &cfg);
            assert_eq!(inflate(&mut s, &f[0].3, 100).unwrap(), b"Hello");
            let mut out = BytesMut::new();
            s.decompress(&f[3].3, false, &mut out, 100).unwrap();
            s.decompress(&f[5].3, true, &mut out, 100).unwrap();
            assert_eq!(&out[..], b"Hello");
        }

        #[test]
        fn engine_to_engine_both_ways() {
            for params in [
                DeflateParams::default(),
                DeflateParams {
                    client_max_window_bits: 9,
                    server_max_window_bits: 10,
                    client_no_context_takeover: true,
                    server_no_context_takeover: true,
                },
            ] {
                let cfg = DeflateConfig::default();
                let mut c = client_with(params, &cfg, Config::default());
                let mut s = Engine::new(Role::Server, Config::default())
                    .with_deflate(PerMessageDeflate::new(Role::Server, params, &cfg));
                let msgs: Vec<Message> = (0..200)
                    .map(|i| {
                        if i % 3 == 0 {
                            Message::binary(vec![(i % 256) as u8; i * 37])
                        } else {
                            Message::text(format!("message {i} {}", "xyz".repeat(i)))
                        }
                    })
                    .collect();
                for m in &msgs {
                    c.send(m).unwrap();
                    s.send(m).unwrap();
                }
                let to_server = c.take_output();
                let to_client = s.take_output();
                assert!(to_server.len() < msgs.iter().map(Message::len).sum::<usize>());
                let (got, err) = feed(&mut s, &to_server, 1000);
                assert_eq!((got, err), (msgs.clone(), None));
                let (got, err) = feed(&mut c, &to_client, 777);
                assert_eq!((got, err), (msgs, None));
            }
        }
    }
}
