//! Request bodies: at most `max_body` bytes however they are framed (`Content-Length` or
//! chunked), and all of it within `request_timeout` of the head.
//!
//! A declared length over the cap is answered 413 ([`refuse_declared`]) before a byte of the body
//! is read (and before hyper sends `100 Continue` to a client that asked for it). Every other
//! body is wrapped in [`Capped`] ([`cap`]), which fails once it has delivered more than the cap
//! or when its time is up; [`Payload`], the extractor the routes that take a body use, turns
//! those failures into the JSON answers.

use std::error::Error as _;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::limits::Limits;
use super::reply;

/// Why a body was cut off.
#[derive(Debug, thiserror::Error)]
enum Cut {
    #[error("request body over {0} bytes")]
    TooLarge(usize),
    #[error("request body not received within {0:?}")]
    TooSlow(Duration),
}

impl Cut {
    fn answer(&self) -> Response {
        let status = match self {
            Cut::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Cut::TooSlow(_) => StatusCode::BAD_REQUEST,
        };
        reply::error_closing(status, self.to_string())
    }
}

/// A body that ends in an error past `left` more bytes or past `deadline`.
struct Capped {
    inner: Body,
    max: usize,
    left: usize,
    deadline: Instant,
    timeout: Duration,
    /// Made only once the body has to be waited for.
    timer: Option<Pin<Box<Sleep>>>,
}

impl http_body::Body for Capped {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let n = frame.data_ref().map_or(0, Bytes::len);
                match this.left.checked_sub(n) {
                    Some(left) => this.left = left,
                    None => {
                        return Poll::Ready(Some(Err(axum::Error::new(Cut::TooLarge(this.max)))))
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                let deadline = this.deadline;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                ready!(timer.as_mut().poll(cx));
                Poll::Ready(Some(Err(axum::Error::new(Cut::TooSlow(this.timeout)))))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A step of [`super::guard`]: 413 for a declared length over the cap.
pub(super) fn refuse_declared(req: &Request, limits: &Limits) -> Option<Response> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    declared
        .is_some_and(|n| n > limits.max_body as u64)
        .then(|| Cut::TooLarge(limits.max_body).answer())
}

/// The last step of [`super::guard`]: caps a body that may come (a request without one stays
/// as it is).
pub(super) fn cap(req: Request, limits: &Limits) -> Request {
    if http_body::Body::is_end_stream(req.body()) {
        return req;
    }
    req.map(|inner| {
        Body::new(Capped {
            inner,
            max: limits.max_body,
            left: limits.max_body,
            deadline: Instant::now() + limits.request_timeout,
            timeout: limits.request_timeout,
            timer: None,
        })
    })
}

/// The whole request body (it went through [`cap`]).
#[derive(Debug)]
pub struct Payload(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Payload {
    type Rejection = Response;

    async fn from_request(req: Request, _: &S) -> Result<Self, Response> {
        match axum::body::to_bytes(req.into_body(), usize::MAX).await {
            Ok(b) => Ok(Payload(b)),
            Err(e) => Err(rejection(&e)),
        }
    }
}

fn rejection(e: &axum::Error) -> Response {
    let cut =
        std::iter::successors(e.source(), |e| (*e).source()).find_map(|e| e.downcast_ref::<Cut>());
    match cut {
        Some(c) => c.answer(),
        None => reply::error_closing(
            StatusCode::BAD_REQUEST,
            format!("incomplete request body: {e}"),
        ),
    }
}
