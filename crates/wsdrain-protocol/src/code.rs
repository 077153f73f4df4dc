//! Close codes.
//!
//! The codes a draining server sends. Use [`check_close_code`](crate::check_close_code)
//! to validate any other code before putting it in a Close frame.

/// 1001 Going Away: the endpoint is going away (server shutting down). The code
/// a draining server sends by default.
pub const GOING_AWAY: u16 = 1001;

/// 1012 Service Restart: the service is restarting; a client may reconnect.
/// An optional alternative to [`GOING_AWAY`].
pub const SERVICE_RESTART: u16 = 1012;

/// 1013 Try Again Later: the server is overloaded or, here, draining; sent
/// to an upgrade accepted during the drain's Closing phase, with the hint,
/// when the policy asks for it instead of a 503. Clients honour its hint
/// like [`GOING_AWAY`]'s.
pub const TRY_AGAIN_LATER: u16 = 1013;

/// 1000 Normal Closure: the purpose of the connection has been fulfilled. Not a
/// drain code; clients treat it as terminal by default.
pub const NORMAL: u16 = 1000;
