//! Who may talk to whom. Every gRPC connection — worker to coordinator, worker to worker, and
//! `coordinator status` — can run over TLS (rustls), mutual when the server asks for the
//! client's certificate, and every call can carry a shared bearer token that servers check.
//!
//! Certificates: one cluster CA signs the certificates; clients verify the server against a
//! fixed name (`--tls-server-name`, default [`DEFAULT_SERVER_NAME`]) rather than a pod's IP or
//! DNS name, so one certificate with that name can serve every pod of a job (what the Helm
//! chart mounts from a Secret). The token and private keys are never printed: `Debug` of
//! every type here redacts them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use subtle::ConstantTimeEq;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Server, ServerTlsConfig,
};
use tonic::{Request, Status};

/// The name clients expect in the server's certificate unless told otherwise.
pub const DEFAULT_SERVER_NAME: &str = "anygan";

/// A channel whose calls carry the token (if any).
pub type AuthedChannel = InterceptedService<Channel, AttachToken>;

/// The shared secret every call carries as `authorization: Bearer <token>`.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// A token of printable ASCII without spaces (it travels in a header), at least 16 bytes.
    pub fn new(secret: &str) -> Result<Self, String> {
        let secret = secret.trim();
        if secret.len() < 16 {
            return Err(format!(
                "a token needs at least 16 characters, this one has {}",
                secret.len()
            ));
        }
        if !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("a token may hold only printable ASCII characters without spaces".into());
        }
        Ok(Self(secret.into()))
    }

    /// Reads a token file (e.g. mounted from a Secret); errors name the file, never its content.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("token file {}: {e}", path.display()))?;
        Self::new(&text).map_err(|reason| format!("token file {}: {reason}", path.display()))
    }

    fn header(&self) -> Result<MetadataValue<Ascii>, String> {
        format!("Bearer {}", self.0)
            .parse()
            .map_err(|_| "the token cannot travel in a header".to_string())
    }

    fn matches(&self, presented: &[u8]) -> bool {
        presented.ct_eq(self.0.as_bytes()).into()
    }
}

/// PEM material of one party: the CA that signs the cluster's certificates and this party's
/// certificate and key.
#[derive(Clone)]
pub struct TlsMaterial {
    ca_pem: Vec<u8>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    server_name: String,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("server_name", &self.server_name)
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl TlsMaterial {
    pub fn from_pem(
        ca_pem: Vec<u8>,
        cert_pem: Vec<u8>,
        key_pem: Vec<u8>,
        server_name: impl Into<String>,
    ) -> Self {
        Self {
            ca_pem,
            cert_pem,
            key_pem,
            server_name: server_name.into(),
        }
    }

    /// Reads the three PEM files; an error names the file (and never prints a key).
    pub fn from_files(
        ca: &Path,
        cert: &Path,
        key: &Path,
        server_name: impl Into<String>,
    ) -> Result<Self, String> {
        let read = |what: &str, path: &Path| -> Result<Vec<u8>, String> {
            let bytes = std::fs::read(path)
                .map_err(|e| format!("TLS {what} file {}: {e}", path.display()))?;
            if !String::from_utf8_lossy(&bytes).contains("-----BEGIN ") {
                return Err(format!(
                    "TLS {what} file {}: not PEM (no -----BEGIN line)",
                    path.display()
                ));
            }
            Ok(bytes)
        };
        Ok(Self::from_pem(
            read("CA", ca)?,
            read("certificate", cert)?,
            read("key", key)?,
            server_name,
        ))
    }
}

/// How this process talks gRPC: plain or TLS, with or without a token.
#[derive(Clone, Debug, Default)]
pub struct Security {
    tls: Option<TlsMaterial>,
    token: Option<Token>,
}

impl Security {
    /// Plain HTTP/2, no token: loopback development and tests.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn new(tls: Option<TlsMaterial>, token: Option<Token>) -> Self {
        Self { tls, token }
    }

