//! The body-read deadline: actix times out a request's head but not its body, so a client that
//! sends headers with a `Content-Length` and then stalls would hold its connection (and a file
//! descriptor) forever. The payload stream is wrapped to fail once `server.body_timeout_ms`
//! has passed since the head arrived; the extractor reading it answers 408 and the connection
//! is closed.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::dev::{Payload, ServiceRequest};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::HttpMessage;
use futures::Stream;

/// The message the timed-out read carries, recognised by `is_body_timeout`.
const TIMED_OUT: &str = "request body not received in time";

/// Gives `req`'s body, if it has one, `timeout` from now to arrive in full.
pub fn bound_body(req: &mut ServiceRequest, timeout: Duration) {
    let has_body = req.headers().contains_key(header::CONTENT_LENGTH) || req.headers().contains_key(header::TRANSFER_ENCODING);
    if !has_body {
        return;
    }
    let inner = req.take_payload();
    let bounded = Deadline {
        inner,
        sleep: Box::pin(tokio::time::sleep(timeout)),
        expired: false,
    };
    let boxed: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(bounded);
    req.set_payload(Payload::from(boxed));
}

/// Whether a payload error is this deadline running out.
pub fn is_body_timeout(err: &PayloadError) -> bool {
    matches!(err, PayloadError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut && e.to_string() == TIMED_OUT)
}

struct Deadline {
    inner: Payload,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: bool,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired = true;
            let err = std::io::Error::new(std::io::ErrorKind::TimedOut, TIMED_OUT);
            return Poll::Ready(Some(Err(PayloadError::Io(err))));
        }
        Poll::Pending
    }
}
