//! Key material of the test control plane: the CA, the API server's serving certificate, the
//! service-account signing key, and the static users' tokens.

use std::io::Read;
use std::path::Path;

use super::write_file;

/// Writes the CA, the API server's serving certificate and key, and the service-account
/// signing key as PEM files into `dir`; returns the CA certificate (DER) for clients.
pub fn write(dir: &Path) -> Result<Vec<u8>, String> {
    write_naming(dir, &[])
}

/// [`write`], the serving certificate also naming `extra` (addresses or DNS names).
pub fn write_naming(dir: &Path, extra: &[&str]) -> Result<Vec<u8>, String> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let err = |what: &'static str| move |e: rcgen::Error| format!("generating the {what}: {e}");

    let ca_key = KeyPair::generate().map_err(err("CA key"))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err("CA"))?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "tokenwarden test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(err("CA"))?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let names = [
        "127.0.0.1",
        "::1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ];
    let server_key = KeyPair::generate().map_err(err("serving key"))?;
    let names: Vec<String> = names.iter().chain(extra).map(|n| (*n).to_owned()).collect();
    let mut server_params = CertificateParams::new(names).map_err(err("serving cert"))?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .map_err(err("serving cert"))?;

    let sa_key = KeyPair::generate().map_err(err("service-account key"))?;

    write_file(&dir.join("ca.crt"), &ca_cert.pem())?;
    write_file(&dir.join("apiserver.crt"), &server_cert.pem())?;
    write_file(&dir.join("apiserver.key"), &server_key.serialize_pem())?;
    write_file(&dir.join("sa.key"), &sa_key.serialize_pem())?;
    write_file(&dir.join("sa.pub"), &sa_key.public_key_pem())?;
    Ok(ca_cert.der().to_vec())
}

/// 32 random bytes from the kernel, hex-encoded.
pub fn random_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut urandom| urandom.read_exact(&mut bytes))
        .map_err(|e| format!("reading /dev/urandom: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