    pub fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// For logs: what is on, never the material itself.
    pub fn describe(&self) -> &'static str {
        match (&self.tls, &self.token) {
            (Some(_), Some(_)) => "mutual TLS + token",
            (Some(_), None) => "mutual TLS",
            (None, Some(_)) => "token, no TLS",
            (None, None) => "plaintext, no authentication",
        }
    }

    /// A client endpoint for `address` (host:port), with TLS and our certificate when set.
    pub fn endpoint(&self, address: &str) -> Result<Endpoint, String> {
        install_crypto_provider();
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))
            .map_err(|e| format!("bad address {address:?}: {e}"))?;
        match &self.tls {
            None => Ok(endpoint),
            Some(tls) => endpoint
                .tls_config(
                    ClientTlsConfig::new()
                        .ca_certificate(Certificate::from_pem(&tls.ca_pem))
                        .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
                        .domain_name(tls.server_name.clone()),
                )
                .map_err(|e| format!("TLS client configuration: {e}")),
        }
    }

    /// Wraps a connected channel so that every call carries the token.
    pub fn authed(&self, channel: Channel) -> AuthedChannel {
        InterceptedService::new(channel, self.attach_token())
    }

    /// Connects to `address` once (no retries) and wraps the channel.
    pub async fn connect(&self, address: &str) -> Result<AuthedChannel, String> {
        let channel = self
            .endpoint(address)?
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {address}: {e}"))?;
        Ok(self.authed(channel))
    }

    pub fn attach_token(&self) -> AttachToken {
        AttachToken(self.token.as_ref().and_then(|t| t.header().ok()))
    }

    /// The check every server applies to every call.
    pub fn require_token(&self) -> RequireToken {
        RequireToken(self.token.clone())
    }

    /// A server builder with TLS configured; client certificates signed by the CA are
    /// required (mutual TLS).
    pub fn server(&self) -> Result<Server, String> {
        install_crypto_provider();
        let builder = Server::builder();
        match &self.tls {
            None => Ok(builder),
            Some(tls) => builder
                .tls_config(
                    ServerTlsConfig::new()
                        .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
                        .client_ca_root(Certificate::from_pem(&tls.ca_pem)),
                )
                .map_err(|e| format!("TLS server configuration: {e}")),
        }
    }
}

/// Client side: adds the bearer token to every call.
#[derive(Clone)]
pub struct AttachToken(Option<MetadataValue<Ascii>>);

impl std::fmt::Debug for AttachToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AttachToken(<redacted>)")
    }
}

impl Interceptor for AttachToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(header) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
        }
        Ok(request)
    }
}

/// Server side: refuses a call without the right bearer token (when a token is configured).
#[derive(Clone, Debug)]
pub struct RequireToken(Option<Token>);

impl Interceptor for RequireToken {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(token) = &self.0 else {
            return Ok(request);
        };
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "));
        match presented {
            Some(presented) if token.matches(presented) => Ok(request),
            Some(_) => Err(Status::unauthenticated("wrong token")),
            None => Err(Status::unauthenticated(
                "no token: this cluster requires `authorization: Bearer <token>`",
            )),
        }
    }
}

/// rustls needs one process-wide crypto provider when more than one is compiled in
/// (object_store's HTTP client brings aws-lc-rs, other crates may bring ring).
fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err only when another provider was installed first, which serves as well.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// A fresh CA and one certificate for `server_name` signed by it, usable as both server and
/// client certificate (what `coordinator certs` writes and the tests use).
#[derive(Clone)]
pub struct GeneratedCredentials {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for GeneratedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GeneratedCredentials(<redacted>)")
    }
}

