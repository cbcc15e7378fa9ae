//! Refusing to send a password in clear text where nobody checked who
//! asks for it. On a connection whose server certificate is not verified
//! (`sslmode=require` without a CA, or no TLS at all), a man in the middle
//! can answer the start-up with "send me your password in clear text"
//! (AuthenticationCleartextPassword) and read it. [`AuthGuard`] reads the
//! server's messages of the start-up phase as they arrive and fails the
//! connection on that request, before the client answers; SCRAM and md5
//! challenges pass (they never reveal the password).

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// The message of the refusal (recognised by `connect.rs`).
pub const REFUSAL: &str = "supabackup refused to send the password in clear text";

/// Where the scanner is in the server's byte stream.
#[derive(Debug, Clone, Copy)]
enum Scan {
    /// Reading a message header (type byte and length).
    Header { got: usize, bytes: [u8; 5] },
    /// Inside a message: `left` bytes to skip; for an authentication
    /// request, its code's bytes are collected first.
    Body {
        kind: u8,
        left: usize,
        code: [u8; 4],
        got: usize,
    },
    /// Authentication is over: nothing more to look at.
    Done,
}

/// A stream whose start-up messages from the server are checked.
pub struct AuthGuard<S> {
    inner: S,
    armed: bool,
    scan: Scan,
}

impl<S> AuthGuard<S> {
    pub fn new(inner: S, armed: bool) -> Self {
        AuthGuard {
            inner,
            armed,
            scan: Scan::Header {
                got: 0,
                bytes: [0; 5],
            },
        }
    }

    /// Looks at bytes the server sent; `Err` on a clear-text password request.
    fn observe(&mut self, data: &[u8]) -> std::io::Result<()> {
        let mut i = 0;
        while i < data.len() {
            match &mut self.scan {
                Scan::Done => return Ok(()),
                Scan::Header { got, bytes } => {
                    bytes[*got] = data[i];
                    *got += 1;
                    i += 1;
                    if *got == 5 {
                        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
                        let left = (len as usize).saturating_sub(4);
                        self.scan = Scan::Body {
                            kind: bytes[0],
                            left,
                            code: [0; 4],
                            got: 0,
                        };
                        self.end_of_body()?;
                    }
                }
                Scan::Body {
                    kind,
                    left,
                    code,
                    got,
                } => {
                    let take = (*left).min(data.len() - i);
                    if *kind == b'R' {
                        for b in &data[i..i + take] {
                            if *got < 4 {
                                code[*got] = *b;
                                *got += 1;
                            }
                        }
                    }
                    *left -= take;
                    i += take;
                    self.end_of_body()?;
                }
            }
        }
        Ok(())
    }

    /// Acts on a message once its body is read.
    fn end_of_body(&mut self) -> std::io::Result<()> {
        let Scan::Body {
            kind,
            left: 0,
            code,
            got,
        } = self.scan
        else {
            return Ok(());
        };
        self.scan = Scan::Header {
            got: 0,
            bytes: [0; 5],
        };
        if kind == b'R' && got == 4 {
            match u32::from_be_bytes(code) {
                0 => self.scan = Scan::Done,
                3 if self.armed => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::PermissionDenied,
                        REFUSAL,
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = buf.filled()[before..].to_vec();
                Poll::Ready(self.observe(&new))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: TlsStream + Unpin> TlsStream for AuthGuard<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.inner.channel_binding()
    }
}

/// A TLS connector whose streams are guarded.
pub struct GuardedTls<M> {
    pub inner: M,
    pub armed: bool,
}

impl<S, M> MakeTlsConnect<S> for GuardedTls<M>
where
    M: MakeTlsConnect<S>,
    M::TlsConnect: Send + 'static,
    <M::TlsConnect as TlsConnect<S>>::Future: Send + 'static,
    S: Send + 'static,
{
    type Stream = AuthGuard<M::Stream>;
    type TlsConnect = GuardedConnect<M::TlsConnect>;
    type Error = M::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, Self::Error> {
        Ok(GuardedConnect {
            inner: self.inner.make_tls_connect(domain)?,
            armed: self.armed,
        })
    }
}

pub struct GuardedConnect<T> {
    inner: T,
    armed: bool,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, T> TlsConnect<S> for GuardedConnect<T>
where
    T: TlsConnect<S> + Send + 'static,
    T::Future: Send + 'static,
    S: Send + 'static,
{
    type Stream = AuthGuard<T::Stream>;
    type Error = T::Error;
    type Future = BoxFuture<Result<Self::Stream, Self::Error>>;

    fn connect(self, stream: S) -> Self::Future {
        let armed = self.armed;
        let fut = self.inner.connect(stream);
        Box::pin(async move { fut.await.map(|s| AuthGuard::new(s, armed)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn run(armed: bool, stream: &[u8], chunk: usize) -> std::io::Result<()> {
        let mut g = AuthGuard::new((), armed);
        for c in stream.chunks(chunk) {
            g.observe(c)?;
        }
        Ok(())
    }

    #[test]
    fn a_clear_text_request_is_refused_when_armed() {
        let cleartext = msg(b'R', &3u32.to_be_bytes());
        for chunk in [1, 2, 3, 100] {
            let err = run(true, &cleartext, chunk).expect_err("refused");
            assert!(err.to_string().contains(REFUSAL));
            assert!(run(false, &cleartext, chunk).is_ok(), "verified: allowed");
        }
    }

    #[test]
    fn scram_md5_and_later_messages_pass() {
        let mut s = msg(b'R', &[0, 0, 0, 10, b'S', b'C', b'R', b'A', b'M', 0, 0]);
        s.extend(msg(b'R', &[0, 0, 0, 5, 1, 2, 3, 4]));
        s.extend(msg(b'R', &0u32.to_be_bytes()));
        // After AuthenticationOk nothing is parsed (row data may look like anything).
        s.extend(msg(b'R', &3u32.to_be_bytes()));
        for chunk in [1, 4, 7, 1000] {
            assert!(run(true, &s, chunk).is_ok(), "chunk {chunk}");
        }
        let mut e = msg(b'E', b"SFATAL\0Mnope\0\0");
        e.extend(msg(b'R', &3u32.to_be_bytes()));
        assert!(
            run(true, &e, 3).is_err(),
            "messages before are skipped whole"
        );
    }
}
