//! Sandbox mode (the `sandbox` feature): the sandbox bank served beside the API, or alone
//! with `sandbox-bank`. finX reaches it through its XS2A connector, as it reaches any bank.

use std::path::PathBuf;
use std::sync::Arc;

use finx_store_sql::SqlStore;

use crate::config::Config;
use crate::{chain, shutdown_signal};

/// The sandbox bank run in this process.
pub(crate) type Bank = Arc<finx_bank_sandbox::SandboxBank>;

/// The sandbox bank to run in this process: in sandbox mode, unless the instances share
/// one started on its own (`--sandbox-bank-url`).
pub(crate) fn in_process(config: &Config, clock: Arc<finx_system::SystemClock>) -> Option<Bank> {
    (config.sandbox && config.sandbox_bank_url.is_none()).then(|| {
        Arc::new(finx_bank_sandbox::SandboxBank::new(
            finx_bank_sandbox::SandboxConfig {
                public_url: config.sandbox_public_url.clone(),
                ..finx_bank_sandbox::SandboxConfig::default()
            },
            clock,
        ))
    })
}

/// Registers the sandbox's banks, and serves the in-process sandbox bank on its own
/// listener until the process ends.
pub(crate) async fn start(
    config: &Config,
    store: &SqlStore,
    bank: Option<Bank>,
) -> Result<(), String> {
    use finx_ports::BankRegistry;
    if let Some(url) = &config.sandbox_bank_url {
        // Several instances share one sandbox bank started on its own.
        store
            .upsert_banks(&finx_bank_sandbox::xs2a::registry_entries(url))
            .await
            .map_err(|e| chain(&e))?;
        return Ok(());
    }
    let Some(bank) = bank else {
        return Ok(());
    };
    let listener = tokio::net::TcpListener::bind(config.sandbox_listen)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {} for the sandbox bank: {e}",
                config.sandbox_listen
            )
        })?;
    store
        .upsert_banks(&finx_bank_sandbox::xs2a::registry_entries(
            &config.sandbox_public_url,
        ))
        .await
        .map_err(|e| chain(&e))?;
    let app =
        finx_bank_sandbox::xs2a::router(bank.clone()).merge(finx_bank_sandbox::web::router(bank));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the sandbox bank stopped");
        }
    });
    Ok(())
}

/// The first certificate of a PEM file, DER.
fn pem_to_der(pem: &[u8]) -> Result<Vec<u8>, String> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem)
        .map(|c| c.as_ref().to_vec())
        .map_err(|e| format!("no certificate in the PEM file: {e}"))
}

/// `sandbox-bank`: the sandbox bank alone, over plain HTTP or TLS (with mutual TLS when a
/// client authority is given), demanding signed requests when a signature authority is.
pub(crate) async fn standalone(
    config: &Config,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    signature_ca: Option<PathBuf>,
) -> Result<(), String> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let tls = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => Some(finx_bank_sandbox::tls::TlsSettings {
            cert_pem: read(&cert)?,
            key_pem: read(&key)?,
            client_ca_pem: client_ca.as_deref().map(read).transpose()?,
        }),
        _ => None,
    };
    let signature_ca_der = match signature_ca {
        Some(p) => Some(pem_to_der(&read(&p)?)?),
        None => None,
    };
    let bank = Arc::new(finx_bank_sandbox::SandboxBank::new(
        finx_bank_sandbox::SandboxConfig {
            public_url: config.sandbox_public_url.clone(),
            ..finx_bank_sandbox::SandboxConfig::default()
        },
        Arc::new(finx_system::SystemClock),
    ));
    let listener = tokio::net::TcpListener::bind(config.sandbox_listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.sandbox_listen))?;
    println!(
        "sandbox bank: XS2A at {}sandbox/xs2a/<bank code>/v1/ (90094815 embedded, 90094816 redirect, 90094817 decoupled); registry entries:",
        config.sandbox_public_url
    );
    for b in finx_bank_sandbox::xs2a::registry_entries(&config.sandbox_public_url) {
        println!("  {}\t{}\t{}", b.id, b.name, b.url);
    }
    let app = finx_bank_sandbox::xs2a::router_with(bank.clone(), signature_ca_der)
        .merge(finx_bank_sandbox::web::router(bank));
    if let Some(tls) = tls {
        let server = finx_bank_sandbox::tls::server_config(&tls).map_err(|e| e.to_string())?;
        tokio::select! {
            () = finx_bank_sandbox::tls::serve_tls(listener, app, server) => {}
            () = shutdown_signal() => {}
        }
        return Ok(());
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}
