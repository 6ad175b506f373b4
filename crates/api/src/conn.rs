//! Connection hygiene for early answers.
//!
//! A handler may answer before it has read the request body: an upload over the size limit, a
//! JSON body over [`axum::extract::DefaultBodyLimit`], a validation error found in the headers.
//! hyper then cannot reuse the connection (the unread rest of the body is still on the wire) and
//! closes it — but whether the response it already wrote said so depends on timing. A client that
//! pooled the connection sends its next request into a closed socket and gets a transport error
//! instead of an answer. [`close_if_body_unread`] removes the race: when the response is ready
//! and the body was not read to its end, the response carries `Connection: close`, so every
//! client knows not to reuse the connection.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};

/// A request body that records whether it was read to its end.
struct Tracked {
    inner: Body,
    done: Arc<AtomicBool>,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.done.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let end = self.inner.is_end_stream();
        if end {
            self.done.store(true, Ordering::Release);
        }
        end
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware: adds `Connection: close` to a response given before the request body was read to
/// its end (see the module docs). Requests without a body are passed through untouched.
pub async fn close_if_body_unread(req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let done = Arc::new(AtomicBool::new(false));
    let tracked = Arc::clone(&done);
    let req = req.map(|inner| {
        Body::new(Tracked {
            inner,
            done: tracked,
        })
    });
    let mut resp = next.run(req).await;
    if !done.load(Ordering::Acquire) {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}