impl GeneratedCredentials {
    pub fn generate(server_name: &str) -> Result<Self, String> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let failed = |what: &str, e: rcgen::Error| format!("cannot generate {what}: {e}");
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| failed("CA parameters", e))?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "anygan cluster CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().map_err(|e| failed("CA key", e))?;
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(|e| failed("CA certificate", e))?;
        let issuer = rcgen::Issuer::new(ca_params, ca_key);

        let mut params = CertificateParams::new(vec![server_name.to_string()])
            .map_err(|e| failed("certificate parameters", e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, server_name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().map_err(|e| failed("key", e))?;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| failed("certificate", e))?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    pub fn material(&self, server_name: &str) -> TlsMaterial {
        TlsMaterial::from_pem(
            self.ca_pem.clone().into_bytes(),
            self.cert_pem.clone().into_bytes(),
            self.key_pem.clone().into_bytes(),
            server_name,
        )
    }

    /// Writes `ca.crt`, `tls.crt` and `tls.key` (mode 0600) into `dir`: the names a Kubernetes
    /// TLS Secret uses. Returns the three paths.
    pub fn write_to(&self, dir: &Path) -> Result<[PathBuf; 3], String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let paths = [dir.join("ca.crt"), dir.join("tls.crt"), dir.join("tls.key")];
        for (path, text) in paths
            .iter()
            .zip([&self.ca_pem, &self.cert_pem, &self.key_pem])
        {
            write_private(path, text.as_bytes())?;
        }
        Ok(paths)
    }
}

/// Creates `path` readable by its owner only (keys and tokens).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .and_then(|mut file| file.write_all(bytes))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// A random token of 32 bytes, hex-encoded.
pub fn generate_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    // ThreadRng is a CSPRNG (ChaCha) seeded from the operating system.
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_with(header: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(header) = header {
            request
                .metadata_mut()
                .insert("authorization", header.parse().expect("ascii"));
        }
        request
    }

    #[test]
    fn tokens_are_checked_and_never_printed() {
        let secret = "0123456789abcdef0123";
        let security = Security::new(None, Some(Token::new(secret).expect("token")));
        let mut check = security.require_token();
        assert!(check.call(request_with(None)).is_err());
        assert!(
            check
                .call(request_with(Some("Bearer wrong-token-123456")))
                .is_err()
        );
        assert!(check.call(request_with(Some(secret))).is_err(), "no Bearer");
        let attached = security
            .attach_token()
            .call(Request::new(()))
            .expect("attached");
        assert!(check.call(attached).is_ok());
        let shown = format!(
            "{security:?} {:?} {:?}",
            security.attach_token(),
            security.require_token()
        );
        assert!(!shown.contains(secret), "{shown}");
        // Without a token configured every call passes.
        assert!(
            Security::none()
                .require_token()
                .call(request_with(None))
                .is_ok()
        );
    }

    #[test]
    fn weak_or_unprintable_tokens_are_refused() {
        assert!(Token::new("short").is_err());
        assert!(Token::new("has a space in the middle!").is_err());
        assert!(Token::new("  0123456789abcdef\n").is_ok(), "trimmed");
        assert_eq!(generate_token().len(), 64);
        assert_ne!(generate_token(), generate_token());
    }

    #[test]
    fn missing_or_non_pem_files_are_named() {
        let dir = std::env::temp_dir().join(format!("anygan-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let not_pem = dir.join("ca.crt");
        std::fs::write(&not_pem, "hello").expect("write");
        let error =
            TlsMaterial::from_files(&not_pem, &dir.join("missing.crt"), &dir.join("k"), "anygan")
                .expect_err("not pem");
        assert!(
            error.contains("ca.crt") && error.contains("not PEM"),
            "{error}"
        );
        let credentials = GeneratedCredentials::generate("anygan").expect("generate");
        let [ca, cert, key] = credentials.write_to(&dir).expect("write");
        assert!(TlsMaterial::from_files(&ca, &cert, &key, "anygan").is_ok());
        let error = TlsMaterial::from_files(&ca, &dir.join("nope.crt"), &key, "anygan")
            .expect_err("missing");
        assert!(error.contains("nope.crt"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
