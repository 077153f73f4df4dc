//! Defaults, each with the reason it has that value.

use std::time::Duration;

/// Time between the first SIGTERM and the first close, while load balancers
/// notice the readiness 503 (HAProxy `inter 2s fall 2` takes ~3 s; the
/// ingress-nginx maintainers recommend 5 s). Zero outside Kubernetes.
pub const DRAIN_DELAY: Duration = Duration::from_secs(5);
/// Span over which sessions are closed, so their reconnects arrive smoothly
/// at the pods that remain instead of in one burst. 12 s is the longest
/// window whose slowest session still fits the defaults' forced end:
/// 5 s delay + 12 s + 2 × 5 s close timeout = 27 s ≤ 30 s − 2 s.
pub const CLOSE_WINDOW: Duration = Duration::from_secs(12);
/// How long one session waits for the peer's Close after sending its own
/// (Node `ws` waits 30 s, Python `websockets` 10 s; healthy peers answer in ms).
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Kubernetes' default `terminationGracePeriodSeconds`.
pub const GRACE_PERIOD: Duration = Duration::from_secs(30);
/// The forced end comes this long before the grace period ends, so the
/// process exits on its own before the kubelet's SIGKILL.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(2);
/// Low end of the retry hint: gives the load balancer a moment to settle.
pub const RETRY_AFTER_MIN: Duration = Duration::from_secs(1);
/// High end of the retry hint: RFC 6455 §7.2.3 calls 0–5 s a reasonable
/// first reconnect delay.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(5);
/// Sessions closed per second at least: a small fleet finishes early
/// instead of spreading a handful of closes over the whole window.
pub const MIN_CLOSE_RATE: u32 = 100;
/// RFC 6455 "Going Away": a server going down.
pub const CLOSE_CODE: u16 = wsdrain_protocol::code::GOING_AWAY;
