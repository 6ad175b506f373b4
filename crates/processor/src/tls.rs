//! One rustls crypto provider for every HTTP client of the crate.

use std::sync::Once;

/// Installs ring as rustls' process-wide provider (once; a provider installed by the
/// application first is kept).
pub(crate) fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
