//! [`DrainBody`]: the inner service's body, or a small one of our own.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// Response body of [`DrainService`](crate::DrainService): the inner
    /// service's body untouched, or the short body of a health or refusal
    /// response. No box per request.
    #[project = DrainBodyProj]
    #[derive(Debug)]
    #[allow(missing_docs)] // pin-project-lite takes no docs on variant fields

    pub enum DrainBody<B> {
        /// The inner service's body.
        Inner {
            #[pin]
            body: B,
        },
        /// A body written by the layer itself.
        Full {
            data: Option<Bytes>,
        },
    }
}

impl<B> DrainBody<B> {
    pub(crate) fn full(data: impl Into<Bytes>) -> Self {
        DrainBody::Full {
            data: Some(data.into()),
        }
    }
}

impl<B> Body for DrainBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project() {
            DrainBodyProj::Inner { body } => body.poll_frame(cx),
            DrainBodyProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            DrainBody::Inner { body } => body.is_end_stream(),
            DrainBody::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            DrainBody::Inner { body } => body.size_hint(),
            DrainBody::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}
