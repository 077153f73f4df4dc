//! TLS for `wss://` (and `https` health probes): rustls on the ring provider,
//! no OpenSSL.
//!
//! Without [`Reconnect::tls_config`](crate::Reconnect::tls_config) the client
//! trusts the roots of the enabled features: the Mozilla roots compiled in
//! (`rustls-webpki-roots`, the default) and the operating system's
//! (`rustls-native-roots`). With `rustls` alone, no root is trusted until a
//! configuration is given, e.g. [`config_with_roots`] for a private CA.

use std::sync::Arc;

pub use rustls;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// A configuration on the ring provider that trusts `roots` only.
///
/// # Errors
///
/// A certificate that is not a valid trust anchor, or a provider without the
/// default protocol versions.
///
/// ```no_run
/// use rustls::pki_types::{CertificateDer, pem::PemObject};
/// # fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let roots = CertificateDer::pem_file_iter("ca.pem")?.collect::<Result<Vec<_>, _>>()?;
/// let (client, events) = wsdrain_client::Reconnect::new("wss://localhost:3443/ws")
///     .tls_config(wsdrain_client::tls::config_with_roots(roots)?)
///     .spawn();
/// # drop((client, events)); Ok(()) }
/// ```
pub fn config_with_roots(
    roots: impl IntoIterator<Item = CertificateDer<'static>>,
) -> Result<Arc<ClientConfig>, rustls::Error> {
    let mut store = RootCertStore::empty();
    for cert in roots {
        store.add(cert)?;
    }
    config(store)
}

fn config(store: RootCertStore) -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(store)
            .with_no_client_auth(),
    ))
}

/// The configuration used without [`Reconnect::tls_config`](crate::Reconnect::tls_config):
/// the roots of the enabled features (see the module documentation).
///
/// # Errors
///
/// As [`config_with_roots`]; with `rustls-native-roots`, an operating system
/// that yields no usable root.
pub fn default_config() -> Result<Arc<ClientConfig>, rustls::Error> {
    #[allow(unused_mut)]
    let mut store = RootCertStore::empty();
    #[cfg(feature = "rustls-webpki-roots")]
    store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    #[cfg(feature = "rustls-native-roots")]
    {
        let found = rustls_native_certs::load_native_certs();
        let (added, _ignored) = store.add_parsable_certificates(found.certs);
        if added == 0 && store.is_empty() {
            return Err(rustls::Error::General(format!(
                "no usable native root certificate ({} errors)",
                found.errors.len()
            )));
        }
    }
    config(store)
}
