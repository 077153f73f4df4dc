//! [`ResumePoint`]: what an upgrade request asks for, read from its head by
//! any adapter.

use http::{HeaderMap, Uri, header::SEC_WEBSOCKET_PROTOCOL, request::Parts};
use wsdrain_protocol::resume::{PointError, Position, offers_resume, point_from_query};

/// Whether a client offered the resume subprotocol (`wsdrain.resume.v1`),
/// and where it asks to resume, per stream (`?wsdrain-resume=…`).
///
/// **It grants nothing.** Only the streams the handler follows are
/// delivered; authorise the connection as any other, and check that the user
/// may read every stream it names ([`streams`](Self::streams)): refuse with
/// `403` before the upgrade, or follow only the allowed ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResumePoint {
    offered: bool,
    positions: Vec<Position>,
}

impl ResumePoint {
    /// Reads an upgrade request's head.
    ///
    /// # Errors
    ///
    /// [`PointError`] for a `wsdrain-resume` that cannot be read, or one
    /// sent without offering the subprotocol: answer `400` with its text,
    /// never a fresh start.
    pub fn from_request_head(uri: &Uri, headers: &HeaderMap) -> Result<ResumePoint, PointError> {
        let offered = headers
            .get_all(SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(offers_resume);
        let positions = match uri.query().map(point_from_query).transpose()?.flatten() {
            Some(_) if !offered => return Err(PointError::NotOffered),
            Some(p) => p,
            None => Vec::new(),
        };
        Ok(ResumePoint { offered, positions })
    }

    /// Reads an upgrade request's parts; see
    /// [`from_request_head`](Self::from_request_head).
    ///
    /// # Errors
    ///
    /// As [`from_request_head`](Self::from_request_head).
    pub fn from_parts(parts: &Parts) -> Result<ResumePoint, PointError> {
        ResumePoint::from_request_head(&parts.uri, &parts.headers)
    }

    /// A point for a client that offered the subprotocol, with `positions`
    /// (tests, and adapters that read the request another way).
    pub fn offered_with(positions: Vec<Position>) -> ResumePoint {
        ResumePoint {
            offered: true,
            positions,
        }
    }

    /// True when the client offered `wsdrain.resume.v1`: the adapter selects
    /// it, and frames carry headers and controls.
    pub fn offered(&self) -> bool {
        self.offered
    }

    /// The positions, one per stream.
    pub fn positions(&self) -> &[Position] {
        &self.positions
    }

    /// The streams the point names, to authorise.
    pub fn streams(&self) -> impl Iterator<Item = &str> {
        self.positions.iter().map(Position::stream)
    }

    /// The position of `stream`, if named.
    pub fn get(&self, stream: &str) -> Option<&Position> {
        self.positions.iter().find(|p| p.stream() == stream)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use http::{HeaderValue, Request};

    use super::*;

    fn point(uri: &str, protocols: &[&str]) -> Result<ResumePoint, PointError> {
        let mut req = Request::get(uri);
        for p in protocols {
            req = req.header(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_str(p).unwrap());
        }
        let (parts, ()) = req.body(()).unwrap().into_parts();
        ResumePoint::from_parts(&parts)
    }

    #[test]
    fn reads_offer_and_point() {
        let p = point(
            "/feed?wsdrain-resume=a@E.3,b@F.0",
            &["chat", "wsdrain.resume.v1"],
        )
        .unwrap();
        assert!(p.offered());
        assert_eq!(p.streams().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(p.get("a").unwrap().seq(), 3);
        assert_eq!(p.get("c"), None);
        let fresh = point("/feed", &["wsdrain.resume.v1"]).unwrap();
        assert!(fresh.offered() && fresh.positions().is_empty());
        let plain = point("/feed?x=1", &[]).unwrap();
        assert!(!plain.offered());
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert_eq!(
            point("/feed?wsdrain-resume=a@E.3", &[]),
            Err(PointError::NotOffered)
        );
        assert!(matches!(
            point("/feed?wsdrain-resume=a@E", &["wsdrain.resume.v1"]),
            Err(PointError::Syntax { .. })
        ));
    }
}
